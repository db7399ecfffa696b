package lora

import (
	"testing"
)

// tinyParams are the parameters of a Z-Image-shaped model with one block of each kind (the
// context refiner has no adaLN, as in Z-Image).
func tinyParams() []string {
	ps := []string{"x_pad_token", "cap_pad_token", "x_embedder.weight", "x_embedder.bias",
		"t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias", "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias",
		"cap_embedder.0.weight", "cap_embedder.1.weight", "cap_embedder.1.bias",
		"final_layer.linear.weight", "final_layer.linear.bias", "final_layer.adaLN_modulation.1.weight", "final_layer.adaLN_modulation.1.bias"}
	for _, b := range []string{"layers.0", "noise_refiner.0", "context_refiner.0"} {
		ps = append(ps, b+".attention.qkv.weight", b+".attention.out.weight", b+".attention.q_norm.weight", b+".attention.k_norm.weight",
			b+".feed_forward.w1.weight", b+".feed_forward.w2.weight", b+".feed_forward.w3.weight",
			b+".attention_norm1.weight", b+".attention_norm2.weight", b+".ffn_norm1.weight", b+".ffn_norm2.weight")
		if b != "context_refiner.0" {
			ps = append(ps, b+".adaLN_modulation.0.weight", b+".adaLN_modulation.0.bias")
		}
	}
	return ps
}

func tinyKeyMap() *KeyMap {
	return ZImageKeyMap(tinyParams(), ZImageConfig{Dim: 8, Layers: 1, ContextRefiners: 1, NoiseRefiners: 1})
}

func TestZImageKeyMap(t *testing.T) {
	km := tinyKeyMap()
	whole := func(p string) *Target { return &Target{Model: ModelDiffusion, Param: p} }
	rows := func(p string, s, n int) *Target { return &Target{Model: ModelDiffusion, Param: p, Start: s, Rows: n} }
	for _, c := range []struct {
		name string
		want *Target // nil: not mapped
	}{
		{"diffusion_model.layers.0.attention.qkv", whole("layers.0.attention.qkv.weight")},
		{"lora_unet_layers_0_attention_qkv", whole("layers.0.attention.qkv.weight")},
		{"diffusion_model.layers.0.attention.to_q", rows("layers.0.attention.qkv.weight", 0, 8)},
		{"transformer.layers.0.attention.to_k", rows("layers.0.attention.qkv.weight", 8, 8)},
		{"layers.0.attention.to_v", rows("layers.0.attention.qkv.weight", 16, 8)},
		{"lycoris_noise_refiner_0_attention_to_v", rows("noise_refiner.0.attention.qkv.weight", 16, 8)},
		{"transformer.context_refiner.0.attention.to_out.0", whole("context_refiner.0.attention.out.weight")},
		{"transformer.layers.0.attention.norm_q", whole("layers.0.attention.q_norm.weight")},
		{"transformer.all_x_embedder.2-1", whole("x_embedder.weight")},
		{"transformer.all_final_layer.2-1.linear", whole("final_layer.linear.weight")},
		{"diffusion_model.final_layer.adaLN_modulation.1", whole("final_layer.adaLN_modulation.1.weight")},
		{"transformer.t_embedder.mlp.2", whole("t_embedder.mlp.2.weight")},
		{"diffusion_model.x_pad_token", whole("x_pad_token")},
		{"diffusion_model.x_embedder.bias", whole("x_embedder.bias")},
		{"transformer.layers.0.feed_forward.w2", whole("layers.0.feed_forward.w2.weight")},
		// ComfyUI's context refiner entries for adaLN exist in the map; the model has no such
		// parameter (Resolve reports it as not loaded).
		{"transformer.context_refiner.0.adaLN_modulation.0", whole("context_refiner.0.adaLN_modulation.0.weight")},
		// Not in ComfyUI's map for Z-Image.
		{"transformer.layers.0.attention.qkv", nil},
		{"layers.0.attention.qkv", nil},
		{"lora_unet_layers_0_attention_to_q", nil},
		{"lora_transformer_layers_0_attention_to_q", nil},
		{"base_model.model.layers.0.attention.to_q", nil},
		{"transformer.layers.0.attention.out", nil},
		{"lora_unet_layers_0_attention_to_out_0", nil},
		{"diffusion_model.layers.1.attention.qkv", nil},
	} {
		got, ok := km.Lookup(c.name)
		switch {
		case c.want == nil && ok:
			t.Errorf("%s → %s, want not mapped", c.name, got)
		case c.want != nil && (!ok || got != *c.want):
			t.Errorf("%s → %s (%v), want %s", c.name, got, ok, *c.want)
		}
	}
	if !km.HasParam(ModelDiffusion, "layers.0.attention.qkv.weight") || km.HasParam(ModelDiffusion, "context_refiner.0.adaLN_modulation.0.weight") {
		t.Error("HasParam does not reflect the parameter list")
	}
}

func TestQwen3KeyMap(t *testing.T) {
	km := Qwen3KeyMap([]string{"embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.0.mlp.down_proj.weight", "norm.weight"}, "qwen3_4b")
	for _, c := range []struct {
		name, want string // "" not mapped
	}{
		{"text_encoders.qwen3_4b.transformer.model.layers.0.self_attn.q_proj", "layers.0.self_attn.q_proj.weight"},
		{"text_encoders.transformer.model.layers.0.mlp.down_proj", "layers.0.mlp.down_proj.weight"},
		{"lora_te_layers_0_self_attn_q_proj", "layers.0.self_attn.q_proj.weight"},
		{"lora_te_embed_tokens", "embed_tokens.weight"},
		{"text_encoders.qwen3_4b.transformer.model.norm", "norm.weight"},
		{"text_encoder.model.layers.0.self_attn.q_proj", ""},
		{"lora_te1_layers_0_self_attn_q_proj", ""},
	} {
		got, ok := km.Lookup(c.name)
		if (c.want == "") == ok || (ok && (got.Param != c.want || got.Model != ModelClip || !got.Whole())) {
			t.Errorf("%s → %s (%v), want %q", c.name, got, ok, c.want)
		}
	}
}

func TestKeyMapDictSemantics(t *testing.T) {
	k := NewKeyMap()
	a := Target{Model: ModelDiffusion, Param: "a.weight"}
	b := Target{Model: ModelDiffusion, Param: "b.weight"}
	k.Add("x", a)
	k.Add("y", b)
	k.Add("x", b) // replaces in place
	if got := k.Names(); len(got) != 2 || got[0] != "x" || got[1] != "y" {
		t.Fatalf("order %v", got)
	}
	if got, _ := k.Lookup("x"); got != b {
		t.Fatalf("x → %s", got)
	}
	o := NewKeyMap()
	o.Add("z", a)
	o.AddParam(ModelClip, "z.weight")
	k.Merge(o)
	if k.Len() != 3 || !k.HasParam(ModelClip, "z.weight") {
		t.Fatalf("merge: %v", k.Names())
	}
}
