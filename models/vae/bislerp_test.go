package vae_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/vae"
)

// vec builds a [1, c, 1, len(cols)] latent from per-column channel vectors.
func vec(cols ...[]float32) []float32 {
	c, w := len(cols[0]), len(cols)
	out := make([]float32, c*w)
	for x, v := range cols {
		for k := range c {
			out[k*w+x] = v[k]
		}
	}
	return out
}

func TestBislerp(t *testing.T) {
	s := float32(1 / math.Sqrt2)
	// Upscaling two columns to three: torch's bilinear ramp gives column 0 ← col 0 (ratio 0),
	// column 1 ← halfway (ratio 0.5), column 2 ← col 1 (ratio 0).
	cases := []struct {
		name string
		in   []float32
		want []float32
	}{
		{"orthogonal unit vectors: slerp", vec([]float32{1, 0}, []float32{0, 1}), vec([]float32{1, 0}, []float32{s, s}, []float32{0, 1})},
		{"norms interpolate linearly", vec([]float32{2, 0}, []float32{0, 4}), vec([]float32{2, 0}, []float32{3 * s, 3 * s}, []float32{0, 4})},
		{"parallel vectors keep the first", vec([]float32{1, 1}, []float32{3, 3}), vec([]float32{1, 1}, []float32{1, 1}, []float32{3, 3})},
		{"opposite vectors: linear", vec([]float32{1, 0}, []float32{-3, 0}), vec([]float32{1, 0}, []float32{-1, 0}, []float32{-3, 0})},
		{"zero vector: scaled direction", vec([]float32{0, 0}, []float32{0, 2}), vec([]float32{0, 0}, []float32{0, s}, []float32{0, 2})},
	}
	for _, c := range cases {
		got, err := vae.Bislerp(c.in, 1, 2, 1, 2, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.want {
			if math.Abs(float64(got[i]-c.want[i])) > 1e-6 {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

func TestBislerpShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, c, h, w := 2, 4, 5, 6
	src := make([]float32, n*c*h*w)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	// Same size: every output vector is its source vector (ratio 0).
	same, err := vae.Bislerp(src, n, c, h, w, h, w)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(same, src); d > 1e-5 {
		t.Errorf("same-size bislerp differs from its input by %g", d)
	}
	// 2x along both axes: the corners are copies of the source corners, norms stay between
	// the neighbours' extremes.
	up, err := vae.Bislerp(src, n, c, h, w, 2*h, 2*w)
	if err != nil {
		t.Fatal(err)
	}
	if len(up) != n*c*4*h*w {
		t.Fatalf("%d values", len(up))
	}
	for b := range n {
		for k := range c {
			if got, want := up[((b*c+k)*2*h)*2*w], src[((b*c+k)*h)*w]; got != want {
				t.Errorf("corner of sample %d channel %d: %v, want %v", b, k, got, want)
			}
		}
	}
	down, err := vae.Bislerp(src, n, c, h, w, 2, 3)
	if err != nil || len(down) != n*c*6 {
		t.Fatalf("downscale: %v, %d values", err, len(down))
	}
	for _, v := range append(up, down...) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite output")
		}
	}
	for _, bad := range []struct {
		src                    []float32
		n, c, h, w, outH, outW int
		want                   string
	}{
		{src, n, c, h, w, 0, 3, "invalid sizes"},
		{src[:10], n, c, h, w, 2, 2, "10 values"},
	} {
		if _, err := vae.Bislerp(bad.src, bad.n, bad.c, bad.h, bad.w, bad.outH, bad.outW); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Bislerp(%d values → %dx%d): %v, want %q", len(bad.src), bad.outW, bad.outH, err, bad.want)
		}
	}
}
