// Package tensortest checks a tensor.Backend against the CPU reference backend: every op of
// the interface on random inputs (odd sizes, strided and broadcast views, bf16/f16/fp8
// weights, in-place writes), with the results of both compared element by element. The CUDA
// backend's tests call Conformance; it must not depend on any model code.
package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// Case is one op run with the same inputs on the backend under test and on the reference.
type Case struct {
	Name string
	// Inputs makes the host inputs (they are uploaded with ToDevice before Run).
	Inputs func(rng *rand.Rand) []*tensor.Tensor
	// Run applies the op to inputs that live on be.
	Run func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error)
	// Tolerance: |got - want| ≤ ATol + RTol·|want|.
	ATol, RTol float64
}

// Conformance runs every case of Cases on be and compares with the CPU reference.
func Conformance(t *testing.T, be tensor.Backend) {
	t.Helper()
	ref, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			// Each side gets its own copy of the inputs, drawn from the same seed: in-place
			// cases modify their inputs, so the reference run must not feed the device run.
			inputs := func() []*tensor.Tensor { return c.Inputs(rand.New(rand.NewPCG(42, uint64(len(c.Name))))) }
			want, err := c.Run(ref, inputs())
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			host := inputs()
			dev := make([]*tensor.Tensor, len(host))
			for i, h := range host {
				if dev[i], err = be.ToDevice(h); err != nil {
					t.Fatalf("upload input %d: %v", i, err)
				}
			}
			got, err := c.Run(be, dev)
			if err != nil {
				t.Fatalf("%s: %v", be.Name(), err)
			}
			Compare(t, be, got, ref, want, c.ATol, c.RTol)
		})
	}
}

// Compare reads got (on be) and want (on ref) and checks shape, then every element.
func Compare(t *testing.T, be tensor.Backend, got *tensor.Tensor, ref tensor.Backend, want *tensor.Tensor, atol, rtol float64) {
	t.Helper()
	if !got.SameShape(want) {
		t.Fatalf("shape %v, want %v", got.Shape(), want.Shape())
	}
	g := make([]float32, got.NumElements())
	w := make([]float32, want.NumElements())
	if err := be.Read(g, got); err != nil {
		t.Fatal(err)
	}
	if err := ref.Read(w, want); err != nil {
		t.Fatal(err)
	}
	for i := range w {
		gv, wv := float64(g[i]), float64(w[i])
		if math.IsNaN(wv) || math.IsInf(wv, 0) {
			if !(math.IsNaN(wv) && math.IsNaN(gv)) && gv != wv {
				t.Fatalf("element %d = %v, want %v", i, gv, wv)
			}
			continue
		}
		if !(math.Abs(gv-wv) <= atol+rtol*math.Abs(wv)) {
			t.Fatalf("element %d of %v = %.9g, want %.9g (|diff| %.3g)", i, want.Shape(), gv, wv, math.Abs(gv-wv))
		}
	}
}

// Rand makes a host tensor of dtype dt with values uniform in [lo, hi), rounded to dt.
func Rand(rng *rand.Rand, dt tensor.DType, lo, hi float64, shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + rng.Float64()*(hi-lo))
	}
	x, err := tensor.FromFloat32As(dt, v, shape...)
	if err != nil {
		panic(fmt.Sprintf("tensortest: %v", err)) // only reachable with a bad shape in a case table
	}
	return x
}

func r(rng *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	return Rand(rng, dt, -1, 1, shape...)
}

func ins(ts ...*tensor.Tensor) []*tensor.Tensor { return ts }

// padded returns a host tensor of shape with the last dimension padded by 3 in memory; cases
// slice it back on the device to get a strided view.
func padded(rng *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	s := append([]int(nil), shape...)
	s[len(s)-1] += 3
	return r(rng, dt, s...)
}

func unpad(x *tensor.Tensor) *tensor.Tensor {
	v, err := x.Slice(-1, 1, x.Dim(-1)-2)
	if err != nil {
		panic(err)
	}
	return v
}

func must(x *tensor.Tensor, err error) *tensor.Tensor {
	if err != nil {
		panic(err)
	}
	return x
}
