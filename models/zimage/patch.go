package zimage

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/tensor"
)

// Weight patches (LoRA). A patched model is a view: WithPatches computes new tensors for the
// patched parameters only (each once, in the parameter's stored dtype) and shares every other
// tensor with the base model, which is never written. Closing the view frees its tensors;
// closing the base makes the view unusable.

// paramSlot is one parameter in ComfyUI's naming: the tensor(s) that hold it (a diffusers
// checkpoint's to_q/to_k/to_v are the row blocks of attention.qkv.weight) and where they sit
// in the weights struct, so that a copy of the struct can have them replaced.
type paramSlot struct {
	name  string
	shape []int
	parts []**tensor.Tensor
}

// slots lists every parameter of w.
func (w *weights) slots() []paramSlot {
	var out []paramSlot
	tensorSlot := func(name string, t **tensor.Tensor) {
		if *t != nil {
			out = append(out, paramSlot{name: name, shape: (*t).Shape(), parts: []**tensor.Tensor{t}})
		}
	}
	lin := func(l *linear) {
		if len(l.w) == 0 || l.w[0] == nil {
			return
		}
		s := paramSlot{name: l.name + ".weight", shape: []int{l.rows, l.w[0].Dim(1)}}
		for i := range l.w {
			s.parts = append(s.parts, &l.w[i])
		}
		out = append(out, s)
		tensorSlot(l.name+".bias", &l.b)
	}
	nrm := func(n *norm) { tensorSlot(n.name+".weight", &n.w) }
	blk := func(b *block) {
		lin(&b.qkv)
		lin(&b.out)
		nrm(&b.qNorm)
		nrm(&b.kNorm)
		lin(&b.w1)
		lin(&b.w2)
		lin(&b.w3)
		nrm(&b.attnNorm1)
		nrm(&b.ffnNorm1)
		nrm(&b.attnNorm2)
		nrm(&b.ffnNorm2)
		if b.modulated {
			lin(&b.adaLN)
		}
	}
	tensorSlot("x_pad_token", &w.xPad)
	tensorSlot("cap_pad_token", &w.capPad)
	lin(&w.xEmb)
	for i := range w.noiseRef {
		blk(&w.noiseRef[i])
	}
	for i := range w.ctxRef {
		blk(&w.ctxRef[i])
	}
	lin(&w.t0)
	lin(&w.t2)
	nrm(&w.capNorm)
	lin(&w.capLin)
	for i := range w.layers {
		blk(&w.layers[i])
	}
	lin(&w.finalLin)
	lin(&w.finalMod)
	return out
}

// clone copies the weights struct deeply enough that its tensor pointers can be replaced
// without touching w (the tensors themselves are shared).
func (w *weights) clone() *weights {
	c := *w
	cl := func(l *linear) { l.w = slices.Clone(l.w) }
	for _, l := range []*linear{&c.xEmb, &c.t0, &c.t2, &c.capLin, &c.finalLin, &c.finalMod} {
		cl(l)
	}
	blocks := func(bs []block) []block {
		bs = slices.Clone(bs)
		for i := range bs {
			for _, l := range []*linear{&bs[i].qkv, &bs[i].out, &bs[i].w1, &bs[i].w2, &bs[i].w3, &bs[i].adaLN} {
				cl(l)
			}
		}
		return bs
	}
	c.noiseRef, c.ctxRef, c.layers = blocks(w.noiseRef), blocks(w.ctxRef), blocks(w.layers)
	return &c
}

// ParamNames returns the names of every parameter in ComfyUI's naming (without
// "diffusion_model."), whatever the checkpoint's layout.
func (m *Model) ParamNames() []string {
	var out []string
	for _, s := range m.w.slots() {
		out = append(out, s.name)
	}
	return out
}

// ParamShape returns the shape of a parameter (ComfyUI name).
func (m *Model) ParamShape(name string) ([]int, bool) {
	for _, s := range m.w.slots() {
		if s.name == name {
			return slices.Clone(s.shape), true
		}
	}
	return nil, false
}

// Parameter returns the tensor(s) holding a parameter (ComfyUI name): one tensor, or for the
// attention.qkv.weight of a diffusers checkpoint its q, k and v row blocks in order. They
// belong to the model.
func (m *Model) Parameter(name string) ([]*tensor.Tensor, bool) {
	for _, s := range m.w.slots() {
		if s.name == name {
			out := make([]*tensor.Tensor, len(s.parts))
			for i, p := range s.parts {
				out[i] = *p
			}
			return out, true
		}
	}
	return nil, false
}

// LoRAKeyMap returns ComfyUI's LoRA key map for this model (model_lora_keys_unet for
// Lumina 2 / Z-Image): which LoRA module names patch which parameter.
func (m *Model) LoRAKeyMap() *lora.KeyMap {
	c := m.cfg
	return lora.ZImageKeyMap(m.ParamNames(), lora.ZImageConfig{
		Dim: c.Dim, Layers: c.NLayers, ContextRefiners: c.NContextRefinerLayers, NoiseRefiners: c.NRefinerLayers,
	})
}

// CheckPatches reports whether every patch fits a parameter of the model (cheap: shapes only).
func (m *Model) CheckPatches(ps []lora.Patch) error {
	shapes := map[string][]int{}
	for _, s := range m.w.slots() {
		shapes[s.name] = s.shape
	}
	var errs []error
	for i := range ps {
		p := &ps[i]
		if p.Target.Model != lora.ModelDiffusion {
			errs = append(errs, fmt.Errorf("zimage: %s: patch for the %s model", p.Source(), p.Target.Model))
			continue
		}
		shape, ok := shapes[p.Target.Param]
		if !ok {
			errs = append(errs, fmt.Errorf("zimage: %s: the model has no parameter %s", p.Source(), p.Target.Param))
			continue
		}
		if err := lora.Check(p, shape); err != nil {
			errs = append(errs, err)
		}
		if len(errs) >= 8 {
			errs = append(errs, errors.New("zimage: and more patches that do not fit"))
			break
		}
	}
	return errors.Join(errs...)
}

// WithPatches returns a view of m with the patches applied as ComfyUI's ModelPatcher applies
// them (see lora.Apply): the parameters they target are computed now, once, as new tensors in
// their stored dtype (bf16 weights patched in float32 and rounded to bf16); all others are
// shared with m, which is not changed. Patches apply in order, so several LoRAs stack; on a
// view, ps come after the view's own patches and are applied to the unpatched weights. The
// view is closed separately (Close frees only its own tensors) and must not be used after m
// is closed. It checks ctx between parameters.
func (m *Model) WithPatches(ctx context.Context, ps []lora.Patch) (*Model, error) {
	if m.isClosed() {
		return nil, errors.New("zimage: patch: model is closed")
	}
	if m.base != nil { // patches always start from the unpatched weights
		return m.base.WithPatches(ctx, append(slices.Clone(m.patches), ps...))
	}
	if err := m.CheckPatches(ps); err != nil {
		return nil, err
	}
	byParam := map[string][]lora.Patch{}
	var order []string
	for _, p := range ps {
		if _, ok := byParam[p.Target.Param]; !ok {
			order = append(order, p.Target.Param)
		}
		byParam[p.Target.Param] = append(byParam[p.Target.Param], p)
	}
	w := m.w.clone()
	slots := map[string]paramSlot{}
	for _, s := range w.slots() {
		slots[s.name] = s
	}
	var owned []*tensor.Tensor
	fail := func(err error) (*Model, error) {
		m.be.Free(owned...)
		return nil, err
	}
	for _, name := range order {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		s, patches := slots[name], byParam[name]
		off := 0
		for _, part := range s.parts {
			rows := (*part).Dim(0)
			touched := false
			for i := range patches {
				start, n := 0, s.shape[0]
				if !patches[i].Target.Whole() {
					start, n = patches[i].Target.Start, patches[i].Target.Rows
				}
				touched = touched || (start < off+rows && start+n > off)
			}
			if touched {
				t, err := lora.Apply(m.be, *part, off, s.shape, patches)
				if err != nil {
					return fail(fmt.Errorf("zimage: patch %s: %w", name, err))
				}
				owned = append(owned, t)
				*part = t
			}
			off += rows
		}
	}
	return &Model{cfg: m.cfg, be: m.be, w: w, unused: m.unused, path: m.path, base: m, patches: slices.Clone(ps), owned: owned}, nil
}

// Patched reports whether m is a patched view (WithPatches).
func (m *Model) Patched() bool { return m.base != nil }

// isClosed reports whether m, or the base model of a view, is closed.
func (m *Model) isClosed() bool {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if !closed && m.base != nil {
		return m.base.isClosed()
	}
	return closed
}
