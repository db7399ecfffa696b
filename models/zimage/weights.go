package zimage

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/tensor"
)

// linear is one torch Linear: weight [N, K] (or, for a diffusers checkpoint's attention, the
// row blocks q/k/v stored as separate tensors that together form the fused qkv weight) and an
// optional bias [N].
type linear struct {
	name string // ComfyUI module name, e.g. "layers.3.attention.qkv"
	w    []*tensor.Tensor
	b    *tensor.Tensor
	rows int // N (sum over parts)
}

// norm is one RMSNorm gain [D].
type norm struct {
	name string
	w    *tensor.Tensor
}

// block is one JointTransformerBlock.
type block struct {
	name      string
	modulated bool
	qkv, out  linear
	w1, w2    linear
	w3        linear
	adaLN     linear // modulated blocks only
	qNorm     norm   // QKNorm only
	kNorm     norm
	attnNorm1 norm
	attnNorm2 norm
	ffnNorm1  norm
	ffnNorm2  norm
}

// weights are all the parameters of the model, bound to tensors on the backend.
type weights struct {
	xPad, capPad     *tensor.Tensor // [1, D]; nil without padding
	xEmb             linear
	t0, t2           linear
	capNorm          norm
	capLin           linear
	finalLin         linear
	finalMod         linear
	noiseRef, ctxRef []block
	layers           []block
}

// binder looks tensors up by their ComfyUI name, checks their shapes and dtypes, and collects
// every problem so that a bad checkpoint is reported in one error.
type binder struct {
	cfg   Config
	get   func(stored string) (*tensor.Tensor, error)
	has   func(stored string) bool
	used  map[string]bool
	errs  []error
	conv  tensor.DType // convert Linear weights to this dtype (0: keep)
	be    tensor.Backend
	owned []*tensor.Tensor // tensors this model allocated (conversions, uploads) and must free
}

// stored maps a ComfyUI parameter name to the name in the checkpoint's layout (without the key
// prefix, which the source view already removed).
func (b *binder) stored(name string) string {
	if b.cfg.Layout != "diffusers" {
		return name
	}
	p := strconv.Itoa(b.cfg.PatchSize) + "-1"
	switch {
	case strings.HasPrefix(name, "x_embedder."):
		return "all_x_embedder." + p + "." + strings.TrimPrefix(name, "x_embedder.")
	case strings.HasPrefix(name, "final_layer."):
		return "all_final_layer." + p + "." + strings.TrimPrefix(name, "final_layer.")
	}
	for from, to := range map[string]string{
		".attention.out.weight":    ".attention.to_out.0.weight",
		".attention.q_norm.weight": ".attention.norm_q.weight",
		".attention.k_norm.weight": ".attention.norm_k.weight",
	} {
		if strings.HasSuffix(name, from) {
			return strings.TrimSuffix(name, from) + to
		}
	}
	return name
}

// tensor binds one parameter of the given shape.
func (b *binder) tensor(name string, shape ...int) *tensor.Tensor {
	return b.tensorAs(name, b.stored(name), false, shape...)
}

func (b *binder) tensorAs(name, stored string, convert bool, shape ...int) *tensor.Tensor {
	if !b.has(stored) {
		b.errs = append(b.errs, fmt.Errorf("missing tensor %s (shape %v)", stored, shape))
		return nil
	}
	b.used[stored] = true
	t, err := b.get(stored)
	if err != nil {
		b.errs = append(b.errs, fmt.Errorf("tensor %s: %w", stored, err))
		return nil
	}
	if !t.ShapeIs(shape...) {
		what := ""
		if !strings.HasPrefix(stored, name) {
			what = " (" + name + ")"
		}
		b.errs = append(b.errs, fmt.Errorf("tensor %s%s has shape %v, the config needs %v", stored, what, t.Shape(), shape))
		return nil
	}
	if convert && b.conv.Valid() && t.DType() != b.conv {
		c, err := b.be.Convert(t, b.conv)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("tensor %s: converting to %v: %w", stored, b.conv, err))
			return nil
		}
		b.owned = append(b.owned, c)
		return c
	}
	return t
}

// linear binds name.weight [n, k] and, when bias is set, name.bias [n].
func (b *binder) linear(name string, n, k int, bias bool) linear {
	l := linear{name: name, rows: n}
	l.w = []*tensor.Tensor{b.tensorAs(name, b.stored(name+".weight"), true, n, k)}
	if bias {
		l.b = b.tensor(name+".bias", n)
	}
	return l
}

// qkv binds the fused attention projection: one tensor in ComfyUI's layout, to_q/to_k/to_v in
// the diffusers layout.
func (b *binder) qkv(blk string, q, kv, k int) linear {
	name := blk + ".attention.qkv"
	if b.cfg.Layout != "diffusers" {
		return b.linear(name, q+2*kv, k, false)
	}
	l := linear{name: name, rows: q + 2*kv}
	for _, part := range []struct {
		s    string
		rows int
	}{{"to_q", q}, {"to_k", kv}, {"to_v", kv}} {
		l.w = append(l.w, b.tensorAs(name, blk+".attention."+part.s+".weight", true, part.rows, k))
	}
	return l
}

func (b *binder) norm(name string, d int) norm {
	return norm{name: name, w: b.tensor(name+".weight", d)}
}

func (b *binder) block(name string, modulated bool) block {
	c := b.cfg
	d, hd := c.Dim, c.HeadDim
	blk := block{name: name, modulated: modulated}
	blk.qkv = b.qkv(name, c.NHeads*hd, c.NKVHeads*hd, d)
	blk.out = b.linear(name+".attention.out", d, c.NHeads*hd, false)
	if c.QKNorm {
		blk.qNorm = b.norm(name+".attention.q_norm", hd)
		blk.kNorm = b.norm(name+".attention.k_norm", hd)
	}
	blk.w1 = b.linear(name+".feed_forward.w1", c.FFNHidden, d, false)
	blk.w2 = b.linear(name+".feed_forward.w2", d, c.FFNHidden, false)
	blk.w3 = b.linear(name+".feed_forward.w3", c.FFNHidden, d, false)
	blk.attnNorm1 = b.norm(name+".attention_norm1", d)
	blk.attnNorm2 = b.norm(name+".attention_norm2", d)
	blk.ffnNorm1 = b.norm(name+".ffn_norm1", d)
	blk.ffnNorm2 = b.norm(name+".ffn_norm2", d)
	if modulated {
		blk.adaLN = b.linear(name+".adaLN_modulation.0", 4*d, adaLNWidth, true)
	}
	return blk
}

// bind binds every parameter of cfg. names lists the stored tensor names (for the report of
// unused ones).
func (b *binder) bind(names []string) (*weights, []string, error) {
	c := b.cfg
	d := c.Dim
	w := &weights{}
	if c.PadTokensMultiple > 0 {
		w.xPad = b.tensor("x_pad_token", 1, d)
		w.capPad = b.tensor("cap_pad_token", 1, d)
	}
	w.xEmb = b.linear("x_embedder", d, c.patchFeatures(), true)
	w.t0 = b.linear("t_embedder.mlp.0", c.TEmbedderHidden, FrequencyEmbeddingSize, true)
	w.t2 = b.linear("t_embedder.mlp.2", adaLNWidth, c.TEmbedderHidden, true)
	w.capNorm = b.norm("cap_embedder.0", c.CapFeatDim)
	w.capLin = b.linear("cap_embedder.1", d, c.CapFeatDim, true)
	w.finalLin = b.linear("final_layer.linear", c.patchFeatures(), d, true)
	w.finalMod = b.linear("final_layer.adaLN_modulation.1", d, adaLNWidth, true)
	for i := range c.NRefinerLayers {
		w.noiseRef = append(w.noiseRef, b.block("noise_refiner."+strconv.Itoa(i), true))
	}
	for i := range c.NContextRefinerLayers {
		w.ctxRef = append(w.ctxRef, b.block("context_refiner."+strconv.Itoa(i), false))
	}
	for i := range c.NLayers {
		w.layers = append(w.layers, b.block("layers."+strconv.Itoa(i), true))
	}
	if len(b.errs) > 0 {
		const show = 8
		errs := b.errs
		if len(errs) > show {
			errs = append(errs[:show:show], fmt.Errorf("... and %d more problems", len(b.errs)-show))
		}
		return nil, nil, errors.Join(errs...)
	}
	var unused []string
	for _, n := range names {
		if !b.used[n] {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	return w, unused, nil
}
