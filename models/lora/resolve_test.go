package lora

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// ent is one tensor of a test file: values (any float dtype) or raw bytes for other dtypes.
type ent struct {
	dt    safetensors.DType
	shape []int
	vals  []float32
	raw   []byte
}

func mat(rows, cols int, seed float32) ent {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = seed * float32((i*7)%11-5) / 8
	}
	return ent{dt: safetensors.F32, shape: []int{rows, cols}, vals: v}
}

func scalarOf(dt safetensors.DType, v float32) ent {
	return ent{dt: dt, shape: []int{}, vals: []float32{v}}
}

func (e ent) as(dt safetensors.DType) ent { e.dt = dt; return e }

// memFile builds a LoRA file in memory.
func memFile(t testing.TB, tensors map[string]ent) *File {
	t.Helper()
	entries := map[string]safetensors.Entry{}
	for n, e := range tensors {
		data := e.raw
		if data == nil {
			dt, err := tensor.ParseDType(string(e.dt))
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			data = make([]byte, len(e.vals)*dt.Size())
			if err := tensor.EncodeF32(data, e.vals, dt); err != nil {
				t.Fatal(err)
			}
		}
		entries[n] = safetensors.Entry{DType: e.dt, Shape: e.shape, Data: data}
	}
	b, err := safetensors.Marshal(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse("test.safetensors", b)
	if err != nil {
		t.Fatal(err)
	}
	return Read("test.safetensors", f)
}

func TestResolveForms(t *testing.T) {
	km := tinyKeyMap()
	qkv := "layers.0.attention.qkv.weight"
	for _, c := range []struct {
		name      string
		files     map[string]ent
		param     string
		start     int
		rows      int
		rank      int
		alpha     float64 // 0: none
		notLoaded []string
	}{
		{"comfy up/down with alpha", map[string]ent{
			"diffusion_model.layers.0.attention.qkv.lora_up.weight":   mat(24, 2, 1),
			"diffusion_model.layers.0.attention.qkv.lora_down.weight": mat(2, 8, 1),
			"diffusion_model.layers.0.attention.qkv.alpha":            scalarOf(safetensors.F32, 4),
		}, qkv, 0, 0, 2, 4, nil},
		{"peft lora_B/lora_A bf16, split q", map[string]ent{
			"transformer.layers.0.attention.to_k.lora_B.weight": mat(8, 4, 1).as(safetensors.BF16),
			"transformer.layers.0.attention.to_k.lora_A.weight": mat(4, 8, 1).as(safetensors.BF16),
		}, qkv, 8, 8, 4, 0, nil},
		{"kohya f16 alpha", map[string]ent{
			"lora_unet_layers_0_feed_forward_w1.lora_up.weight":   mat(16, 2, 1).as(safetensors.F16),
			"lora_unet_layers_0_feed_forward_w1.lora_down.weight": mat(2, 8, 1).as(safetensors.F16),
			"lora_unet_layers_0_feed_forward_w1.alpha":            scalarOf(safetensors.F16, 1),
		}, "layers.0.feed_forward.w1.weight", 0, 0, 2, 1, nil},
		{"old diffusers _lora.up", map[string]ent{
			"layers.0.attention.to_v_lora.up.weight":   mat(8, 2, 1),
			"layers.0.attention.to_v_lora.down.weight": mat(2, 8, 1),
		}, qkv, 16, 8, 2, 0, nil},
		{"diffusers .lora.up", map[string]ent{
			"transformer.layers.0.attention.to_out.0.lora.up.weight":   mat(8, 2, 1),
			"transformer.layers.0.attention.to_out.0.lora.down.weight": mat(2, 8, 1),
		}, "layers.0.attention.out.weight", 0, 0, 2, 0, nil},
		{"mochi lora_B without .weight, F64, I64 alpha", map[string]ent{
			"diffusion_model.cap_embedder.1.lora_B": {dt: safetensors.F64, shape: []int{8, 2}, raw: f64bytes(mat(8, 2, 1).vals)},
			"diffusion_model.cap_embedder.1.lora_A": {dt: safetensors.F64, shape: []int{2, 4}, raw: f64bytes(mat(2, 4, 1).vals)},
			"diffusion_model.cap_embedder.1.alpha":  {dt: safetensors.I64, shape: []int{}, raw: binary.LittleEndian.AppendUint64(nil, 3)},
		}, "cap_embedder.1.weight", 0, 0, 2, 3, nil},
		{"transformers lora_linear_layer", map[string]ent{
			"transformer.t_embedder.mlp.0.lora_linear_layer.up.weight":   mat(16, 2, 1),
			"transformer.t_embedder.mlp.0.lora_linear_layer.down.weight": mat(2, 256, 1),
		}, "t_embedder.mlp.0.weight", 0, 0, 2, 0, nil},
		{"peft default adapter, other keys not loaded", map[string]ent{
			"diffusion_model.layers.0.feed_forward.w3.lora_B.default.weight": mat(16, 2, 1),
			"diffusion_model.layers.0.feed_forward.w3.lora_A.default.weight": mat(2, 8, 1),
			"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight":     mat(4, 2, 1),
			"transformer.layers.0.attention.qkv.lora_A.weight":               mat(2, 8, 1),
		}, "layers.0.feed_forward.w3.weight", 0, 0, 2, 0, []string{
			"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", "transformer.layers.0.attention.qkv.lora_A.weight"}},
		{"first form wins", map[string]ent{
			"diffusion_model.layers.0.feed_forward.w2.lora_up.weight":   mat(8, 2, 1),
			"diffusion_model.layers.0.feed_forward.w2.lora_down.weight": mat(2, 16, 1),
			"diffusion_model.layers.0.feed_forward.w2.lora_B.weight":    mat(8, 3, 1),
			"diffusion_model.layers.0.feed_forward.w2.lora_A.weight":    mat(3, 16, 1),
		}, "layers.0.feed_forward.w2.weight", 0, 0, 2, 0, []string{
			"diffusion_model.layers.0.feed_forward.w2.lora_A.weight", "diffusion_model.layers.0.feed_forward.w2.lora_B.weight"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := memFile(t, c.files).Resolve(km)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Patches) != 1 {
				t.Fatalf("%d patches: %+v", len(res.Patches), res)
			}
			p := res.Patches[0]
			want := Target{Model: ModelDiffusion, Param: c.param, Start: c.start, Rows: c.rows}
			if p.Target != want || p.Kind != KindLoRA || p.Rank() != c.rank || p.HasAlpha != (c.alpha != 0) || (c.alpha != 0 && p.Alpha != c.alpha) {
				t.Errorf("patch %s kind %v rank %d alpha %v/%v, want %s rank %d alpha %v", p.Target, p.Kind, p.Rank(), p.Alpha, p.HasAlpha, want, c.rank, c.alpha)
			}
			if c.alpha != 0 && p.Scale() != c.alpha/float64(c.rank) {
				t.Errorf("scale %v", p.Scale())
			}
			if !slices.Equal(res.NotLoaded, c.notLoaded) {
				t.Errorf("not loaded %q, want %q", res.NotLoaded, c.notLoaded)
			}
		})
	}
}

func f64bytes(v []float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(x)))
	}
	return b
}

func TestResolveDiffsAndPrecedence(t *testing.T) {
	km := tinyKeyMap()
	res, err := memFile(t, map[string]ent{
		// generic and diffusers names of attention.out: the diffusers one is later in the map
		"diffusion_model.layers.0.attention.out.lora_up.weight":            mat(8, 2, 1),
		"diffusion_model.layers.0.attention.out.lora_down.weight":          mat(2, 8, 1),
		"diffusion_model.layers.0.attention.to_out.0.lora_up.weight":       mat(8, 4, 2),
		"diffusion_model.layers.0.attention.to_out.0.lora_down.weight":     mat(4, 8, 2),
		"diffusion_model.layers.0.attention_norm1.diff":                    {dt: safetensors.F32, shape: []int{8}, vals: make([]float32, 8)},
		"diffusion_model.layers.0.adaLN_modulation.0.diff_b":               {dt: safetensors.F32, shape: []int{32}, vals: make([]float32, 32)},
		"diffusion_model.layers.0.feed_forward.w1.diff_b":                  {dt: safetensors.F32, shape: []int{16}, vals: make([]float32, 16)},
		"diffusion_model.x_embedder.w_norm":                                mat(8, 64, 1),
		"diffusion_model.cap_embedder.0.set_weight":                        {dt: safetensors.F32, shape: []int{4}, vals: []float32{1, 2, 3, 4}},
		"transformer.context_refiner.0.adaLN_modulation.0.lora_B.weight":   mat(32, 2, 1),
		"transformer.context_refiner.0.adaLN_modulation.0.lora_A.weight":   mat(2, 8, 1),
		"diffusion_model.layers.0.attention.to_out.0.alpha":                scalarOf(safetensors.BF16, 2),
		"diffusion_model.layers.0.feed_forward.w3.alpha":                   scalarOf(safetensors.F32, 2), // alpha alone: loaded, no patch
		"diffusion_model.noise_refiner.0.attention.qkv.hada_w1_a_not_real": mat(1, 1, 1),
	}).Resolve(km)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Patch{}
	for _, p := range res.Patches {
		got[p.Target.Param] = p
	}
	if p := got["layers.0.attention.out.weight"]; p.Module != "diffusion_model.layers.0.attention.to_out.0" || p.Rank() != 4 || p.Scale() != 0.5 {
		t.Errorf("attention.out: module %s rank %d scale %v, want the diffusers name (later in the map)", p.Module, p.Rank(), p.Scale())
	}
	for param, kind := range map[string]Kind{
		"layers.0.attention_norm1.weight": KindDiff, "layers.0.adaLN_modulation.0.bias": KindDiff,
		"x_embedder.weight": KindDiff, "cap_embedder.0.weight": KindSet,
	} {
		if p, ok := got[param]; !ok || p.Kind != kind {
			t.Errorf("%s: patch %v, want kind %v", param, p.Kind, kind)
		}
	}
	if len(res.Patches) != 5 {
		t.Errorf("%d patches", len(res.Patches))
	}
	joined := strings.Join(res.Ignored, "\n")
	for _, want := range []string{"layers.0.feed_forward.w1.bias", "context_refiner.0.adaLN_modulation.0.weight", "replaced by diffusion_model.layers.0.attention.to_out.0"} {
		if !strings.Contains(joined, want) {
			t.Errorf("ignored %q does not mention %s", res.Ignored, want)
		}
	}
	if !slices.Equal(res.NotLoaded, []string{"diffusion_model.noise_refiner.0.attention.qkv.hada_w1_a_not_real"}) {
		t.Errorf("not loaded %q", res.NotLoaded)
	}
}

func TestResolveErrors(t *testing.T) {
	km := tinyKeyMap()
	up := "diffusion_model.layers.0.attention.qkv.lora_up.weight"
	down := "diffusion_model.layers.0.attention.qkv.lora_down.weight"
	for _, c := range []struct {
		name  string
		files map[string]ent
		want  string
	}{
		{"up without down", map[string]ent{up: mat(24, 2, 1)}, "no matching"},
		{"rank mismatch", map[string]ent{up: mat(24, 2, 1), down: mat(3, 8, 1)}, "do not share a rank"},
		{"1-D matrix", map[string]ent{up: {dt: safetensors.F32, shape: []int{24}, vals: make([]float32, 24)}, down: mat(2, 8, 1)}, "at least 2 dimensions"},
		{"integer matrix", map[string]ent{up: {dt: safetensors.I32, shape: []int{24, 2}, raw: make([]byte, 4*48)}, down: mat(2, 8, 1)}, "dtype I32"},
		{"alpha not a scalar", map[string]ent{up: mat(24, 2, 1), down: mat(2, 8, 1), "diffusion_model.layers.0.attention.qkv.alpha": mat(1, 2, 1)}, "single value"},
		{"alpha NaN", map[string]ent{up: mat(24, 2, 1), down: mat(2, 8, 1), "diffusion_model.layers.0.attention.qkv.alpha": scalarOf(safetensors.F32, float32(math.NaN()))}, "NaN"},
		{"DoRA", map[string]ent{up: mat(24, 2, 1), down: mat(2, 8, 1), "diffusion_model.layers.0.attention.qkv.dora_scale": mat(24, 1, 1)}, "DoRA"},
		{"LoKr", map[string]ent{"lora_unet_layers_0_attention_qkv.lokr_w1": mat(2, 2, 1)}, "LoKr"},
		{"LoHa", map[string]ent{"transformer.layers.0.attention.to_q.hada_w1_a": mat(2, 2, 1)}, "LoHa"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := memFile(t, c.files).Resolve(km)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test.safetensors") {
				t.Fatalf("error %v, want one naming the file and containing %q", err, c.want)
			}
			if c.name == "DoRA" && !errors.Is(err, errUnsupported) {
				t.Errorf("DoRA error does not wrap errUnsupported: %v", err)
			}
		})
	}
}

func TestWithStrength(t *testing.T) {
	ps := []Patch{
		{Target: Target{Model: ModelDiffusion, Param: "a"}, Kind: KindLoRA, Strength: 1},
		{Target: Target{Model: ModelClip, Param: "b"}, Kind: KindLoRA, Strength: 1},
		{Target: Target{Model: ModelDiffusion, Param: "c"}, Kind: KindSet, Strength: 1},
	}
	if got := WithStrength(ps, ModelDiffusion, 0.5); len(got) != 2 || got[0].Strength != 0.5 || got[1].Target.Param != "c" {
		t.Errorf("strength 0.5: %+v", got)
	}
	if got := WithStrength(ps, ModelDiffusion, 0); len(got) != 1 || got[0].Kind != KindSet {
		t.Errorf("strength 0 keeps only set patches: %+v", got)
	}
	if ps[0].Strength != 1 {
		t.Error("WithStrength changed its input")
	}
	if got := WithStrength(ps, ModelClip, -1); len(got) != 1 || got[0].Strength != -1 {
		t.Errorf("clip: %+v", got)
	}
}
