package qwen3

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/tensor"
)

// Request describes one forward pass over one token sequence (batch 1: ComfyUI encodes each
// prompt on its own).
type Request struct {
	// IDs are the token ids; each must be below the vocabulary size.
	IDs []int
	// Mask is ComfyUI's attention mask over the tokens (1 = valid, 0 = padding), applied to the
	// keys of every attention on top of the causal mask, with ComfyUI's finite fill value
	// (float32 min / 4) so that even rows whose every key is masked come out as in ComfyUI. Nil
	// means all ones (causal attention only).
	Mask []int
	// Layers lists the decoder layers whose outputs to return, negative values counting from
	// the end (ComfyUI layer_idx). Nil means the encoder's hidden layer (HiddenLayer).
	Layers []int
	// Embeddings also returns the token embeddings (Hugging Face hidden_states[0]).
	Embeddings bool
	// Final also returns the output of the last layer after the final RMSNorm (Hugging Face
	// last_hidden_state); it needs an encoder loaded with Options.Full.
	Final bool
}

// Result holds the tensors a Request asked for, each float32 [1, n, hidden] on the encoder's
// backend. They belong to the caller (Free them with the backend).
type Result struct {
	Layers     []*tensor.Tensor // in the order of Request.Layers
	Embeddings *tensor.Tensor   // nil unless requested
	Final      *tensor.Tensor   // nil unless requested
}

// Tensors lists every tensor of the result (for the backend's Free).
func (r *Result) Tensors() []*tensor.Tensor {
	var out []*tensor.Tensor
	for _, t := range append(append([]*tensor.Tensor{}, r.Layers...), r.Embeddings, r.Final) {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Hidden returns the hidden state the encoder is configured for (by default the output of
// layer L−2, without the final norm) for ids with causal attention and no padding: float32
// [1, len(ids), hidden] on the encoder's backend, owned by the caller.
func (e *Encoder) Hidden(ctx context.Context, ids []int) (*tensor.Tensor, error) {
	return e.HiddenMasked(ctx, ids, nil)
}

// HiddenMasked is Hidden with ComfyUI's attention mask (see Request.Mask; nil = all ones).
func (e *Encoder) HiddenMasked(ctx context.Context, ids, mask []int) (*tensor.Tensor, error) {
	r, err := e.Forward(ctx, Request{IDs: ids, Mask: mask})
	if err != nil {
		return nil, err
	}
	return r.Layers[0], nil
}

// maskFill is ComfyUI's additive mask value: torch.finfo(float32).min / 4.
var maskFill = float32(-math.MaxFloat32 / 4)

// Forward runs the decoder on one sequence and returns what req asks for. It checks ctx before
// every layer, runs only as many layers as the outputs need, and frees its activations as it
// goes.
func (e *Encoder) Forward(ctx context.Context, req Request) (*Result, error) {
	c := e.cfg
	n := len(req.IDs)
	if n == 0 {
		return nil, errors.New("qwen3: no token ids to encode")
	}
	for i, id := range req.IDs {
		if id < 0 || id >= c.VocabSize {
			return nil, fmt.Errorf("qwen3: %s: token id %d at position %d is outside the vocabulary of %d (is the tokenizer meant for this model?)",
				e.name, id, i, c.VocabSize)
		}
	}
	allValid := true
	if req.Mask != nil {
		if len(req.Mask) != n {
			return nil, fmt.Errorf("qwen3: attention mask has %d entries for %d tokens", len(req.Mask), n)
		}
		for i, m := range req.Mask {
			if m != 0 && m != 1 {
				return nil, fmt.Errorf("qwen3: attention mask entry %d is %d, want 0 or 1", i, m)
			}
			allValid = allValid && m == 1
		}
	}
	want := req.Layers
	if want == nil {
		want = []int{e.hidden}
	}
	last := -1
	idx := make([]int, len(want))
	for i, w := range want {
		l, err := c.resolveLayer(w)
		if err != nil {
			return nil, fmt.Errorf("qwen3: %w", err)
		}
		if l >= len(e.layers) {
			return nil, fmt.Errorf("qwen3: layer %d was not loaded (only layers up to %d; load with Options.Full)", l, len(e.layers)-1)
		}
		idx[i] = l
		last = max(last, l)
	}
	if req.Final {
		if e.norm == nil || len(e.layers) != c.NumHiddenLayers {
			return nil, errors.New("qwen3: the final norm was not loaded (load with Options.Full)")
		}
		last = c.NumHiddenLayers - 1
	}

	be := e.be
	res := &Result{Layers: make([]*tensor.Tensor, len(want))}
	scratch := &arena{be: be}
	ok := false
	defer func() {
		scratch.free()
		if !ok {
			be.Free(res.Tensors()...)
		}
	}()

	H := c.HiddenSize
	x2, err := scratch.alloc(n, H)
	if err != nil {
		return nil, fmt.Errorf("qwen3: %w", err)
	}
	if _, err := be.GatherRows(x2, e.embed, req.IDs); err != nil {
		return nil, fmt.Errorf("qwen3: embed_tokens: %w", err)
	}
	x, err := x2.Reshape(1, n, H)
	if err != nil {
		return nil, fmt.Errorf("qwen3: %w", err)
	}
	if req.Embeddings {
		if res.Embeddings, err = be.Copy(nil, x); err != nil {
			return nil, fmt.Errorf("qwen3: embeddings: %w", err)
		}
	}
	if last >= 0 {
		st, err := e.newState(scratch, n, req.Mask, allValid)
		if err != nil {
			return nil, fmt.Errorf("qwen3: %w", err)
		}
		for l := 0; l <= last; l++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("qwen3: before layer %d: %w", l, err)
			}
			if err := e.block(&e.layers[l], x, st); err != nil {
				return nil, fmt.Errorf("qwen3: %s: layer %d: %w", e.name, l, err)
			}
			for i, li := range idx {
				if li == l {
					if res.Layers[i], err = be.Copy(nil, x); err != nil {
						return nil, fmt.Errorf("qwen3: layer %d output: %w", l, err)
					}
				}
			}
		}
	}
	if req.Final {
		if res.Final, err = be.RMSNorm(nil, x, e.norm, float32(c.RMSNormEps)); err != nil {
			return nil, fmt.Errorf("qwen3: final norm: %w", err)
		}
	}
	ok = true
	return res, nil
}

// state holds one forward pass's scratch activations (views shaped for the ops) and the RoPE and
// mask tables.
type state struct {
	h, o, g, u   *tensor.Tensor // [1, n, hidden] ×2, [1, n, inter] ×2
	q, k, v, att *tensor.Tensor // flat [1, n, heads·head_dim]
	q4, k4, v4   *tensor.Tensor // [1, n, heads, head_dim]
	att4         *tensor.Tensor
	cos, sin     *tensor.Tensor // [n, head_dim/2]
	opt          tensor.AttentionOptions
}

func (e *Encoder) newState(a *arena, n int, mask []int, allValid bool) (*state, error) {
	c := e.cfg
	H, D, I := c.HiddenSize, c.HeadDim, c.IntermediateSize
	hq, hkv := c.NumAttentionHeads, c.NumKeyValueHeads
	s := &state{}
	var err error
	for _, b := range []struct {
		dst   **tensor.Tensor
		shape []int
	}{
		{&s.h, []int{1, n, H}}, {&s.o, []int{1, n, H}}, {&s.g, []int{1, n, I}}, {&s.u, []int{1, n, I}},
		{&s.q, []int{1, n, hq * D}}, {&s.k, []int{1, n, hkv * D}}, {&s.v, []int{1, n, hkv * D}}, {&s.att, []int{1, n, hq * D}},
	} {
		if *b.dst, err = a.alloc(b.shape...); err != nil {
			return nil, err
		}
	}
	for _, r := range []struct {
		dst   **tensor.Tensor
		src   *tensor.Tensor
		heads int
	}{{&s.q4, s.q, hq}, {&s.k4, s.k, hkv}, {&s.v4, s.v, hkv}, {&s.att4, s.att, hq}} {
		if *r.dst, err = r.src.Reshape(1, n, r.heads, D); err != nil {
			return nil, err
		}
	}
	cos, sin := ropeTables(n, D, c.RoPETheta)
	if s.cos, err = a.upload(cos, n, D/2); err != nil {
		return nil, err
	}
	if s.sin, err = a.upload(sin, n, D/2); err != nil {
		return nil, err
	}
	if allValid {
		s.opt = tensor.AttentionOptions{Causal: true}
	} else {
		m := make([]float32, n*n)
		for i := range n {
			for j := range n {
				var v float32
				if mask[j] == 0 {
					v = maskFill
				}
				if j > i {
					v += maskFill
				}
				m[i*n+j] = v
			}
		}
		mt, err := a.upload(m, n, n)
		if err != nil {
			return nil, err
		}
		s.opt = tensor.AttentionOptions{Mask: mt}
	}
	return s, nil
}

// block runs decoder layer w on x [1, n, hidden] in place.
func (e *Encoder) block(w *layerWeights, x *tensor.Tensor, s *state) error {
	be := e.be
	eps := float32(e.cfg.RMSNormEps)
	steps := []struct {
		name string
		run  func() (*tensor.Tensor, error)
	}{
		{"input_layernorm", func() (*tensor.Tensor, error) { return be.RMSNorm(s.h, x, w.inNorm, eps) }},
		{"q_proj", func() (*tensor.Tensor, error) { return be.Linear(s.q, s.h, w.q, nil) }},
		{"k_proj", func() (*tensor.Tensor, error) { return be.Linear(s.k, s.h, w.k, nil) }},
		{"v_proj", func() (*tensor.Tensor, error) { return be.Linear(s.v, s.h, w.v, nil) }},
		{"q_norm", func() (*tensor.Tensor, error) { return be.RMSNorm(s.q4, s.q4, w.qNorm, eps) }},
		{"k_norm", func() (*tensor.Tensor, error) { return be.RMSNorm(s.k4, s.k4, w.kNorm, eps) }},
		{"rope q", func() (*tensor.Tensor, error) { return be.RoPE(s.q4, s.q4, s.cos, s.sin, tensor.RoPEHalf) }},
		{"rope k", func() (*tensor.Tensor, error) { return be.RoPE(s.k4, s.k4, s.cos, s.sin, tensor.RoPEHalf) }},
		{"attention", func() (*tensor.Tensor, error) { return be.Attention(s.att4, s.q4, s.k4, s.v4, s.opt) }},
		{"o_proj", func() (*tensor.Tensor, error) { return be.Linear(s.o, s.att, w.o, nil) }},
		{"attention residual", func() (*tensor.Tensor, error) { return be.Binary(x, x, s.o, tensor.Add) }},
		{"post_attention_layernorm", func() (*tensor.Tensor, error) { return be.RMSNorm(s.h, x, w.postNorm, eps) }},
		{"gate_proj", func() (*tensor.Tensor, error) { return be.Linear(s.g, s.h, w.gate, nil) }},
		{"up_proj", func() (*tensor.Tensor, error) { return be.Linear(s.u, s.h, w.up, nil) }},
		{"silu", func() (*tensor.Tensor, error) { return be.Unary(s.g, s.g, tensor.SiLU) }},
		{"gate·up", func() (*tensor.Tensor, error) { return be.Binary(s.g, s.g, s.u, tensor.Mul) }},
		{"down_proj", func() (*tensor.Tensor, error) { return be.Linear(s.o, s.g, w.down, nil) }},
		{"mlp residual", func() (*tensor.Tensor, error) { return be.Binary(x, x, s.o, tensor.Add) }},
	}
	for _, st := range steps {
		if _, err := st.run(); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

// ropeTables returns the cosines and sines [n, headDim/2] of rotate-half RoPE at positions
// 0..n-1 the way ComfyUI's precompute_freqs_cis computes them, in float32:
// inv_freq[k] = 1 / θ^(2k/headDim), angle = p · inv_freq[k] (one float32 product), then cos/sin.
// The duplicated second half of ComfyUI's 128-wide table is implied by tensor.RoPEHalf.
func ropeTables(n, headDim int, theta float64) (cos, sin []float32) {
	half := headDim / 2
	inv := make([]float32, half)
	for k := range half {
		exp := float32(2*k) / float32(headDim)
		inv[k] = 1 / float32(math.Pow(theta, float64(exp)))
	}
	cos = make([]float32, n*half)
	sin = make([]float32, n*half)
	for p := range n {
		for k, f := range inv {
			a := float64(float32(p) * f)
			cos[p*half+k] = float32(math.Cos(a))
			sin[p*half+k] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

// arena tracks the activations of one forward pass so that every exit frees them.
type arena struct {
	be tensor.Backend
	ts []*tensor.Tensor
}

func (a *arena) alloc(shape ...int) (*tensor.Tensor, error) {
	t, err := a.be.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, err
	}
	a.ts = append(a.ts, t)
	return t, nil
}

// upload makes a host float32 table available on the backend.
func (a *arena) upload(data []float32, shape ...int) (*tensor.Tensor, error) {
	h, err := tensor.FromFloat32(data, shape...)
	if err != nil {
		return nil, err
	}
	t, err := a.be.ToDevice(h)
	if err != nil {
		return nil, err
	}
	a.ts = append(a.ts, t)
	return t, nil
}

func (a *arena) free() {
	a.be.Free(a.ts...)
	a.ts = nil
}
