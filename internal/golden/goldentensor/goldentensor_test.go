package goldentensor

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

func TestReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.safetensors")
	f32 := make([]byte, 12)
	for i, v := range []float32{1.5, -2, 3.25} {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
	}
	bf16 := []byte{0x80, 0x3f, 0x00, 0xc0} // 1, -2
	i64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(i64, uint64(7))
	neg := int64(-3)
	binary.LittleEndian.PutUint64(i64[8:], uint64(neg))
	i32 := []byte{5, 0, 0, 0}
	err := safetensors.WriteFile(path, map[string]safetensors.Entry{
		"f":   {DType: safetensors.F32, Shape: []int{3}, Data: f32},
		"b":   {DType: safetensors.BF16, Shape: []int{1, 2}, Data: bf16},
		"ids": {DType: safetensors.I64, Shape: []int{2}, Data: i64},
		"n":   {DType: safetensors.I32, Shape: []int{1}, Data: i32},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := Open(t, path)
	tests := []struct {
		name  string
		shape []int
		want  []float32
	}{
		{"f", []int{3}, []float32{1.5, -2, 3.25}},
		{"b", []int{1, 2}, []float32{1, -2}},
		{"ids", []int{2}, []float32{7, -3}},
		{"n", []int{1}, []float32{5}},
	}
	for _, tc := range tests {
		if !g.Has(tc.name) {
			t.Fatalf("Has(%q) = false", tc.name)
		}
		if got := g.Shape(tc.name); !slices.Equal(got, tc.shape) {
			t.Errorf("%s: shape %v, want %v", tc.name, got, tc.shape)
		}
		if got := g.Floats(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := g.Ints("ids"); !slices.Equal(got, []int{7, -3}) {
		t.Errorf("Ints(ids) = %v", got)
	}
	if g.Has("missing") {
		t.Error("Has(missing) = true")
	}
	if x := g.Tensor("b"); x.DType() != tensor.BF16 || x.NumElements() != 2 {
		t.Errorf("Tensor(b): %v %v", x.DType(), x.Shape())
	}
}
