package qwen3

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// TestParamShapesMatchReal4B compares ParamShapes(Qwen3_4B()) with the key list of ComfyUI's
// qwen_3_4b.safetensors.
func TestParamShapesMatchReal4B(t *testing.T) {
	dir, err := golden.Dir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "keys", "qwen3_4b_keys.tsv"))
	if err != nil {
		t.Fatalf("no key list: %v", err)
	}
	got, err := ParamShapes(Qwen3_4B())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		name, shape, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		n++
		g, ok := got[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		var dims []int
		for _, f := range strings.FieldsFunc(shape, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' }) {
			d := 0
			for _, c := range f {
				d = d*10 + int(c-'0')
			}
			dims = append(dims, d)
		}
		if !reflect.DeepEqual(g, dims) {
			t.Errorf("%s: %v, want %v", name, g, dims)
		}
	}
	if n != len(got) {
		t.Errorf("%d tensors, the real file has %d", len(got), n)
	}
}

// TestRandomWeightsLoad builds an encoder from RandomWeights stored as BF16 (through the
// safetensors writer) and runs it; the same seed gives the same weights.
func TestRandomWeightsLoad(t *testing.T) {
	c := Config{VocabSize: 300, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 3,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, HeadDim: 16, RMSNormEps: 1e-6, RoPETheta: 1e6}
	w1, err := RandomWeights(c, tensor.BF16, 9)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := RandomWeights(c, tensor.BF16, 9)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]safetensors.Entry{}
	for name, tt := range w1 {
		b1, _ := tt.HostBytes()
		b2, _ := w2[name].HostBytes()
		if !reflect.DeepEqual(b1, b2) {
			t.Fatalf("%s differs between two draws of one seed", name)
		}
		entries[name] = safetensors.Entry{DType: safetensors.BF16, Shape: tt.Shape(), Data: b1}
	}
	data, err := safetensors.Marshal(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse("rand.safetensors", data)
	if err != nil {
		t.Fatal(err)
	}
	be := newCPU(t)
	enc, err := New(f, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	h, err := enc.Hidden(t.Context(), []int{1, 2, 3, 299})
	if err != nil {
		t.Fatal(err)
	}
	out := readBack(t, be, h)
	be.Free(h)
	for _, v := range out {
		if v != v {
			t.Fatal("NaN in the hidden state")
		}
	}
	if _, err := RandomWeights(Config{}, tensor.BF16, 1); err == nil {
		t.Fatal("an invalid config gave weights")
	}
}
