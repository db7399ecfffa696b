package detect

import "math"

// Z-Image DiT family values that shapes cannot give (ComfyUI model_detection, dim 3840 branch;
// zimage.md §4.1).
var ditDefaults = []struct {
	key string
	val any
}{
	{"rope_theta", 256.0},
	{"norm_eps", 1e-5},
	{"time_scale", 1000.0},
	{"axes_lens", []int{1536, 512, 512}},
}

// realHeadDim is the head size of the released model, whose RoPE axes split is (32, 48, 48).
const realHeadDim = 128

var ditRequired = []string{
	"dim", "n_layers", "n_refiner_layers", "n_heads", "n_kv_heads", "head_dim", "cap_feat_dim",
	"ffn_hidden", "t_embedder_hidden", "patch_size", "in_channels", "axes_dims", "axes_lens",
	"rope_theta", "norm_eps", "time_scale",
}

// inferDiT recognises the Z-Image NextDiT in ComfyUI naming (attention.qkv, q_norm) or diffusers
// naming (attention.to_q/to_k/to_v, norm_q, all_x_embedder.2-1).
func inferDiT(v view) (Result, bool) {
	b := newBuilder(ZImageDiT)
	capEmb, ok := v.shape("cap_embedder.1.weight", 2)
	if !ok {
		return unknown("cap_embedder.1.weight is not a matrix")
	}
	dim, capDim := capEmb[0], capEmb[1]

	layout := "comfyui"
	xEmbName, finalName := "x_embedder.weight", "final_layer.linear.weight"
	qkvName, qNorm := "layers.0.attention.qkv.weight", "layers.0.attention.q_norm.weight"
	if !v.has(qkvName) && v.has("layers.0.attention.to_q.weight") {
		layout = "diffusers"
		qNorm = "layers.0.attention.norm_q.weight"
		xEmbName, finalName = "all_x_embedder.2-1.weight", "all_final_layer.2-1.linear.weight"
	}
	if !v.has("layers.0.adaLN_modulation.0.weight") {
		// Lumina 2 shares cap_embedder but modulates through adaLN_modulation.1.
		return unknown("cap_embedder present but no layers.0.adaLN_modulation.0 (a Lumina 2 style DiT, not Z-Image)")
	}
	xEmb, ok := v.shape(xEmbName, 2)
	if !ok || xEmb[0] != dim {
		return unknown("no %s of shape [%d, patch features]", xEmbName, dim)
	}
	nLayers := v.count("layers.")
	if nLayers == 0 {
		return unknown("no layers.N blocks")
	}

	b.set("layout", layout)
	if v.prefix != "" {
		b.set("key_prefix", v.prefix)
	}
	b.set("dim", dim)
	b.set("cap_feat_dim", capDim)
	b.set("n_layers", nLayers)
	b.set("n_refiner_layers", v.count("noise_refiner."))
	if nc := v.count("context_refiner."); nc != v.count("noise_refiner.") {
		b.set("n_context_refiner_layers", nc)
	}
	b.set("z_image_modulation", true)

	// Heads: the q/k RMSNorm weight has one gain per channel of a head.
	if qn, ok := v.shape(qNorm, 1); ok && qn[0] > 0 && dim%qn[0] == 0 {
		hd := qn[0]
		nHeads := dim / hd
		b.set("qk_norm", true)
		b.set("head_dim", hd)
		b.set("n_heads", nHeads)
		kvRows := -1
		if layout == "comfyui" {
			if qkv, ok := v.shape(qkvName, 2); ok && qkv[0]%hd == 0 {
				rest := qkv[0]/hd - nHeads
				if rest > 0 && rest%2 == 0 {
					kvRows = rest / 2 * hd
				}
			}
		} else if k, ok := v.shape("layers.0.attention.to_k.weight", 2); ok {
			kvRows = k[0]
		}
		if kvRows > 0 && kvRows%hd == 0 {
			b.set("n_kv_heads", kvRows/hd)
		}
		if hd == realHeadDim {
			b.def("axes_dims", []int{32, 48, 48})
		}
	} else if !v.has(qNorm) {
		b.set("qk_norm", false)
	}

	if w1, ok := v.shape("layers.0.feed_forward.w1.weight", 2); ok {
		b.set("ffn_hidden", w1[0])
	}
	if t0, ok := v.shape("t_embedder.mlp.0.weight", 2); ok {
		b.set("t_embedder_hidden", t0[0])
	}

	// Patch features = patch² × latent channels; the latent is Flux's 16 channels (ComfyUI
	// hard-codes both), so the patch size follows from the embedder width.
	const latentChannels = 16
	b.def("in_channels", latentChannels)
	if p, ok := patchSide(xEmb[1], latentChannels); ok {
		if fin, ok := v.shape(finalName, 2); !ok || fin[0] == xEmb[1] {
			b.set("patch_size", p)
		}
	}
	if v.has("cap_pad_token") {
		b.def("pad_tokens_multiple", 32)
	}
	for _, d := range ditDefaults {
		b.def(d.key, d.val)
	}
	return b.finish(ditRequired)
}

// patchSide returns p with p*p*channels == features.
func patchSide(features, channels int) (int, bool) {
	if channels <= 0 || features%channels != 0 {
		return 0, false
	}
	sq := features / channels
	p := int(math.Round(math.Sqrt(float64(sq))))
	return p, p > 0 && p*p == sq
}
