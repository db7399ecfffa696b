package lora_test

import (
	"math"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// tensorFile is an opened safetensors file whose tensors a test reads.
type tensorFile struct {
	t *testing.T
	f *safetensors.File
}

func openFile(t *testing.T, path string) *tensorFile {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatalf("golden file: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return &tensorFile{t: t, f: f}
}

// tensor returns the named tensor (any float dtype) as a host tensor.
func (tf *tensorFile) tensor(name string) *tensor.Tensor {
	tf.t.Helper()
	info, ok := tf.f.Info(name)
	if !ok {
		tf.t.Fatalf("%s: no tensor %q", tf.f.Path(), name)
	}
	dt, err := tensor.ParseDType(string(info.DType))
	if err != nil {
		tf.t.Fatalf("%s: %s: %v", tf.f.Path(), name, err)
	}
	data, err := tf.f.Data(name)
	if err != nil {
		tf.t.Fatal(err)
	}
	x, err := tensor.FromBytes(data, dt, info.Shape...)
	if err != nil {
		tf.t.Fatalf("%s: %s: %v", tf.f.Path(), name, err)
	}
	return x
}

func (tf *tensorFile) floats(name string) []float32 {
	tf.t.Helper()
	v, err := tf.tensor(name).ToFloat32()
	if err != nil {
		tf.t.Fatal(err)
	}
	return v
}

func readAll(t testing.TB, be tensor.Backend, x *tensor.Tensor) []float32 {
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
