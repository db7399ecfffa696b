package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

func refRMS(x, w []float64, d int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/d; r++ {
		var ss float64
		for _, v := range x[r*d : (r+1)*d] {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(d)+eps)
		for i := range d {
			y := x[r*d+i] * inv
			if w != nil {
				y *= w[i]
			}
			out[r*d+i] = y
		}
	}
	return out
}

func refLN(x, w, b []float64, d int, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/d; r++ {
		row := x[r*d : (r+1)*d]
		var m, v float64
		for _, e := range row {
			m += e
		}
		m /= float64(d)
		for _, e := range row {
			v += (e - m) * (e - m)
		}
		v /= float64(d)
		for i, e := range row {
			y := (e - m) / math.Sqrt(v+eps)
			if w != nil {
				y *= w[i]
			}
			if b != nil {
				y += b[i]
			}
			out[r*d+i] = y
		}
	}
	return out
}

func TestRMSNormLayerNorm(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(6, 6))
	tests := []struct {
		name   string
		shape  []int
		affine bool
		layout string // "", "strided", "transposed", "inplace"
	}{
		{"plain", []int{3, 7}, true, ""},
		{"no weight", []int{2, 3, 33}, false, ""},
		{"strided", []int{4, 129}, true, "strided"},
		{"transposed", []int{5, 6}, true, "transposed"},
		{"in place", []int{3, 3840}, true, "inplace"},
		{"single element rows", []int{4, 1}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.shape[len(tc.shape)-1]
			x := randT(t, rng, tensor.F32, tc.shape...)
			var w, b *tensor.Tensor
			var wv, bv []float64
			if tc.affine {
				w = randT(t, rng, tensor.BF16, d)
				b = randT(t, rng, tensor.F32, d)
				wv, bv = vals(t, w), vals(t, b)
			}
			xv := vals(t, x)
			wantRMS := refRMS(xv, wv, d, 1e-6)
			wantLN := refLN(xv, wv, bv, d, 1e-5)
			x2, _ := be.Copy(nil, x)
			var dst, dst2 *tensor.Tensor
			switch tc.layout {
			case "strided":
				x, x2 = strided(t, be, x, false), strided(t, be, x, false)
			case "transposed":
				x, x2 = strided(t, be, x, true), strided(t, be, x, true)
			case "inplace":
				dst, dst2 = x, x2
			}
			got, err := be.RMSNorm(dst, x, w, 1e-6)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "rmsnorm", vals(t, got), wantRMS, nil, 1e-6, 2e-6)
			got, err = be.LayerNorm(dst2, x2, w, b, 1e-5)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "layernorm", vals(t, got), wantLN, nil, 2e-6, 2e-6)
		})
	}
	// Hand-computed: rms of [3, 4] is sqrt(12.5).
	x, _ := tensor.FromFloat32([]float32{3, 4}, 1, 2)
	got, _ := be.RMSNorm(nil, x, nil, 0)
	closeTo(t, "rms hand", vals(t, got), []float64{3 / math.Sqrt(12.5), 4 / math.Sqrt(12.5)}, nil, 0, 1e-7)
	got, _ = be.LayerNorm(nil, x, nil, nil, 0)
	closeTo(t, "ln hand", vals(t, got), []float64{-1, 1}, nil, 0, 1e-7)
	if _, err := be.RMSNorm(nil, x, randT(t, rng, tensor.F32, 3), 1e-6); err == nil {
		t.Error("rmsnorm accepted a wrong weight size")
	}
	if _, err := be.LayerNorm(nil, x, nil, randT(t, rng, tensor.F32, 1, 2), 1e-6); err == nil {
		t.Error("layernorm accepted a 2-D bias")
	}
}

func refGroupNorm(x, w, b []float64, n, c, s, g int, eps float64) []float64 {
	out := make([]float64, len(x))
	cg := c / g
	for ni := range n {
		for gi := range g {
			var m, v float64
			for ch := gi * cg; ch < (gi+1)*cg; ch++ {
				for i := range s {
					m += x[(ni*c+ch)*s+i]
				}
			}
			m /= float64(cg * s)
			for ch := gi * cg; ch < (gi+1)*cg; ch++ {
				for i := range s {
					e := x[(ni*c+ch)*s+i] - m
					v += e * e
				}
			}
			v /= float64(cg * s)
			for ch := gi * cg; ch < (gi+1)*cg; ch++ {
				for i := range s {
					y := (x[(ni*c+ch)*s+i] - m) / math.Sqrt(v+eps)
					if w != nil {
						y = y*w[ch] + b[ch]
					}
					out[(ni*c+ch)*s+i] = y
				}
			}
		}
	}
	return out
}

func TestGroupNorm(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(8, 8))
	tests := []struct {
		name   string
		shape  []int
		groups int
		affine bool
		layout string
	}{
		{"group size 1", []int{2, 4, 5, 7}, 4, true, ""},
		{"group size 2", []int{1, 8, 3, 3}, 4, true, ""},
		{"no affine 3d", []int{2, 6, 11}, 3, false, ""},
		{"transposed", []int{2, 4, 5, 7}, 2, true, "transposed"},
		{"strided", []int{1, 4, 6, 6}, 2, true, "strided"},
		{"in place", []int{1, 4, 6, 6}, 2, true, "inplace"},
		{"bf16 dst", []int{1, 4, 6, 6}, 2, true, "bf16dst"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, c := tc.shape[0], tc.shape[1]
			s := 1
			for _, d := range tc.shape[2:] {
				s *= d
			}
			x := randT(t, rng, tensor.F32, tc.shape...)
			var w, b *tensor.Tensor
			var wv, bv []float64
			if tc.affine {
				w, b = randT(t, rng, tensor.BF16, c), randT(t, rng, tensor.F32, c)
				wv, bv = vals(t, w), vals(t, b)
			}
			want := refGroupNorm(vals(t, x), wv, bv, n, c, s, tc.groups, 1e-6)
			var dst *tensor.Tensor
			atol := 2e-6
			switch tc.layout {
			case "transposed":
				x = strided(t, be, x, true)
			case "strided":
				x = strided(t, be, x, false)
			case "inplace":
				dst = x
			case "bf16dst":
				dst, _ = tensor.Zeros(tensor.BF16, tc.shape...)
				atol = 2e-2
			}
			got, err := be.GroupNorm(dst, x, w, b, tc.groups, 1e-6)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "groupnorm", vals(t, got), want, nil, atol, 2e-6)
		})
	}
	x := randT(t, rng, tensor.F32, 1, 6, 2)
	if _, err := be.GroupNorm(nil, x, nil, nil, 4, 1e-6); err == nil {
		t.Error("groupnorm accepted 6 channels in 4 groups")
	}
	if _, err := be.GroupNorm(nil, randT(t, rng, tensor.F32, 6), nil, nil, 2, 1e-6); err == nil {
		t.Error("groupnorm accepted a 1-D input")
	}
}

func TestSoftmax(t *testing.T) {
	be := newBackend(t)
	inf := float32(math.Inf(-1))
	x, _ := tensor.FromFloat32([]float32{0, float32(math.Log(3)), 1000, 1000, inf, 0, inf, inf}, 4, 2)
	got, err := be.Softmax(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	g := vals(t, got)
	closeTo(t, "softmax", g[:6], []float64{0.25, 0.75, 0.5, 0.5, 0, 1}, nil, 1e-7, 1e-6)
	if !math.IsNaN(g[6]) || !math.IsNaN(g[7]) {
		t.Errorf("softmax of an all -Inf row = %v, want NaN like torch", g[6:])
	}
}
