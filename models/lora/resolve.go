package lora

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dypegraph/dypegraph/tensor"
)

// Kind is what a patch does to its target.
type Kind uint8

// The patch kinds.
const (
	// KindLoRA adds strength·(alpha/rank)·(Up·Down).
	KindLoRA Kind = iota + 1
	// KindDiff adds strength·Diff (".diff", ".diff_b", ".w_norm", ".b_norm").
	KindDiff
	// KindSet replaces the target by Diff (".set_weight"; strength is not used, as in ComfyUI).
	KindSet
)

func (k Kind) String() string {
	switch k {
	case KindLoRA:
		return "lora"
	case KindDiff:
		return "diff"
	case KindSet:
		return "set"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Patch is one weight patch, as one entry of ComfyUI's ModelPatcher patch list.
type Patch struct {
	Target Target
	Kind   Kind
	// Up [out, rank] and Down [rank, in] are the LoRA matrices (host tensors in their stored
	// dtype; tensors with more dimensions are flattened to these two, as ComfyUI does).
	Up, Down *tensor.Tensor
	// Diff holds the values of a KindDiff or KindSet patch.
	Diff *tensor.Tensor
	// Alpha is the value of the module's alpha tensor; HasAlpha is false without one.
	Alpha    float64
	HasAlpha bool
	// Strength is the loader's strength for this patch's model (1 from Resolve).
	Strength float64
	// File and Module name where the patch comes from: the LoRA file and the module name in it
	// (the tensor name of a diff).
	File, Module string
}

// Source names the patch's file and module, for messages.
func (p *Patch) Source() string { return p.File + ": " + p.Module }

// Rank returns the LoRA rank (Down's first dimension).
func (p *Patch) Rank() int {
	if p.Down == nil {
		return 0
	}
	return p.Down.Dim(0)
}

// Scale returns alpha/rank, or 1 without an alpha tensor (ComfyUI's LoRAAdapter).
func (p *Patch) Scale() float64 {
	if !p.HasAlpha || p.Rank() == 0 {
		return 1
	}
	return p.Alpha / float64(p.Rank())
}

// Factor returns the float32 multiplier ComfyUI applies to up·down (KindLoRA) or to the diff
// (KindDiff): float32(strength·alpha/rank), the product taken in float64 as Python does.
func (p *Patch) Factor() float32 {
	if p.Kind == KindLoRA {
		return float32(p.Strength * p.Scale())
	}
	return float32(p.Strength)
}

// Rows returns the number of rows the patch writes (out for LoRA, the diff's first dimension).
func (p *Patch) Rows() int {
	switch p.Kind {
	case KindLoRA:
		return p.Up.Dim(0)
	default:
		if p.Diff.Rank() == 0 {
			return 1
		}
		return p.Diff.Dim(0)
	}
}

// Result is a LoRA file resolved against a key map.
type Result struct {
	// Patches in the order ComfyUI applies them (a later patch of the same target adds to the
	// result of the earlier ones), each with Strength 1 (see WithStrength).
	Patches []Patch
	// NotLoaded lists, sorted, the file's tensors that no key-map name loaded (ComfyUI logs
	// each as "lora key not loaded"): keys of another model, or a naming this map lacks.
	NotLoaded []string
	// Ignored describes loaded patches that reach no parameter of the model (ComfyUI's "NOT
	// LOADED"), e.g. a .diff_b for a layer without bias, and modules that another name for the
	// same target replaced.
	Ignored []string
}

// loraForms are the up/down tensor-name suffixes ComfyUI's LoRAAdapter.load probes, in its
// order (the first form present wins).
var loraForms = [][2]string{
	{".lora_up.weight", ".lora_down.weight"},                           // ComfyUI / kohya
	{"_lora.up.weight", "_lora.down.weight"},                           // diffusers (old)
	{".lora_B.weight", ".lora_A.weight"},                               // diffusers / peft
	{".lora.up.weight", ".lora.down.weight"},                           // diffusers 3
	{".lora_B", ".lora_A"},                                             // mochi
	{".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"}, // transformers
	{".lora_B.default.weight", ".lora_A.default.weight"},               // peft "default" adapter
}

// unsupported are tensor-name suffixes of adapters ComfyUI loads that this package does not
// implement, with their names.
var unsupported = [][2]string{
	{".dora_scale", "DoRA (dora_scale)"},
	{".lora_mid.weight", "LoCon/Tucker (lora_mid)"},
	{".reshape_weight", "reshape_weight"},
	{".hada_w1_a", "LoHa"},
	{".lokr_w1", "LoKr"},
	{".lokr_w2", "LoKr"},
	{".lokr_w1_a", "LoKr"},
	{".lokr_w2_a", "LoKr"},
	{".a1.weight", "GLoRA"},
	{".oft_blocks", "OFT"},
}

// pyTrimTail is Python's s[:-n]: s without its last n bytes, "" when s is shorter.
func pyTrimTail(s string, n int) string {
	if len(s) <= n {
		return ""
	}
	return s[:len(s)-n]
}

// Resolve finds the file's patches for the names of km the way ComfyUI's load_lora does: for
// every name x of km, in map order, x+".alpha", an adapter (the first LoRA form present),
// then x+".w_norm", ".b_norm", ".diff", ".diff_b" and ".set_weight"; a later patch for the
// same target replaces an earlier one, and patches keep the position of their target's first
// patch. Malformed modules (an up without its down, ranks that do not match, an alpha that is
// not one value) and adapters this package does not implement are errors naming the tensor.
func (f *File) Resolve(km *KeyMap) (*Result, error) {
	type slot struct {
		p      Patch
		module string
	}
	slots := map[Target]*slot{}
	var order []Target
	res := &Result{}
	loaded := map[string]bool{}
	assign := func(t Target, p Patch, module string) {
		if s, ok := slots[t]; ok {
			if s.module != module {
				res.Ignored = append(res.Ignored, fmt.Sprintf("%s: replaced by %s (both patch %s)", s.module, module, t))
			}
			s.p, s.module = p, module
			return
		}
		slots[t] = &slot{p: p, module: module}
		order = append(order, t)
	}
	for i, x := range km.names {
		t := km.targets[i]
		var alpha float64
		hasAlpha := false
		if n := x + ".alpha"; f.has(n) {
			v, err := f.scalar(n)
			if err != nil {
				return nil, err
			}
			alpha, hasAlpha = v, true
			loaded[n] = true
		}
		for _, u := range unsupported {
			if f.has(x + u[0]) {
				return nil, fmt.Errorf("lora: %s: tensor %q: %s adapters are %w", f.name, x+u[0], u[1], errUnsupported)
			}
		}
		for _, form := range loraForms {
			upName, downName := x+form[0], x+form[1]
			if !f.has(upName) {
				continue
			}
			if !f.has(downName) {
				return nil, fmt.Errorf("lora: %s: tensor %q has no matching %q", f.name, upName, downName)
			}
			up, err := f.matrix(upName)
			if err != nil {
				return nil, err
			}
			down, err := f.matrix(downName)
			if err != nil {
				return nil, err
			}
			if up, down, err = flatten2(up, down); err != nil {
				return nil, fmt.Errorf("lora: %s: %s / %s: %w", f.name, upName, downName, err)
			}
			loaded[upName], loaded[downName] = true, true
			assign(t, Patch{Target: t, Kind: KindLoRA, Up: up, Down: down, Alpha: alpha, HasAlpha: hasAlpha, Strength: 1, File: f.name, Module: x}, x)
			break
		}
		bias := Target{Model: t.Model, Param: "().bias"} // ComfyUI slices the (key, offset) tuple
		if t.Whole() {
			bias = Target{Model: t.Model, Param: pyTrimTail(t.Param, len(".weight")) + ".bias"}
		}
		for _, d := range []struct {
			suffix string
			kind   Kind
			bias   bool
		}{{".w_norm", KindDiff, false}, {".b_norm", KindDiff, true}, {".diff", KindDiff, false}, {".diff_b", KindDiff, true}, {".set_weight", KindSet, false}} {
			n := x + d.suffix
			if !f.has(n) {
				continue
			}
			v, err := f.matrix(n)
			if err != nil {
				return nil, err
			}
			loaded[n] = true
			to := t
			if d.bias {
				to = bias
			}
			assign(to, Patch{Target: to, Kind: d.kind, Diff: v, Strength: 1, File: f.name, Module: n}, n)
		}
	}
	for _, t := range order {
		s := slots[t]
		if !km.HasParam(t.Model, t.Param) {
			res.Ignored = append(res.Ignored, fmt.Sprintf("%s: the model has no parameter %s (NOT LOADED)", s.module, t.Param))
			continue
		}
		res.Patches = append(res.Patches, s.p)
	}
	for _, n := range f.src.Names() {
		if !loaded[n] {
			res.NotLoaded = append(res.NotLoaded, n)
		}
	}
	slices.Sort(res.NotLoaded)
	return res, nil
}

// flatten2 flattens up and down to 2-D ([out, rank] and [rank, in], torch's
// flatten(start_dim=1)) and checks that their ranks agree.
func flatten2(up, down *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor, error) {
	flat := func(t *tensor.Tensor) (*tensor.Tensor, error) {
		if t.Rank() < 2 {
			return nil, fmt.Errorf("a LoRA matrix must have at least 2 dimensions, got %v", t.Shape())
		}
		n := 1
		for _, d := range t.Shape()[1:] {
			n *= d
		}
		if t.Rank() == 2 {
			return t, nil
		}
		return t.Reshape(t.Dim(0), n)
	}
	u, err := flat(up)
	if err != nil {
		return nil, nil, err
	}
	d, err := flat(down)
	if err != nil {
		return nil, nil, err
	}
	if u.Dim(1) != d.Dim(0) || d.Dim(0) == 0 {
		return nil, nil, fmt.Errorf("up %v and down %v do not share a rank", up.Shape(), down.Shape())
	}
	return u, d, nil
}

// WithStrength returns the patches of model with their strength set to s. At strength 0 only
// the KindSet patches remain: the others would add zero, as ComfyUI's patches of strength 0 do.
func WithStrength(ps []Patch, model string, s float64) []Patch {
	var out []Patch
	for _, p := range ps {
		if p.Target.Model == model && (s != 0 || p.Kind == KindSet) {
			p.Strength = s
			out = append(out, p)
		}
	}
	return out
}

// Summary describes tensor names for a warning: the count and the first few names.
func Summary(names []string, first int) string {
	if len(names) <= first {
		return fmt.Sprintf("%d: %s", len(names), strings.Join(names, ", "))
	}
	return fmt.Sprintf("%d, first %s …", len(names), strings.Join(names[:first], ", "))
}
