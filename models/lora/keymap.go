package lora

import (
	"fmt"
	"strings"
)

// The models a key map can address (Target.Model).
const (
	// ModelDiffusion is the diffusion model (ComfyUI's MODEL, strength_model).
	ModelDiffusion = "diffusion_model"
	// ModelClip is the text encoder (ComfyUI's CLIP, strength_clip).
	ModelClip = "clip"
)

// Target is what one LoRA module patches: one parameter of one model, or a block of its rows
// (dim 0), as ComfyUI's (key, (0, start, length)) patch targets.
type Target struct {
	// Model is ModelDiffusion or ModelClip.
	Model string
	// Param is the parameter's name in the model's own naming without any file prefix
	// (ComfyUI's names for the DiT, e.g. "layers.0.attention.qkv.weight"; Hugging Face names
	// under "model." for Qwen3, e.g. "layers.0.self_attn.q_proj.weight").
	Param string
	// Start and Rows select rows [Start, Start+Rows) of dim 0; Rows == 0 means the whole tensor.
	Start, Rows int
}

// Whole reports whether the target is the whole parameter.
func (t Target) Whole() bool { return t.Rows == 0 }

func (t Target) String() string {
	if t.Whole() {
		return t.Param
	}
	return fmt.Sprintf("%s[rows %d:%d]", t.Param, t.Start, t.Start+t.Rows)
}

// KeyMap maps LoRA module names (the tensor names without their ".lora_up.weight" ... suffix)
// to targets. It keeps ComfyUI's dict semantics: entries stay in first-insertion order and a
// later Add of the same name replaces the target in place; the order decides which of two
// names for one target ComfyUI applies (the later one).
type KeyMap struct {
	index   map[string]int
	names   []string
	targets []Target
	params  map[Target]bool // Model+Param of every parameter (Start/Rows zero)
}

// NewKeyMap returns an empty key map.
func NewKeyMap() *KeyMap {
	return &KeyMap{index: map[string]int{}, params: map[Target]bool{}}
}

// Add maps name to t.
func (k *KeyMap) Add(name string, t Target) {
	if i, ok := k.index[name]; ok {
		k.targets[i] = t
		return
	}
	k.index[name] = len(k.names)
	k.names = append(k.names, name)
	k.targets = append(k.targets, t)
}

// AddParam records that model has the parameter param (Resolve checks bias targets of
// .diff_b / .b_norm against it, as ComfyUI's add_patches checks its state dict).
func (k *KeyMap) AddParam(model, param string) {
	k.params[Target{Model: model, Param: param}] = true
}

// HasParam reports whether AddParam recorded model's param.
func (k *KeyMap) HasParam(model, param string) bool {
	return k.params[Target{Model: model, Param: param}]
}

// Lookup returns the target of a module name.
func (k *KeyMap) Lookup(name string) (Target, bool) {
	i, ok := k.index[name]
	if !ok {
		return Target{}, false
	}
	return k.targets[i], true
}

// Len returns the number of names.
func (k *KeyMap) Len() int { return len(k.names) }

// Names returns the module names in map order.
func (k *KeyMap) Names() []string { return append([]string(nil), k.names...) }

// Merge adds o's entries after k's (ComfyUI's LoraLoader builds one dict from the MODEL's map
// and then the CLIP's).
func (k *KeyMap) Merge(o *KeyMap) {
	for i, n := range o.names {
		k.Add(n, o.targets[i])
	}
	for p := range o.params {
		k.params[p] = true
	}
}

// ZImageConfig is what ComfyUI's Z-Image key map needs of the model configuration.
type ZImageConfig struct {
	// Dim is the hidden size (the height of each q/k/v row block of attention.qkv).
	Dim int
	// Layers, ContextRefiners and NoiseRefiners count the blocks.
	Layers, ContextRefiners, NoiseRefiners int
}

// ZImageKeyMap is ComfyUI's model_lora_keys_unet for a Z-Image (Lumina 2 class) model whose
// parameters (ComfyUI names, without "diffusion_model.") are params, in state-dict order:
//
//   - for every parameter p ending in ".weight": "lora_unet_<p without .weight, . → _>" and
//     "diffusion_model.<p without .weight>"; for the others (biases, pad tokens):
//     "diffusion_model.<p>";
//   - then, for every diffusers weight name d of comfy.utils.z_image_to_diffusers (to_q/to_k/
//     to_v → rows of attention.qkv, to_out.0 → attention.out, norm_q/norm_k → q_norm/k_norm,
//     all_x_embedder.2-1 → x_embedder, all_final_layer.2-1 → final_layer, the rest unchanged):
//     "diffusion_model.<d>", "transformer.<d>", "lycoris_<d with _>" and "<d>".
//
// Like ComfyUI it cuts q/k/v at multiples of Dim and names the diffusers x_embedder and final
// layer "…2-1" (patch size 2) whatever the model's patch size.
func ZImageKeyMap(params []string, cfg ZImageConfig) *KeyMap {
	k := NewKeyMap()
	whole := func(p string) Target { return Target{Model: ModelDiffusion, Param: p} }
	for _, p := range params {
		k.AddParam(ModelDiffusion, p)
		if base, ok := strings.CutSuffix(p, ".weight"); ok {
			k.Add("lora_unet_"+strings.ReplaceAll(base, ".", "_"), whole(p))
			k.Add("diffusion_model."+base, whole(p))
		} else {
			k.Add("diffusion_model."+p, whole(p))
		}
	}
	type pair struct {
		diffusers string // without ".weight"
		t         Target
	}
	var dm []pair
	block := func(from string, adaLN bool) {
		qkv := from + ".attention.qkv.weight"
		for i, s := range []string{"to_q", "to_k", "to_v"} {
			dm = append(dm, pair{from + ".attention." + s, Target{Model: ModelDiffusion, Param: qkv, Start: i * cfg.Dim, Rows: cfg.Dim}})
		}
		for _, m := range [][2]string{
			{"attention.norm_q", "attention.q_norm"},
			{"attention.norm_k", "attention.k_norm"},
			{"attention.to_out.0", "attention.out"},
			{"attention_norm1", "attention_norm1"},
			{"attention_norm2", "attention_norm2"},
			{"feed_forward.w1", "feed_forward.w1"},
			{"feed_forward.w2", "feed_forward.w2"},
			{"feed_forward.w3", "feed_forward.w3"},
			{"ffn_norm1", "ffn_norm1"},
			{"ffn_norm2", "ffn_norm2"},
		} {
			dm = append(dm, pair{from + "." + m[0], whole(from + "." + m[1] + ".weight")})
		}
		if adaLN {
			dm = append(dm, pair{from + ".adaLN_modulation.0", whole(from + ".adaLN_modulation.0.weight")})
		}
	}
	for i := range cfg.Layers {
		block(fmt.Sprintf("layers.%d", i), true)
	}
	for i := range cfg.ContextRefiners {
		block(fmt.Sprintf("context_refiner.%d", i), true)
	}
	for i := range cfg.NoiseRefiners {
		block(fmt.Sprintf("noise_refiner.%d", i), true)
	}
	ps := "2-1" // comfy.utils.z_image_to_diffusers hard-codes the patch-size-2 names
	for _, m := range [][2]string{
		{"all_final_layer." + ps + ".linear", "final_layer.linear"},
		{"all_final_layer." + ps + ".adaLN_modulation.1", "final_layer.adaLN_modulation.1"},
		{"all_x_embedder." + ps, "x_embedder"},
		{"cap_embedder.0", "cap_embedder.0"},
		{"cap_embedder.1", "cap_embedder.1"},
		{"t_embedder.mlp.0", "t_embedder.mlp.0"},
		{"t_embedder.mlp.2", "t_embedder.mlp.2"},
	} {
		dm = append(dm, pair{m[0], whole(m[1] + ".weight")})
	}
	for _, d := range dm {
		k.Add("diffusion_model."+d.diffusers, d.t)
		k.Add("transformer."+d.diffusers, d.t)
		k.Add("lycoris_"+strings.ReplaceAll(d.diffusers, ".", "_"), d.t)
		k.Add(d.diffusers, d.t)
	}
	return k
}

// Qwen3KeyMap is ComfyUI's model_lora_keys_clip for a single Qwen3 text encoder whose ComfyUI
// state-dict prefix is name ("qwen3_4b" for Z-Image): for every parameter p ending in ".weight"
// (Hugging Face names under "model.", e.g. "layers.0.self_attn.q_proj.weight"), with
// k = "<name>.transformer.model.<p without .weight>": "text_encoders.<k>",
// "text_encoders.transformer.model.<p without .weight>" and "lora_te_<p without .weight, . → _>".
func Qwen3KeyMap(params []string, name string) *KeyMap {
	k := NewKeyMap()
	for _, p := range params {
		k.AddParam(ModelClip, p)
		base, ok := strings.CutSuffix(p, ".weight")
		if !ok {
			continue
		}
		t := Target{Model: ModelClip, Param: p}
		k.Add("text_encoders."+name+".transformer.model."+base, t)
		k.Add("text_encoders.transformer.model."+base, t)
	}
	for _, p := range params {
		if base, ok := strings.CutSuffix(p, ".weight"); ok {
			k.Add("lora_te_"+strings.ReplaceAll(base, ".", "_"), Target{Model: ModelClip, Param: p})
		}
	}
	return k
}
