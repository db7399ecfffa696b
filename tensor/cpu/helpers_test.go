package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// backends returns one backend per available micro-kernel, so every GEMM path is tested.
func backends(t *testing.T) []*Backend {
	t.Helper()
	var out []*Backend
	for _, k := range kernels() {
		be, err := New(Options{Threads: 2, Kernel: k.name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		out = append(out, be)
	}
	return out
}

func newBackend(t testing.TB) *Backend {
	t.Helper()
	be, err := New(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// randT makes a host tensor of dtype dt with uniform values in [-1, 1), rounded to dt.
func randT(t testing.TB, rng *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	x, err := tensor.FromFloat32As(dt, v, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// vals returns the elements of x in row-major order as float64.
func vals(t testing.TB, x *tensor.Tensor) []float64 {
	t.Helper()
	f, err := x.ToFloat32()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// strided returns a non-contiguous view with x's values and dtype: the last dimension is
// padded in memory and the view is a slice of it (or, with transpose, a permuted buffer).
func strided(t testing.TB, be *Backend, x *tensor.Tensor, transpose bool) *tensor.Tensor {
	t.Helper()
	shape := x.Shape()
	r := len(shape)
	var v *tensor.Tensor
	if transpose && r >= 2 {
		rev := make([]int, r)
		perm := make([]int, r)
		for i := range r {
			rev[i] = shape[r-1-i]
			perm[i] = r - 1 - i
		}
		big, err := tensor.Zeros(x.DType(), rev...)
		if err != nil {
			t.Fatal(err)
		}
		v, err = big.Permute(perm...)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		pad := append([]int(nil), shape...)
		pad[r-1] += 3
		big, err := tensor.Zeros(x.DType(), pad...)
		if err != nil {
			t.Fatal(err)
		}
		v, err = big.Slice(r-1, 2, 2+shape[r-1])
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := be.Copy(v, x); err != nil {
		t.Fatal(err)
	}
	if v.IsContiguous() && x.NumElements() > 1 {
		t.Fatalf("strided view of %v is contiguous", shape)
	}
	return v
}

// closeTo compares got with want element-wise: |got-want| ≤ atol + rtol·scale[i] (scale nil
// means |want|).
func closeTo(t testing.TB, name string, got, want, scale []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range got {
		s := math.Abs(want[i])
		if scale != nil {
			s = scale[i]
		}
		g, w := got[i], want[i]
		if math.IsNaN(w) || math.IsInf(w, 0) {
			if !(math.IsNaN(w) && math.IsNaN(g)) && g != w {
				t.Fatalf("%s[%d] = %v, want %v", name, i, g, w)
			}
			continue
		}
		if !(math.Abs(g-w) <= atol+rtol*s) {
			t.Fatalf("%s[%d] = %.9g, want %.9g (diff %.3g, tol %.3g)", name, i, g, w, math.Abs(g-w), atol+rtol*s)
		}
	}
}

// index helpers for references on row-major data
func strides(shape []int) []int {
	s := make([]int, len(shape))
	p := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = p
		p *= shape[i]
	}
	return s
}

func name(parts ...any) string { return fmt.Sprint(parts...) }

// defaultThreads is what a default backend uses (benchmarks measure the whole machine).
func defaultThreads() int {
	be, _ := New(Options{})
	defer be.Close()
	return be.Threads()
}
