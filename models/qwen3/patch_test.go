package qwen3

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// loraEntries makes a LoRA for the encoder in ComfyUI's CLIP key names: up [out, rank], down
// [rank, in] and an alpha per module; it returns the file entries and the merged update
// strength·alpha/rank·up·down of each parameter in float64.
func loraEntries(t *testing.T, c Config, strength float64) (map[string]safetensors.Entry, map[string][]float64) {
	t.Helper()
	r := rand.New(rand.NewPCG(9, 9))
	H, D, I := c.HiddenSize, c.HeadDim, c.IntermediateSize
	q := c.NumAttentionHeads * D
	entries := map[string]safetensors.Entry{}
	deltas := map[string][]float64{}
	add := func(module, param string, out, in, rank int, alpha float64) {
		up := make([]float32, out*rank)
		down := make([]float32, rank*in)
		for i := range up {
			up[i] = float32(r.NormFloat64() * 0.2)
		}
		for i := range down {
			down[i] = float32(r.NormFloat64() * 0.2)
		}
		entries[module+".lora_up.weight"] = entry(t, safetensors.F32, up, out, rank)
		entries[module+".lora_down.weight"] = entry(t, safetensors.F32, down, rank, in)
		entries[module+".alpha"] = entry(t, safetensors.F32, []float32{float32(alpha)}) // 0-dim
		d := make([]float64, out*in)
		s := strength * alpha / float64(rank)
		for i := range out {
			for j := range in {
				var acc float64
				for k := range rank {
					acc += float64(up[i*rank+k]) * float64(down[k*in+j])
				}
				d[i*in+j] = s * acc
			}
		}
		deltas[param] = d
	}
	add("lora_te_layers_0_self_attn_q_proj", "layers.0.self_attn.q_proj.weight", q, H, 4, 2)
	add("text_encoders.qwen3_4b.transformer.model.layers.1.mlp.down_proj", "layers.1.mlp.down_proj.weight", H, I, 3, 3)
	add("text_encoders.transformer.model.layers.0.self_attn.o_proj", "layers.0.self_attn.o_proj.weight", H, q, 2, 1)
	// Layer 2 runs after the hidden layer (-2 of 3): ComfyUI patches it, to no effect.
	add("lora_te_layers_2_mlp_up_proj", "layers.2.mlp.up_proj.weight", I, H, 2, 2)
	return entries, deltas
}

// TestWithPatchesMatchesMergedWeights checks a patched encoder against the encoder loaded from
// a checkpoint whose weights were merged with the LoRA in float64 (the straightforward
// reference; no ComfyUI golden covers the text-encoder half).
func TestWithPatchesMatchesMergedWeights(t *testing.T) {
	be := newCPU(t)
	c := tinyConfig(4, 2, 16)
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.BF16} {
		t.Run(string(dt), func(t *testing.T) {
			base := randomModel(t, c, dt, "", false, 5)
			enc, err := New(parsed(t, base), be, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			const strength = 0.75
			le, deltas := loraEntries(t, c, strength)
			lb, err := safetensors.Marshal(le, nil)
			if err != nil {
				t.Fatal(err)
			}
			lf, err := safetensors.Parse("te_lora.safetensors", lb)
			if err != nil {
				t.Fatal(err)
			}
			res, err := lora.Read("te_lora.safetensors", lf).Resolve(enc.LoRAKeyMap())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.NotLoaded) != 0 || len(res.Patches) != len(deltas) {
				t.Fatalf("%d patches, not loaded %q", len(res.Patches), res.NotLoaded)
			}
			ps := lora.WithStrength(res.Patches, lora.ModelClip, strength)

			// The reference: the same decoder with merged weights, rounded to the stored dtype.
			merged := map[string]safetensors.Entry{}
			tdt, _ := tensor.ParseDType(string(dt))
			for n, e := range base {
				d, ok := deltas[strings.TrimPrefix(n, "model.")]
				if !ok {
					merged[n] = e
					continue
				}
				x, err := tensor.FromBytes(e.Data, tdt, e.Shape...)
				if err != nil {
					t.Fatal(err)
				}
				v, _ := x.ToFloat32()
				for i := range v {
					v[i] = float32(float64(v[i]) + d[i])
				}
				merged[n] = entry(t, dt, v, e.Shape...)
			}
			ref, err := New(parsed(t, merged), be, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()

			ids := []int{5, 17, 299, 0, 42, 7, 130}
			hidden := func(e *Encoder) []float32 {
				h, err := e.Hidden(context.Background(), ids)
				if err != nil {
					t.Fatal(err)
				}
				defer be.Free(h)
				return readBack(t, be, h)
			}
			before := hidden(enc)
			v, err := enc.WithPatches(context.Background(), ps)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			got, want := hidden(v), hidden(ref)
			d, scale := maxAbsDiff(got, want)
			eff, _ := maxAbsDiff(before, want)
			tol := 2e-5 * scale
			if dt == safetensors.BF16 {
				tol = 2e-3 * scale // merged weights rounded from float64 may differ by one bf16 step
			}
			t.Logf("patched vs merged: max |Δ| %.3g (tolerance %.3g, LoRA effect %.3g)", d, tol, eff)
			if d > tol || eff < 100*d {
				t.Errorf("patched encoder differs from the merged one by %g (LoRA effect %g)", d, eff)
			}
			if !slices.Equal(hidden(enc), before) {
				t.Error("patching changed the base encoder")
			}
			// Unpatched parameters are shared; the layer after the hidden one was not loaded.
			for _, n := range []string{"embed_tokens.weight", "layers.1.self_attn.q_proj.weight"} {
				a, _ := enc.Parameter(n)
				b, _ := v.Parameter(n)
				if a != b {
					t.Errorf("%s is not shared", n)
				}
			}
			if a, _ := enc.Parameter("layers.0.self_attn.q_proj.weight"); a == nil {
				t.Fatal("no q_proj")
			} else if b, _ := v.Parameter("layers.0.self_attn.q_proj.weight"); a == b || b.DType() != a.DType() {
				t.Error("the patched q_proj is shared or changed dtype")
			}
			if _, ok := v.Parameter("layers.2.mlp.up_proj.weight"); ok {
				t.Error("layer 2 should not be loaded")
			}
		})
	}
}

func TestCheckPatchesQwen3(t *testing.T) {
	be := newCPU(t)
	c := tinyConfig(4, 2, 16)
	enc, err := New(parsed(t, randomModel(t, c, safetensors.F32, "", false, 1)), be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	mk := func(model, param string, out, in int) lora.Patch {
		up, _ := tensor.FromFloat32(make([]float32, out*2), out, 2)
		down, _ := tensor.FromFloat32(make([]float32, 2*in), 2, in)
		return lora.Patch{Target: lora.Target{Model: model, Param: param}, Kind: lora.KindLoRA, Up: up, Down: down, Strength: 1, File: "f", Module: param}
	}
	q := c.NumAttentionHeads * c.HeadDim
	for _, tc := range []struct {
		name string
		p    lora.Patch
		want string
	}{
		{"fits", mk(lora.ModelClip, "layers.0.self_attn.q_proj.weight", q, c.HiddenSize), ""},
		{"diffusion patch", mk(lora.ModelDiffusion, "layers.0.self_attn.q_proj.weight", q, c.HiddenSize), "diffusion_model"},
		{"unknown parameter", mk(lora.ModelClip, "layers.7.self_attn.q_proj.weight", q, c.HiddenSize), "no parameter"},
		{"wrong shape", mk(lora.ModelClip, "layers.0.self_attn.k_proj.weight", q, c.HiddenSize), "does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := enc.CheckPatches([]lora.Patch{tc.p})
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckPatches = %v, want %q", err, tc.want)
			}
		})
	}
}
