package zimage

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// modulation holds the four [B, 1, D] views of one block's adaLN output: 1 + scale_msa,
// tanh(gate_msa), 1 + scale_mlp, tanh(gate_mlp).
type modulation struct {
	scaleMSA, gateMSA, scaleMLP, gateMLP *tensor.Tensor
}

// modulate computes adaLN_modulation.0(c) (no SiLU before it, Z-Image) and turns the chunks
// into the factors the block multiplies by.
func (m *Model) modulate(s *scratch, blk *block, cond *tensor.Tensor) (modulation, *tensor.Tensor, error) {
	d := m.cfg.Dim
	mod, err := m.linear(s, nil, cond, &blk.adaLN)
	if err != nil {
		return modulation{}, nil, err
	}
	v, err := mod.Unsqueeze(1) // [B, 1, 4D]
	if err != nil {
		return modulation{}, nil, err
	}
	var parts [4]*tensor.Tensor
	for i := range parts {
		if parts[i], err = v.Slice(2, i*d, (i+1)*d); err != nil {
			return modulation{}, nil, err
		}
	}
	for _, i := range []int{0, 2} {
		if _, err := m.be.Affine(parts[i], parts[i], 1, 1); err != nil {
			return modulation{}, nil, fmt.Errorf("zimage: %s: scale: %w", blk.name, err)
		}
	}
	for _, i := range []int{1, 3} {
		if _, err := m.be.Unary(parts[i], parts[i], tensor.Tanh); err != nil {
			return modulation{}, nil, fmt.Errorf("zimage: %s: gate: %w", blk.name, err)
		}
	}
	return modulation{parts[0], parts[1], parts[2], parts[3]}, mod, nil
}

// block runs one JointTransformerBlock on x [B, S, D] in place. cond is the adaLN input
// [B, 256] (nil for the unmodulated context refiner); cos/sin are the RoPE tables [S, lanes].
//
//	x = x + tanh(gate_msa) · N2a(Attn(N1a(x) · (1 + scale_msa)))
//	x = x + tanh(gate_mlp) · N2f(FFN(N1f(x) · (1 + scale_mlp)))
func (m *Model) block(s *scratch, blk *block, x, cond, cos, sin *tensor.Tensor) error {
	be, c := m.be, m.cfg
	var mod modulation
	var modT *tensor.Tensor
	if blk.modulated {
		if cond == nil {
			return fmt.Errorf("zimage: %s: modulated block without conditioning", blk.name)
		}
		var err error
		if mod, modT, err = m.modulate(s, blk, cond); err != nil {
			return err
		}
		defer s.free(modT)
	}
	wrap := func(err error) error { return fmt.Errorf("zimage: %s: %w", blk.name, err) }

	// Attention branch.
	h, err := m.norm(s, nil, x, &blk.attnNorm1, c.NormEps)
	if err != nil {
		return err
	}
	if blk.modulated {
		if _, err := be.Binary(h, h, mod.scaleMSA, tensor.Mul); err != nil {
			return wrap(err)
		}
	}
	a, err := m.attention(s, blk, h, cos, sin)
	if err != nil {
		return err
	}
	s.free(h)
	if _, err := m.norm(s, a, a, &blk.attnNorm2, c.NormEps); err != nil {
		return err
	}
	if blk.modulated {
		if _, err := be.Binary(a, a, mod.gateMSA, tensor.Mul); err != nil {
			return wrap(err)
		}
	}
	if _, err := be.Binary(x, x, a, tensor.Add); err != nil {
		return wrap(err)
	}
	s.free(a)

	// Feed-forward branch.
	if h, err = m.norm(s, nil, x, &blk.ffnNorm1, c.NormEps); err != nil {
		return err
	}
	if blk.modulated {
		if _, err := be.Binary(h, h, mod.scaleMLP, tensor.Mul); err != nil {
			return wrap(err)
		}
	}
	f, err := m.feedForward(s, blk, h)
	if err != nil {
		return err
	}
	s.free(h)
	if _, err := m.norm(s, f, f, &blk.ffnNorm2, c.NormEps); err != nil {
		return err
	}
	if blk.modulated {
		if _, err := be.Binary(f, f, mod.gateMLP, tensor.Mul); err != nil {
			return wrap(err)
		}
	}
	if _, err := be.Binary(x, x, f, tensor.Add); err != nil {
		return wrap(err)
	}
	s.free(f)
	return nil
}

// attention is JointAttention: fused qkv projection, per-head q/k RMSNorm, interleaved-pair
// RoPE, full bidirectional softmax attention (grouped KV heads), output projection.
func (m *Model) attention(s *scratch, blk *block, h, cos, sin *tensor.Tensor) (*tensor.Tensor, error) {
	be, c := m.be, m.cfg
	b, sq := h.Dim(0), h.Dim(1)
	hd := c.HeadDim
	nq, nkv := c.NHeads*hd, c.NKVHeads*hd
	wrap := func(err error) error { return fmt.Errorf("zimage: %s.attention: %w", blk.name, err) }
	qkv, err := m.linear(s, nil, h, &blk.qkv)
	if err != nil {
		return nil, err
	}
	split := func(off, n, heads int) (*tensor.Tensor, error) {
		v, err := qkv.Slice(2, off, off+n)
		if err != nil {
			return nil, err
		}
		return v.Reshape(b, sq, heads, hd)
	}
	q, err := split(0, nq, c.NHeads)
	if err != nil {
		return nil, wrap(err)
	}
	k, err := split(nq, nkv, c.NKVHeads)
	if err != nil {
		return nil, wrap(err)
	}
	v, err := split(nq+nkv, nkv, c.NKVHeads)
	if err != nil {
		return nil, wrap(err)
	}
	if c.QKNorm {
		if _, err := m.norm(s, q, q, &blk.qNorm, c.QKNormEps); err != nil {
			return nil, err
		}
		if _, err := m.norm(s, k, k, &blk.kNorm, c.QKNormEps); err != nil {
			return nil, err
		}
	}
	if _, err := be.RoPE(q, q, cos, sin, tensor.RoPEInterleaved); err != nil {
		return nil, wrap(err)
	}
	if _, err := be.RoPE(k, k, cos, sin, tensor.RoPEInterleaved); err != nil {
		return nil, wrap(err)
	}
	o, err := be.Alloc(tensor.F32, b, sq, c.NHeads, hd)
	if err != nil {
		return nil, wrap(err)
	}
	s.keep(o)
	if _, err := be.Attention(o, q, k, v, tensor.AttentionOptions{}); err != nil {
		return nil, wrap(err)
	}
	s.free(qkv)
	o2, err := o.Reshape(b, sq, nq)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := m.linear(s, nil, o2, &blk.out)
	if err != nil {
		return nil, err
	}
	s.free(o)
	return out, nil
}

// feedForward is w2(silu(w1 h) · w3 h).
func (m *Model) feedForward(s *scratch, blk *block, h *tensor.Tensor) (*tensor.Tensor, error) {
	be := m.be
	a, err := m.linear(s, nil, h, &blk.w1)
	if err != nil {
		return nil, err
	}
	g, err := m.linear(s, nil, h, &blk.w3)
	if err != nil {
		return nil, err
	}
	if _, err := be.Unary(a, a, tensor.SiLU); err != nil {
		return nil, fmt.Errorf("zimage: %s.feed_forward: %w", blk.name, err)
	}
	if _, err := be.Binary(a, a, g, tensor.Mul); err != nil {
		return nil, fmt.Errorf("zimage: %s.feed_forward: %w", blk.name, err)
	}
	s.free(g)
	out, err := m.linear(s, nil, a, &blk.w2)
	if err != nil {
		return nil, err
	}
	s.free(a)
	return out, nil
}
