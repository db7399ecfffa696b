package qwen3

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/tensor"
)

// Weight patches (LoRA on the text encoder). A patched encoder is a view: WithPatches
// computes new tensors for the patched parameters only and shares every other tensor with the
// base encoder, which is never written.

// ComfyName is the name ComfyUI gives the Z-Image text encoder in its CLIP state dict
// ("qwen3_4b.transformer.model.…"), which LoRA key names for it carry.
const ComfyName = "qwen3_4b"

// layerParams are the parameter names of one decoder layer (after "layers.N."), in the order
// of layerShapes in build.
var layerParams = []string{
	"input_layernorm.weight", "post_attention_layernorm.weight",
	"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
	"self_attn.q_norm.weight", "self_attn.k_norm.weight",
	"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
}

// fields returns the tensor slots of a layer in layerParams order.
func (w *layerWeights) fields() []**tensor.Tensor {
	return []**tensor.Tensor{&w.inNorm, &w.postNorm, &w.q, &w.k, &w.v, &w.o, &w.qNorm, &w.kNorm, &w.gate, &w.up, &w.down}
}

// ParamShapes returns every parameter of the configured decoder (Hugging Face names under
// "model.", e.g. "layers.0.self_attn.q_proj.weight"), loaded or not, with its shape.
func (e *Encoder) ParamShapes() map[string][]int {
	c := e.cfg
	H, D, I := c.HiddenSize, c.HeadDim, c.IntermediateSize
	q, kv := c.NumAttentionHeads*D, c.NumKeyValueHeads*D
	shapes := [][]int{{H}, {H}, {q, H}, {kv, H}, {kv, H}, {H, q}, {D}, {D}, {I, H}, {I, H}, {H, I}}
	out := map[string][]int{"embed_tokens.weight": {c.VocabSize, H}, "norm.weight": {H}}
	for l := range c.NumHiddenLayers {
		for i, p := range layerParams {
			out["layers."+strconv.Itoa(l)+"."+p] = slices.Clone(shapes[i])
		}
	}
	return out
}

// paramNames lists the parameters in ComfyUI's state-dict order.
func (e *Encoder) paramNames() []string {
	out := []string{"embed_tokens.weight"}
	for l := range e.cfg.NumHiddenLayers {
		for _, p := range layerParams {
			out = append(out, "layers."+strconv.Itoa(l)+"."+p)
		}
	}
	return append(out, "norm.weight")
}

// slots returns where the loaded parameters sit in e (or in the copies of its layer structs
// that layers holds).
func slotsOf(embed, norm **tensor.Tensor, layers []layerWeights) map[string]**tensor.Tensor {
	out := map[string]**tensor.Tensor{"embed_tokens.weight": embed}
	if *norm != nil {
		out["norm.weight"] = norm
	}
	for l := range layers {
		for i, f := range layers[l].fields() {
			out["layers."+strconv.Itoa(l)+"."+layerParams[i]] = f
		}
	}
	return out
}

// Parameter returns the tensor of a loaded parameter (Hugging Face name under "model.").
func (e *Encoder) Parameter(name string) (*tensor.Tensor, bool) {
	s, ok := slotsOf(&e.embed, &e.norm, e.layers)[name]
	if !ok || *s == nil {
		return nil, false
	}
	return *s, true
}

// LoRAKeyMap returns ComfyUI's LoRA key map for this encoder as Z-Image's CLIP
// (model_lora_keys_clip with the single "qwen3_4b" text encoder).
func (e *Encoder) LoRAKeyMap() *lora.KeyMap {
	return lora.Qwen3KeyMap(e.paramNames(), ComfyName)
}

// CheckPatches reports whether every patch fits a parameter of the decoder (shapes only).
func (e *Encoder) CheckPatches(ps []lora.Patch) error {
	shapes := e.ParamShapes()
	var errs []error
	for i := range ps {
		p := &ps[i]
		if p.Target.Model != lora.ModelClip {
			errs = append(errs, fmt.Errorf("qwen3: %s: patch for the %s model", p.Source(), p.Target.Model))
			continue
		}
		shape, ok := shapes[p.Target.Param]
		if !ok {
			errs = append(errs, fmt.Errorf("qwen3: %s: the encoder has no parameter %s", p.Source(), p.Target.Param))
			continue
		}
		if err := lora.Check(p, shape); err != nil {
			errs = append(errs, err)
		}
		if len(errs) >= 8 {
			errs = append(errs, errors.New("qwen3: and more patches that do not fit"))
			break
		}
	}
	return errors.Join(errs...)
}

// WithPatches returns a view of e with the patches applied as ComfyUI applies them (see
// lora.Apply): the loaded parameters they target become new tensors in their stored dtype,
// computed now; all others are shared with e, which is not changed. Patches of layers the
// encoder does not run (after its hidden layer) change nothing and are skipped. On a view, ps
// come after the view's own patches and are applied to the unpatched weights. Close the view
// separately; it must not be used after e is closed.
func (e *Encoder) WithPatches(ctx context.Context, ps []lora.Patch) (*Encoder, error) {
	if e.base != nil {
		return e.base.WithPatches(ctx, append(slices.Clone(e.patches), ps...))
	}
	if err := e.CheckPatches(ps); err != nil {
		return nil, err
	}
	v := &Encoder{cfg: e.cfg, be: e.be, name: e.name, embed: e.embed, layers: slices.Clone(e.layers), norm: e.norm,
		hidden: e.hidden, base: e, patches: slices.Clone(ps)}
	slots := slotsOf(&v.embed, &v.norm, v.layers)
	shapes := e.ParamShapes()
	byParam := map[string][]lora.Patch{}
	var order []string
	for _, p := range ps {
		if _, ok := byParam[p.Target.Param]; !ok {
			order = append(order, p.Target.Param)
		}
		byParam[p.Target.Param] = append(byParam[p.Target.Param], p)
	}
	for _, name := range order {
		if err := ctx.Err(); err != nil {
			e.be.Free(v.weights...)
			return nil, err
		}
		s, ok := slots[name]
		if !ok || *s == nil {
			continue // not loaded: a layer after the hidden one, or the final norm
		}
		t, err := lora.Apply(e.be, *s, 0, shapes[name], byParam[name])
		if err != nil {
			e.be.Free(v.weights...)
			return nil, fmt.Errorf("qwen3: patch %s: %w", name, err)
		}
		v.weights = append(v.weights, t)
		*s = t
	}
	return v, nil
}
