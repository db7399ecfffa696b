// Package goldentensor reads the tensors of golden safetensors files (recorded reference inputs
// and outputs) for tests: float tensors of any stored dtype as host tensors or float32 values,
// integer tensors as ints. A missing file or tensor fails the test with its path and name.
//
// It is a test helper, like net/http/httptest: only _test.go files import it. It must not
// compare results or know the golden manifest's layout (package golden does that).
package goldentensor

import (
	"encoding/binary"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// File is an opened golden safetensors file; it is closed when the test ends.
type File struct {
	tb testing.TB
	f  *safetensors.File
}

// Open opens path for the rest of the test.
func Open(tb testing.TB, path string) *File {
	tb.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		tb.Fatalf("golden file: %v", err)
	}
	tb.Cleanup(func() { f.Close() })
	return &File{tb: tb, f: f}
}

// Path is the file's path.
func (f *File) Path() string { return f.f.Path() }

// Names lists the file's tensors in file order.
func (f *File) Names() []string { return f.f.Names() }

// Has reports whether the file holds a tensor called name.
func (f *File) Has(name string) bool { _, ok := f.f.Info(name); return ok }

func (f *File) info(name string) safetensors.Info {
	f.tb.Helper()
	info, ok := f.f.Info(name)
	if !ok {
		f.tb.Fatalf("%s: no tensor %q", f.f.Path(), name)
	}
	return info
}

func (f *File) data(name string) []byte {
	f.tb.Helper()
	b, err := f.f.Data(name)
	if err != nil {
		f.tb.Fatalf("%s: %s: %v", f.f.Path(), name, err)
	}
	return b
}

// Shape is the named tensor's shape.
func (f *File) Shape(name string) []int { f.tb.Helper(); return f.info(name).Shape }

// Tensor returns the named float tensor as a host tensor in its stored dtype.
func (f *File) Tensor(name string) *tensor.Tensor {
	f.tb.Helper()
	info := f.info(name)
	dt, err := tensor.ParseDType(string(info.DType))
	if err != nil {
		f.tb.Fatalf("%s: %s: %v", f.f.Path(), name, err)
	}
	x, err := tensor.FromBytes(f.data(name), dt, info.Shape...)
	if err != nil {
		f.tb.Fatalf("%s: %s: %v", f.f.Path(), name, err)
	}
	return x
}

// Floats returns the named tensor's values as float32: float dtypes widened exactly, I64 and
// I32 converted (token ids, positions).
func (f *File) Floats(name string) []float32 {
	f.tb.Helper()
	switch f.info(name).DType {
	case safetensors.I64, safetensors.I32:
		ints := f.Ints(name)
		out := make([]float32, len(ints))
		for i, v := range ints {
			out[i] = float32(v)
		}
		return out
	}
	v, err := f.Tensor(name).ToFloat32()
	if err != nil {
		f.tb.Fatalf("%s: %s: %v", f.f.Path(), name, err)
	}
	return v
}

// Ints returns the values of the named I64 or I32 tensor.
func (f *File) Ints(name string) []int {
	f.tb.Helper()
	info := f.info(name)
	data := f.data(name)
	out := make([]int, info.NumElements())
	switch info.DType {
	case safetensors.I64:
		for i := range out {
			out[i] = int(int64(binary.LittleEndian.Uint64(data[8*i:])))
		}
	case safetensors.I32:
		for i := range out {
			out[i] = int(int32(binary.LittleEndian.Uint32(data[4*i:])))
		}
	default:
		f.tb.Fatalf("%s: %s has dtype %s, want I64 or I32", f.f.Path(), name, info.DType)
	}
	return out
}
