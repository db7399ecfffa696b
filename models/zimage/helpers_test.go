package zimage

import (
	"math"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// testBackend is a small CPU backend (the test machines are shared).
func testBackend(t testing.TB) tensor.Backend {
	t.Helper()
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// read returns the values of a backend tensor.
func read(t testing.TB, be tensor.Backend, x *tensor.Tensor) []float32 {
	t.Helper()
	v := make([]float32, x.NumElements())
	if err := be.Read(v, x); err != nil {
		t.Fatal(err)
	}
	return v
}

// maxAbsDiff returns max |a−b| (Inf when the lengths differ or a value is NaN) and max |b|.
func maxAbsDiff(a, b []float32) (diff, absmax float64) {
	if len(a) != len(b) {
		return math.Inf(1), 0
	}
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1), 0
		}
		diff = math.Max(diff, d)
		absmax = math.Max(absmax, math.Abs(float64(b[i])))
	}
	return diff, absmax
}
