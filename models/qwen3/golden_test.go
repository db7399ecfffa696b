package qwen3

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/internal/golden/goldentensor"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// goldenCase is the part of a qwen3_* manifest case these tests read.
type goldenCase struct {
	Weights struct {
		File string `json:"file"`
	} `json:"weights"`
	IO struct {
		File    string                     `json:"file"`
		Tensors map[string]json.RawMessage `json:"tensors"`
	} `json:"io"`
	Config     map[string]any `json:"config"`
	FP32VsFP64 *struct {
		MaxAbs float64 `json:"max_abs"`
	} `json:"fp32_vs_fp64"`
}

// tolerance follows the manifest's guide: about 10× the float32-vs-float64 deviation of the
// upstream code, 1e-4 (zimage.md §10) when a case does not give it.
func (c goldenCase) tolerance() float64 {
	if c.FP32VsFP64 != nil && c.FP32VsFP64.MaxAbs > 0 {
		return 10 * c.FP32VsFP64.MaxAbs
	}
	return 1e-4
}

func newCPU(tb testing.TB) tensor.Backend {
	tb.Helper()
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { be.Close() })
	return be
}

// readBack copies a backend tensor to host float32 and frees it.
func readBack(tb testing.TB, be tensor.Backend, x *tensor.Tensor) []float32 {
	tb.Helper()
	out := make([]float32, x.NumElements())
	if err := be.Read(out, x); err != nil {
		tb.Fatal(err)
	}
	be.Free(x)
	return out
}

// maxAbsDiff returns the largest |got-want| and the largest |want|.
func maxAbsDiff(got, want []float32) (diff, scale float64) {
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	return diff, scale
}

func compare(t *testing.T, what string, got []float32, gotShape []int, want []float32, wantShape []int, tol float64) {
	t.Helper()
	if !slices.Equal(gotShape, wantShape) || len(got) != len(want) {
		t.Errorf("%s: shape %v, want %v", what, gotShape, wantShape)
		return
	}
	for i, v := range got {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Errorf("%s: element %d is %v", what, i, v)
			return
		}
	}
	diff, scale := maxAbsDiff(got, want)
	t.Logf("%s: max abs error %.3g (values up to %.3g, tolerance %.3g)", what, diff, scale, tol)
	if diff > tol {
		t.Errorf("%s: max abs error %.3g > tolerance %.3g", what, diff, tol)
	}
}

// TestGolden checks the encoder against ComfyUI's Qwen3 outputs: every qwen3_* case of the
// manifest (qwen3_hidden: the layer L-2 hidden state, every layer input, the final-normed output),
// and the Qwen3 context of every other case that stores input_ids beside a context.
func TestGolden(t *testing.T) {
	m := golden.MustLoad(t)
	be := newCPU(t)
	var names []string
	for name := range m.Cases {
		if strings.HasPrefix(name, "qwen3_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if !slices.Contains(names, "qwen3_hidden") {
		t.Fatalf("manifest %s has no qwen3_hidden case (cases: %v)", m.Dir, names)
	}
	cases := map[string]goldenCase{}
	for _, name := range names {
		var c goldenCase
		if err := json.Unmarshal(m.Cases[name], &c); err != nil {
			t.Fatalf("case %s: %v", name, err)
		}
		cases[name] = c
		t.Run(name, func(t *testing.T) { runQwen3Case(t, m, be, c) })
	}
	// Contexts of the pipeline cases, computed by the same tiny encoder.
	ref := cases["qwen3_hidden"]
	var others []string
	for name := range m.Cases {
		if !strings.HasPrefix(name, "qwen3_") {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		var c goldenCase
		if err := json.Unmarshal(m.Cases[name], &c); err != nil || c.IO.File == "" {
			continue
		}
		for _, pair := range [][2]string{{"input_ids", "context"}, {"neg_input_ids", "neg_context"}} {
			if c.IO.Tensors[pair[0]] == nil || c.IO.Tensors[pair[1]] == nil {
				continue
			}
			t.Run("context/"+name+"/"+pair[1], func(t *testing.T) {
				runContextCase(t, m, be, ref, c.IO.File, pair[0], pair[1])
			})
		}
	}
}

func loadGoldenEncoder(t *testing.T, m *golden.Manifest, be tensor.Backend, c goldenCase, opts Options) *Encoder {
	t.Helper()
	if c.Weights.File == "" {
		t.Fatal("case names no weights file")
	}
	enc, err := Load(m.Path(c.Weights.File), be, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return enc
}

func runQwen3Case(t *testing.T, m *golden.Manifest, be tensor.Backend, c goldenCase) {
	enc := loadGoldenEncoder(t, m, be, c, Options{Full: true})
	cfg := enc.Config()
	t.Logf("%v", enc)
	// The configuration read from shapes and sidecar must be the case's.
	for key, got := range map[string]float64{
		"vocab_size": float64(cfg.VocabSize), "hidden_size": float64(cfg.HiddenSize),
		"intermediate_size": float64(cfg.IntermediateSize), "num_hidden_layers": float64(cfg.NumHiddenLayers),
		"num_attention_heads": float64(cfg.NumAttentionHeads), "num_key_value_heads": float64(cfg.NumKeyValueHeads),
		"head_dim": float64(cfg.HeadDim), "rms_norm_eps": cfg.RMSNormEps, "rope_theta": cfg.RoPETheta,
	} {
		if want, ok := c.Config[key].(float64); ok && want != got {
			t.Errorf("config %s = %v, the case says %v", key, got, want)
		}
	}
	if want, ok := c.Config["layer_idx"].(float64); ok {
		if l, _ := cfg.resolveLayer(int(want)); l != enc.HiddenLayer() {
			t.Errorf("hidden layer %d, the case's layer_idx %v means %d", enc.HiddenLayer(), want, l)
		}
	}

	io := goldentensor.Open(t, m.Path(c.IO.File))
	ids, idShape := io.Ints("input_ids"), io.Shape("input_ids")
	if len(idShape) != 2 || idShape[0] != 1 {
		t.Fatalf("input_ids shape %v, want [1, n]", idShape)
	}
	var mask []int
	if io.Has("attention_mask") {
		mask = io.Ints("attention_mask")
	}
	n, H, L := len(ids), cfg.HiddenSize, cfg.NumHiddenLayers
	tol := c.tolerance()
	ctx := context.Background()
	checked := 0

	for _, name := range []string{"hidden_layer_m2", "hidden"} {
		if !io.Has(name) {
			continue
		}
		want, shape := io.Floats(name), io.Shape(name)
		h, err := enc.HiddenMasked(ctx, ids, mask)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, name, readBack(t, be, h), h.Shape(), want, shape, tol)
		checked++
	}

	layers := make([]int, L)
	for i := range layers {
		layers[i] = i
	}
	res, err := enc.Forward(ctx, Request{IDs: ids, Mask: mask, Layers: layers, Embeddings: true, Final: true})
	if err != nil {
		t.Fatal(err)
	}
	emb := readBack(t, be, res.Embeddings)
	outs := make([][]float32, L)
	for i, x := range res.Layers {
		outs[i] = readBack(t, be, x)
	}
	final := readBack(t, be, res.Final)
	if io.Has("all_hidden_states") {
		// [1, L+1, n, H]: entry 0 the embeddings, entry i the input of layer i (the output of
		// layer i-1), entry L the final-normed output.
		all, shape := io.Floats("all_hidden_states"), io.Shape("all_hidden_states")
		if !slices.Equal(shape, []int{1, L + 1, n, H}) {
			t.Fatalf("all_hidden_states shape %v, want %v", shape, []int{1, L + 1, n, H})
		}
		row := func(i int) []float32 { return all[i*n*H : (i+1)*n*H] }
		want3 := []int{1, n, H}
		compare(t, "all_hidden_states[0] (embeddings)", emb, want3, row(0), want3, tol)
		for i := 1; i < L; i++ {
			compare(t, fmt.Sprintf("all_hidden_states[%d] (layer %d output)", i, i-1), outs[i-1], want3, row(i), want3, tol)
		}
		compare(t, fmt.Sprintf("all_hidden_states[%d] (final norm)", L), final, want3, row(L), want3, tol)
		checked++
	}
	if io.Has("final_normed") {
		want, shape := io.Floats("final_normed"), io.Shape("final_normed")
		compare(t, "final_normed", final, []int{1, n, H}, want, shape, tol)
		checked++
	}
	if checked == 0 {
		t.Fatalf("%s holds none of the outputs this test knows", c.IO.File)
	}
}

func runContextCase(t *testing.T, m *golden.Manifest, be tensor.Backend, ref goldenCase, file, idsName, ctxName string) {
	io := goldentensor.Open(t, m.Path(file))
	want, shape := io.Floats(ctxName), io.Shape(ctxName)
	enc := loadGoldenEncoder(t, m, be, ref, Options{})
	if shape[len(shape)-1] != enc.Config().HiddenSize {
		t.Fatalf("%s is %v wide; the Qwen3 golden encoder is %d wide", ctxName, shape, enc.Config().HiddenSize)
	}
	ids := io.Ints(idsName)
	h, err := enc.Hidden(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, ctxName, readBack(t, be, h), h.Shape(), want, shape, ref.tolerance())
}
