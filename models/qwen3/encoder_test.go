package qwen3

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

func intp(i int) *int { return &i }

func tinyConfig(hq, hkv, d int) Config {
	return Config{VocabSize: 300, HiddenSize: 48, IntermediateSize: 80, NumHiddenLayers: 3,
		NumAttentionHeads: hq, NumKeyValueHeads: hkv, HeadDim: d, RMSNormEps: 1e-6, RoPETheta: 1e6}
}

// TestForwardMatchesReference compares every layer output with refForward on random models of
// several shapes, weight dtypes, layouts and attention masks.
func TestForwardMatchesReference(t *testing.T) {
	ids := []int{5, 17, 299, 0, 42, 42, 7, 130, 64, 1, 250}
	eosMask := AttentionMask([]int{5, 17, 299, 0, 42, 9, 7, 130, 64, 1, 250}, 9) // 1 1 1 1 1 0 0 0 ...
	leftMask := AttentionMask([]int{9, 9, 9, 0, 42, 42, 7, 130, 9, 1, 250}, 9)   // 0 0 0 1 1 1 1 1 0 0 0
	wantEos := []int{1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0}
	wantLeft := []int{0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0}
	if !slices.Equal(eosMask, wantEos) || !slices.Equal(leftMask, wantLeft) {
		t.Fatalf("masks %v %v, want %v %v", eosMask, leftMask, wantEos, wantLeft)
	}
	tests := []struct {
		name  string
		cfg   Config
		dt    safetensors.DType
		outer string
		bare  bool
		mask  []int
	}{
		{"gqa 4/2 f32", tinyConfig(4, 2, 16), safetensors.F32, "", false, nil},
		{"gqa 8/2 bf16", tinyConfig(8, 2, 8), safetensors.BF16, "", false, nil},
		{"mha 3/3 f16, heads·dim != hidden", tinyConfig(3, 3, 20), safetensors.F16, "", false, nil},
		{"mqa 4/1 bf16, combined checkpoint", tinyConfig(4, 1, 12), safetensors.BF16, "text_encoders.qwen3_4b.transformer.", false, nil},
		{"bare Qwen3Model names", tinyConfig(4, 2, 16), safetensors.F32, "", true, nil},
		{"mask after a pad token", tinyConfig(4, 2, 16), safetensors.F32, "", false, eosMask},
		{"left padding (rows with every key masked)", tinyConfig(4, 2, 16), safetensors.BF16, "", false, leftMask},
		{"all-ones mask", tinyConfig(4, 2, 16), safetensors.F32, "", false, slices.Repeat([]int{1}, len(ids))},
	}
	be := newCPU(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries := randomModel(t, tc.cfg, tc.dt, tc.outer, tc.bare, uint64(i+1))
			enc, err := New(parsed(t, entries), be, Options{Full: true})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			if got := enc.Config(); got.HiddenSize != tc.cfg.HiddenSize || got.NumAttentionHeads != tc.cfg.NumAttentionHeads ||
				got.NumKeyValueHeads != tc.cfg.NumKeyValueHeads || got.HeadDim != tc.cfg.HeadDim || got.IntermediateSize != tc.cfg.IntermediateSize {
				t.Fatalf("config %+v, want %+v", got, tc.cfg)
			}
			prefix := tc.outer + "model."
			if tc.bare {
				prefix = tc.outer
			}
			want := refForward(tc.cfg, refWeights(t, entries, prefix), ids, tc.mask)
			res, err := enc.Forward(context.Background(), Request{IDs: ids, Mask: tc.mask, Layers: []int{0, 1, 2}})
			if err != nil {
				t.Fatal(err)
			}
			for l, x := range res.Layers {
				got := readBack(t, be, x)
				var diff, scale float64
				for j := range got {
					diff = max(diff, math.Abs(float64(got[j])-want[l][j]))
					scale = max(scale, math.Abs(want[l][j]))
				}
				t.Logf("layer %d: max abs error %.3g (values up to %.3g)", l, diff, scale)
				if diff > 5e-6*max(1, scale) || math.IsNaN(diff) {
					t.Errorf("layer %d: max abs error %.3g", l, diff)
				}
			}
		})
	}
}

// TestMaskKeepsValidRows: rows before the first masked key are the same with and without the
// mask (attention is causal), rows after it differ.
func TestMaskKeepsValidRows(t *testing.T) {
	be := newCPU(t)
	cfg := tinyConfig(4, 2, 16)
	enc, err := New(parsed(t, randomModel(t, cfg, safetensors.BF16, "", false, 9)), be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ids := []int{3, 1, 4, 1, 5, 9, 2, 6}
	mask := []int{1, 1, 1, 1, 0, 0, 0, 0}
	ctx := context.Background()
	a, err := enc.Hidden(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.HiddenMasked(ctx, ids, mask)
	if err != nil {
		t.Fatal(err)
	}
	x, y := readBack(t, be, a), readBack(t, be, b)
	H := cfg.HiddenSize
	d1, _ := maxAbsDiff(x[:4*H], y[:4*H])
	d2, _ := maxAbsDiff(x[4*H:], y[4*H:])
	if d1 > 1e-6 {
		t.Errorf("valid rows differ by %g with the mask", d1)
	}
	if d2 < 1e-3 {
		t.Errorf("masked rows differ by only %g: the mask had no effect", d2)
	}
}

func TestAttentionMask(t *testing.T) {
	const pad = 7
	tests := []struct {
		ids, want []int
	}{
		{nil, []int{}},
		{[]int{1, 2, 3}, []int{1, 1, 1}},
		{[]int{1, 7, 3}, []int{1, 0, 0}},
		{[]int{7, 7, 1, 2, 7, 3}, []int{0, 0, 1, 1, 0, 0}},
		{[]int{7}, []int{0}},
		{[]int{1, 2, 7}, []int{1, 1, 0}},
		{[]int{7, 1, 7, 7}, []int{0, 1, 0, 0}},
	}
	for _, tc := range tests {
		if got := AttentionMask(tc.ids, pad); !slices.Equal(got, tc.want) {
			t.Errorf("AttentionMask(%v) = %v, want %v", tc.ids, got, tc.want)
		}
	}
}

func TestRoPETables(t *testing.T) {
	// Position 0 is the identity; inv_freq[0] = 1 so column 0 holds cos(p), sin(p); the last
	// column turns by θ^(-(D-2)/D) per position.
	cos, sin := ropeTables(5, 8, 1e6)
	for k := range 4 {
		if cos[k] != 1 || sin[k] != 0 {
			t.Fatalf("position 0, column %d: cos %v sin %v", k, cos[k], sin[k])
		}
	}
	for p := range 5 {
		if math.Abs(float64(cos[p*4])-math.Cos(float64(p))) > 1e-7 || math.Abs(float64(sin[p*4])-math.Sin(float64(p))) > 1e-7 {
			t.Errorf("position %d column 0: %v %v", p, cos[p*4], sin[p*4])
		}
		a := float64(p) * math.Pow(1e6, -6.0/8)
		if math.Abs(float64(sin[p*4+3])-math.Sin(a)) > 1e-7 {
			t.Errorf("position %d column 3: sin %v, want %v", p, sin[p*4+3], math.Sin(a))
		}
	}
}

// TestLayerSelection: Options.LayerIdx and a sidecar's layer_idx pick the hidden layer.
func TestLayerSelection(t *testing.T) {
	be := newCPU(t)
	cfg := tinyConfig(4, 2, 16)
	entries := randomModel(t, cfg, safetensors.F32, "", false, 3)
	src := parsed(t, entries)
	full, err := New(src, be, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	ids := []int{1, 2, 3, 4}
	ctx := context.Background()
	res, err := full.Forward(ctx, Request{IDs: ids, Layers: []int{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	outs := make([][]float32, 3)
	for i, x := range res.Layers {
		outs[i] = readBack(t, be, x)
	}
	if full.HiddenLayer() != 1 {
		t.Errorf("default hidden layer %d, want 1 (L-2)", full.HiddenLayer())
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "te.safetensors")
	if err := safetensors.WriteFile(path, entries, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sidecar string
		opt     *int
		want    int
	}{
		{"default", "", nil, 1},
		{"option -1", "", intp(-1), 2},
		{"option 0", "", intp(0), 0},
		{"sidecar 0", `{"layer_idx": 0}`, nil, 0},
		{"sidecar -1", `{"layer_idx": -1}`, nil, 2},
		{"option wins over sidecar", `{"layer_idx": 0}`, intp(2), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := filepath.Join(dir, "te.config.json")
			os.Remove(sc)
			if tc.sidecar != "" {
				if err := os.WriteFile(sc, []byte(tc.sidecar), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			enc, err := Load(path, be, Options{LayerIdx: tc.opt})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			if enc.HiddenLayer() != tc.want {
				t.Fatalf("hidden layer %d, want %d", enc.HiddenLayer(), tc.want)
			}
			h, err := enc.Hidden(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			if got := readBack(t, be, h); !slices.Equal(got, outs[tc.want]) {
				t.Errorf("Hidden differs from layer %d's output", tc.want)
			}
		})
	}
}

// TestShardedFolder: a diffusers text_encoder/ folder (two shards, an index, config.json) and its
// index file give exactly what the single golden file gives.
func TestShardedFolder(t *testing.T) {
	m := golden.MustLoad(t)
	be := newCPU(t)
	src := filepath.Join(m.Dir, "qwen3_tiny_weights.safetensors")
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("golden directory without qwen3_tiny_weights.safetensors: %v", err)
	}
	single, err := Load(src, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	f, err := safetensors.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), "Z-Image-Turbo", "text_encoder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shards := []map[string]safetensors.Entry{{}, {}}
	weightMap := map[string]string{}
	for i, name := range f.Names() {
		info, _ := f.Info(name)
		data, _ := f.Data(name)
		shards[i%2][name] = safetensors.Entry{DType: info.DType, Shape: info.Shape, Data: data}
		weightMap[name] = fmt.Sprintf("model-%05d-of-00002.safetensors", i%2+1)
	}
	for i, s := range shards {
		if err := safetensors.WriteFile(filepath.Join(dir, fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)), s, nil); err != nil {
			t.Fatal(err)
		}
	}
	index := `{"metadata": {}, "weight_map": {`
	var parts []string
	for k, v := range weightMap {
		parts = append(parts, fmt.Sprintf("%q: %q", k, v))
	}
	index += strings.Join(parts, ", ") + "}}"
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	// An HF config.json as diffusers ships it, with fields this package does not read.
	cfg := single.Config()
	hf := fmt.Sprintf(`{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "torch_dtype": "float32",
		"hidden_size": %d, "num_attention_heads": %d, "num_key_value_heads": %d, "head_dim": %d,
		"rms_norm_eps": %g, "rope_theta": %g, "rope_scaling": null, "hidden_act": "silu", "attention_bias": false,
		"tie_word_embeddings": false, "bos_token_id": 151643}`,
		cfg.HiddenSize, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim, cfg.RMSNormEps, cfg.RoPETheta)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(hf), 0o644); err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 100, 1000, 7, 7}
	want, err := single.Hidden(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	w := readBack(t, be, want)
	for _, p := range []string{dir, dir + "/", filepath.Join(dir, "model.safetensors.index.json")} {
		enc, err := Load(p, be, Options{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		got, err := enc.Hidden(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(readBack(t, be, got), w) {
			t.Errorf("%s: hidden state differs from the single file's", p)
		}
		enc.Close()
	}
	// A config.json that contradicts the shapes is reported.
	bad := strings.Replace(hf, fmt.Sprintf(`"head_dim": %d`, cfg.HeadDim), fmt.Sprintf(`"head_dim": %d`, cfg.HeadDim*2), 1)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, be, Options{}); err == nil || !strings.Contains(err.Error(), "head_dim") {
		t.Errorf("contradicting config.json: error %v, want one naming head_dim", err)
	}
}

// TestLoadRejects: bad checkpoints give errors that name the problem, never panics.
func TestLoadRejects(t *testing.T) {
	be := newCPU(t)
	cfg := tinyConfig(4, 2, 16)
	base := func() map[string]safetensors.Entry { return randomModel(t, cfg, safetensors.F32, "", false, 5) }
	tests := []struct {
		name    string
		mutate  func(m map[string]safetensors.Entry)
		sidecar string
		opts    Options
		want    string
	}{
		{"missing tensor", func(m map[string]safetensors.Entry) { delete(m, "model.layers.1.mlp.up_proj.weight") },
			"", Options{}, `"model.layers.1.mlp.up_proj.weight" missing`},
		{"missing last layer tensor still checked", func(m map[string]safetensors.Entry) { delete(m, "model.layers.2.self_attn.k_norm.weight") },
			"", Options{}, `"model.layers.2.self_attn.k_norm.weight" missing`},
		{"wrong shape", func(m map[string]safetensors.Entry) {
			m["model.layers.0.mlp.down_proj.weight"] = entry(t, safetensors.F32, make([]float32, 48*81), 48, 81)
		}, "", Options{}, `"model.layers.0.mlp.down_proj.weight" has shape [48 81], want [48 80]`},
		{"integer weights", func(m map[string]safetensors.Entry) {
			m["model.layers.0.input_layernorm.weight"] = safetensors.Entry{DType: safetensors.I32, Shape: []int{48}, Data: make([]byte, 4*48)}
		}, "", Options{}, "dtype I32"},
		{"biases", func(m map[string]safetensors.Entry) {
			m["model.layers.0.self_attn.q_proj.bias"] = entry(t, safetensors.F32, make([]float32, 64), 64)
		}, "", Options{}, "no biases"},
		{"scaled fp8", func(m map[string]safetensors.Entry) {
			m["model.layers.0.self_attn.q_proj.scale_weight"] = entry(t, safetensors.F32, []float32{1}, 1)
		}, "", Options{}, "quantised"},
		{"no q_norm (Qwen2)", func(m map[string]safetensors.Entry) {
			for k := range m {
				if strings.Contains(k, "_norm.weight") && strings.Contains(k, "self_attn") {
					delete(m, k)
				}
			}
		}, "", Options{}, "not a Qwen3 text encoder"},
		{"not a text encoder", func(m map[string]safetensors.Entry) {
			clear(m)
			m["decoder.conv_in.weight"] = entry(t, safetensors.F32, make([]float32, 4), 2, 2, 1, 1)
		}, "", Options{}, "not a Qwen3 text encoder"},
		{"layer option out of range", nil, "", Options{LayerIdx: intp(3)}, "layer_idx = 3"},
		{"sidecar names another model", nil, `{"model": "flux_vae"}`, Options{}, "flux_vae"},
		{"sidecar contradicts the heads", nil, `{"num_attention_heads": 8}`, Options{}, "num_attention_heads"},
		{"sidecar layer_idx out of range", nil, `{"layer_idx": -3}`, Options{}, "layer_idx = -3"},
		{"sidecar bad eps", nil, `{"rms_norm_eps": 0}`, Options{}, "rms_norm_eps"},
		{"sidecar rope scaling", nil, `{"rope_scaling": {"type": "yarn"}}`, Options{}, "rope_scaling"},
		{"sidecar not JSON", nil, `{"layer_idx": `, Options{}, "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			if tc.mutate != nil {
				tc.mutate(m)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "te.safetensors")
			if err := safetensors.WriteFile(path, m, nil); err != nil {
				t.Fatal(err)
			}
			if tc.sidecar != "" {
				if err := os.WriteFile(filepath.Join(dir, "te.config.json"), []byte(tc.sidecar), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			enc, err := Load(path, be, tc.opts)
			if err == nil {
				enc.Close()
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "te.") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.safetensors"), be, Options{}); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestForwardRejects(t *testing.T) {
	be := newCPU(t)
	cfg := tinyConfig(4, 2, 16)
	enc, err := New(parsed(t, randomModel(t, cfg, safetensors.F32, "", false, 6)), be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		req  Request
		want string
	}{
		{"no ids", ctx, Request{}, "no token ids"},
		{"id too large", ctx, Request{IDs: []int{1, 300}}, "token id 300 at position 1"},
		{"negative id", ctx, Request{IDs: []int{-1}}, "token id -1"},
		{"mask length", ctx, Request{IDs: []int{1, 2}, Mask: []int{1}}, "1 entries for 2 tokens"},
		{"mask value", ctx, Request{IDs: []int{1, 2}, Mask: []int{1, 2}}, "entry 1 is 2"},
		{"layer not loaded", ctx, Request{IDs: []int{1}, Layers: []int{-1}}, "not loaded"},
		{"layer out of range", ctx, Request{IDs: []int{1}, Layers: []int{3}}, "outside the 3 decoder layers"},
		{"final not loaded", ctx, Request{IDs: []int{1}, Final: true}, "final norm"},
		{"canceled", canceled, Request{IDs: []int{1}}, "context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := enc.Forward(tc.ctx, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := enc.Forward(canceled, Request{IDs: []int{1}}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled forward: %v does not wrap context.Canceled", err)
	}
	// Only embeddings: no layer runs.
	res, err := enc.Forward(ctx, Request{IDs: []int{4, 2}, Layers: []int{}, Embeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Layers) != 0 || res.Embeddings == nil || !res.Embeddings.ShapeIs(1, 2, 48) {
		t.Fatalf("embeddings-only result %+v", res)
	}
	be.Free(res.Tensors()...)
	// After Close, calls fail cleanly.
	enc.Close()
	if _, err := enc.Hidden(ctx, []int{1}); err == nil || !errors.Is(err, tensor.ErrFreed) {
		t.Errorf("Hidden after Close: %v, want tensor.ErrFreed", err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Qwen3_4B()
	if err := good.Validate(); err != nil {
		t.Fatalf("Qwen3-4B: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"odd head dim", func(c *Config) { c.HeadDim = 127 }, "head_dim = 127 must be even"},
		{"heads not a multiple", func(c *Config) { c.NumKeyValueHeads = 5 }, "not a multiple"},
		{"zero layers", func(c *Config) { c.NumHiddenLayers = 0 }, "num_hidden_layers = 0"},
		{"negative vocab", func(c *Config) { c.VocabSize = -1 }, "vocab_size = -1"},
		{"eps too small for float32", func(c *Config) { c.RMSNormEps = 1e-50 }, "rms_norm_eps"},
		{"theta", func(c *Config) { c.RoPETheta = math.Inf(1) }, "rope_theta"},
		{"layer", func(c *Config) { i := -36; c.LayerIdx = &i }, "layer_idx = -36"},
	}
	for _, tc := range tests {
		c := Qwen3_4B()
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRealKeyList: the real Qwen3-4B tensor list (names and shapes) is recognised with the
// real configuration and every tensor the encoder needs is found under its real name.
func TestRealKeyList(t *testing.T) {
	m := golden.MustLoad(t)
	data, err := os.ReadFile(filepath.Join(m.Dir, "keys", "qwen3_4b_keys.tsv"))
	if err != nil {
		t.Fatalf("no key list: %v", err)
	}
	entries := map[string]safetensors.Entry{}
	for _, line := range strings.Split(string(data), "\n") {
		name, shape, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		var dims []int
		for _, f := range strings.FieldsFunc(shape, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' }) {
			var d int
			fmt.Sscan(f, &d)
			dims = append(dims, d)
		}
		entries[name] = safetensors.Entry{DType: safetensors.BF16, Shape: dims}
	}
	if len(entries) != 398 {
		t.Fatalf("key list has %d tensors, want 398", len(entries))
	}
	r := detectQwen3(fakeSource(entries))
	d, err := configFrom(r, "qwen_3_4b.safetensors", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Qwen3_4B()
	if d.Config.LayerIdx != nil || d.VocabSize != want.VocabSize || d.HiddenSize != want.HiddenSize ||
		d.IntermediateSize != want.IntermediateSize || d.NumHiddenLayers != want.NumHiddenLayers ||
		d.NumAttentionHeads != want.NumAttentionHeads || d.NumKeyValueHeads != want.NumKeyValueHeads ||
		d.HeadDim != want.HeadDim || d.RMSNormEps != want.RMSNormEps || d.RoPETheta != want.RoPETheta {
		t.Fatalf("config from the real key list %+v, want %+v", d.Config, want)
	}
	hidden, _ := d.resolveLayer(DefaultLayerIdx)
	if hidden != 34 {
		t.Errorf("hidden layer %d, want 34", hidden)
	}
	src := fakeSource(entries)
	if err := checkExtras("qwen_3_4b.safetensors", src, d.tensorPrefix()); err != nil {
		t.Fatal(err)
	}
	H, D, I := want.HiddenSize, want.HeadDim, want.IntermediateSize
	for _, s := range []spec{
		{d.tensorPrefix() + "embed_tokens.weight", []int{want.VocabSize, H}},
		{d.tensorPrefix() + "layers.35.self_attn.q_proj.weight", []int{32 * D, H}},
		{d.tensorPrefix() + "layers.34.self_attn.o_proj.weight", []int{H, 32 * D}},
		{d.tensorPrefix() + "layers.0.mlp.down_proj.weight", []int{H, I}},
		{d.tensorPrefix() + "norm.weight", []int{H}},
	} {
		if err := s.check(src); err != nil {
			t.Error(err)
		}
	}
}

// fakeSource is a safetensors.Source of names and shapes only.
type fakeSource map[string]safetensors.Entry

func (f fakeSource) Names() []string {
	var out []string
	for k := range f {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (f fakeSource) Info(name string) (safetensors.Info, bool) {
	e, ok := f[name]
	return safetensors.Info{Name: name, DType: e.DType, Shape: e.Shape}, ok
}

func (f fakeSource) Data(name string) ([]byte, error) { return nil, errors.New("no data") }

func (f fakeSource) Metadata() map[string]string { return nil }

// TestConcurrentForward: one encoder serves several goroutines at once with identical results.
func TestConcurrentForward(t *testing.T) {
	be := newCPU(t)
	enc, err := New(parsed(t, randomModel(t, tinyConfig(4, 2, 16), safetensors.BF16, "", false, 21)), be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ids := []int{9, 8, 7, 6, 5, 4, 3}
	h, err := enc.Hidden(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	want := readBack(t, be, h)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for range 5 {
				mask := []int(nil)
				if g%2 == 1 {
					mask = slices.Repeat([]int{1}, len(ids))
				}
				h, err := enc.HiddenMasked(context.Background(), ids, mask)
				if err != nil {
					errs <- err
					return
				}
				got := make([]float32, h.NumElements())
				err = be.Read(got, h)
				be.Free(h)
				if err != nil {
					errs <- err
					return
				}
				if d, _ := maxAbsDiff(got, want); d > 1e-6 {
					errs <- fmt.Errorf("goroutine %d: result differs by %g", g, d)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
