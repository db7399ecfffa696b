package detect

import "strings"

// Qwen3 family values that shapes cannot give (HF Qwen3 config; ComfyUI Qwen3_4BConfig).
var qwen3Defaults = []struct {
	key string
	val any
}{
	{"rms_norm_eps", 1e-6},
	{"rope_theta", 1000000.0},
}

var qwen3Required = []string{
	"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
	"num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
}

// inferQwen3 recognises a Qwen3 decoder (HF Qwen3ForCausalLM names "model.layers.N...", or a bare
// Qwen3Model without the "model." level). Qwen3 differs from Qwen2 by its per-head q/k RMSNorm.
func inferQwen3(v view) (Result, bool) {
	emb, ok := v.shape("embed_tokens.weight", 2)
	if !ok {
		return unknown("embed_tokens.weight is not a matrix")
	}
	qn, ok := v.shape("layers.0.self_attn.q_norm.weight", 1)
	if !ok {
		return unknown("embed_tokens without layers.0.self_attn.q_norm (not a Qwen3 decoder)")
	}
	q, okQ := v.shape("layers.0.self_attn.q_proj.weight", 2)
	k, okK := v.shape("layers.0.self_attn.k_proj.weight", 2)
	if !okQ || !okK || q[1] != emb[1] || k[1] != emb[1] {
		return unknown("Qwen3 attention projections missing or not %d wide", emb[1])
	}
	b := newBuilder(Qwen3)
	outer := v.prefix
	if p, ok := strings.CutSuffix(v.prefix, "model."); ok && (p == "" || strings.HasSuffix(p, ".")) {
		b.set("layout", "hf")
		outer = p
	} else {
		b.set("layout", "qwen3model")
	}
	if outer != "" {
		b.set("key_prefix", outer)
	}
	b.set("vocab_size", emb[0])
	b.set("hidden_size", emb[1])
	b.set("num_hidden_layers", v.count("layers."))
	hd := qn[0]
	b.set("head_dim", hd)
	if hd > 0 && q[0]%hd == 0 && k[0]%hd == 0 {
		b.set("num_attention_heads", q[0]/hd)
		b.set("num_key_value_heads", k[0]/hd)
	}
	if g, ok := v.shape("layers.0.mlp.gate_proj.weight", 2); ok {
		b.set("intermediate_size", g[0])
	}
	_, hasHead := v.shapes[outer+"lm_head.weight"]
	b.set("tie_word_embeddings", !hasHead)
	for _, d := range qwen3Defaults {
		b.def(d.key, d.val)
	}
	return b.finish(qwen3Required)
}
