package vae

import (
	"context"
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// The forward passes. Every stage takes ownership of its input (frees it, also on error) unless
// told it is borrowed, so that at any moment only the tensors the next op needs are alive: that
// is what makes the memory estimates of memory.go hold.

type runner struct {
	be     tensor.Backend
	dt     tensor.DType
	groups int
	eps    float32
}

func (v *VAE) runner() *runner {
	return &runner{be: v.be, dt: v.compute, groups: v.cfg.GroupNormGroups, eps: float32(v.cfg.GroupNormEps)}
}

var pad1 = tensor.Pad(1, 1)

// free hands tensors back, skipping nils.
func (r *runner) free(ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t != nil {
			r.be.Free(t)
		}
	}
}

// input makes x usable as an activation of the compute dtype; owned says whether the result
// must be freed by the pass (a converted copy) or belongs to the caller.
func (r *runner) input(x *tensor.Tensor) (t *tensor.Tensor, owned bool, err error) {
	if x.DType() == r.dt {
		return x, false, nil
	}
	t, err = r.be.Convert(x, r.dt)
	return t, true, err
}

func (r *runner) conv(x *tensor.Tensor, c *convLayer, p tensor.Conv2DParams) (*tensor.Tensor, error) {
	return r.be.Conv2D(nil, x, c.w, c.b, p)
}

// normSiLU computes silu(groupnorm(x)) into dst (nil: a new tensor; x itself: in place).
func (r *runner) normSiLU(dst, x *tensor.Tensor, n *normLayer) (*tensor.Tensor, error) {
	h, err := r.be.GroupNorm(dst, x, n.w, n.b, r.groups, r.eps)
	if err != nil {
		return nil, err
	}
	return r.be.Unary(h, h, tensor.SiLU)
}

// resnet runs a ResnetBlock: h = conv2(silu(gn2(conv1(silu(gn1(x)))))); return shortcut(x) + h.
// x is consumed when owned.
func (r *runner) resnet(x *tensor.Tensor, owned bool, b *resBlock) (out *tensor.Tensor, err error) {
	var h, h2 *tensor.Tensor
	defer func() {
		if err != nil {
			r.free(h, h2)
			if owned {
				r.free(x)
			}
			out = nil
		}
	}()
	if h, err = r.normSiLU(nil, x, &b.norm1); err != nil {
		return
	}
	if h2, err = r.conv(h, &b.conv1, pad1); err != nil {
		return
	}
	r.free(h)
	h = nil
	if _, err = r.normSiLU(h2, h2, &b.norm2); err != nil {
		return
	}
	if h, err = r.conv(h2, &b.conv2, pad1); err != nil {
		return
	}
	r.free(h2)
	h2 = nil
	skip := x
	if b.nin != nil {
		if h2, err = r.conv(x, b.nin, tensor.Conv2DParams{}); err != nil {
			return
		}
		skip = h2
	}
	if _, err = r.be.Binary(h, h, skip, tensor.Add); err != nil {
		return
	}
	r.free(h2)
	h2 = nil
	if owned {
		r.free(x)
	}
	return h, nil
}

// attention runs an AttnBlock: x + proj_out(attention(q, k, v)) over the H·W positions with one
// head of C dims (scale 1/sqrt(C)). The 1x1 convolutions are Linear layers on the transposed
// activations [N, S, C]. x is consumed when owned (the sum is written into it).
func (r *runner) attention(x *tensor.Tensor, owned bool, a *attnBlock) (out *tensor.Tensor, err error) {
	n, c, hh, ww := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	s := hh * ww
	var h, ht, q, k, vv, o, p *tensor.Tensor
	defer func() {
		if err != nil {
			r.free(h, ht, q, k, vv, o, p)
			if owned {
				r.free(x)
			}
			out = nil
		}
	}()
	if h, err = r.be.GroupNorm(nil, x, a.norm.w, a.norm.b, r.groups, r.eps); err != nil {
		return
	}
	var hv *tensor.Tensor
	if hv, err = h.Reshape(n, c, s); err != nil {
		return
	}
	if hv, err = hv.Transpose(1, 2); err != nil {
		return
	}
	if ht, err = r.be.Copy(nil, hv); err != nil {
		return
	}
	r.free(h)
	h = nil
	if q, err = r.be.Linear(nil, ht, a.q.w, a.q.b); err != nil {
		return
	}
	if k, err = r.be.Linear(nil, ht, a.k.w, a.k.b); err != nil {
		return
	}
	if vv, err = r.be.Linear(nil, ht, a.v.w, a.v.b); err != nil {
		return
	}
	r.free(ht)
	ht = nil
	var q4, k4, v4 *tensor.Tensor
	if q4, err = q.Reshape(n, s, 1, c); err != nil {
		return
	}
	if k4, err = k.Reshape(n, s, 1, c); err != nil {
		return
	}
	if v4, err = vv.Reshape(n, s, 1, c); err != nil {
		return
	}
	if o, err = r.be.Attention(nil, q4, k4, v4, tensor.AttentionOptions{}); err != nil {
		return
	}
	r.free(q, k, vv)
	q, k, vv = nil, nil, nil
	var o3 *tensor.Tensor
	if o3, err = o.Reshape(n, s, c); err != nil {
		return
	}
	if p, err = r.be.Linear(nil, o3, a.proj.w, a.proj.b); err != nil {
		return
	}
	r.free(o)
	o = nil
	var pt, x3 *tensor.Tensor
	if pt, err = p.Transpose(1, 2); err != nil {
		return
	}
	if x3, err = x.Reshape(n, c, s); err != nil {
		return
	}
	dst := x3
	if !owned {
		dst = nil
	}
	var sum *tensor.Tensor
	if sum, err = r.be.Binary(dst, x3, pt, tensor.Add); err != nil {
		return
	}
	r.free(p)
	p = nil
	if !owned {
		if out, err = sum.Reshape(n, c, hh, ww); err != nil {
			r.free(sum)
			return
		}
		return out, nil
	}
	return x, nil
}

// block runs resnet j of a level and, when the level has them, its attention block.
func (r *runner) block(x *tensor.Tensor, owned bool, lv *level, j int) (*tensor.Tensor, error) {
	h, err := r.resnet(x, owned, &lv.blocks[j])
	if err != nil || len(lv.attn) == 0 {
		return h, err
	}
	return r.attention(h, true, &lv.attn[j])
}

// tail runs norm_out, SiLU and conv_out on an owned h.
func (r *runner) tail(h *tensor.Tensor, n *normLayer, c *convLayer) (*tensor.Tensor, error) {
	if _, err := r.normSiLU(h, h, n); err != nil {
		r.free(h)
		return nil, err
	}
	out, err := r.conv(h, c, pad1)
	r.free(h)
	return out, err
}

// DecodeRaw runs the decoder on z [N, z_channels, h, w] (any dtype, on the VAE's backend) and
// returns its raw output [N, out_ch, h·f, w·f] (f = Downscale) in the compute dtype, nominally in
// [-1, 1]: ComfyUI's first_stage_model.decode. z is not modified; the caller frees the result
// with the backend's Free. Cancellation is checked between blocks.
func (v *VAE) DecodeRaw(ctx context.Context, z *tensor.Tensor) (*tensor.Tensor, error) {
	if v.dec == nil {
		return nil, fmt.Errorf("vae: %s has no decoder", v.file)
	}
	if z.Rank() != 4 || z.Dim(1) != v.cfg.ZChannels || z.Dim(2) == 0 || z.Dim(3) == 0 {
		return nil, fmt.Errorf("vae: decode: latent %v, want [N, %d, H, W]", z.Shape(), v.cfg.ZChannels)
	}
	r := v.runner()
	d := v.dec
	x, owned, err := r.input(z)
	if err != nil {
		return nil, fmt.Errorf("vae: decode: %w", err)
	}
	h, err := r.conv(x, &d.convIn, pad1)
	if owned {
		r.free(x)
	}
	if err != nil {
		return nil, fmt.Errorf("vae: decode: conv_in: %w", err)
	}
	p := &stages{ctx: ctx, r: r, what: "decode", h: h}
	p.middle(&d.mid1, &d.midAttn, &d.mid2)
	for i := len(d.levels) - 1; i >= 0; i-- {
		p.level(fmt.Sprintf("up.%d", i), &d.levels[i], "upsample", r.upsample)
	}
	p.stage("norm_out/conv_out", func(x *tensor.Tensor) (*tensor.Tensor, error) { return r.tail(x, &d.normOut, &d.convOut) })
	return p.h, p.err
}

// stages threads one activation through the named stages of a forward, checking the context
// before each. A stage consumes its input; after a failure the later stages are skipped and
// h is nil.
type stages struct {
	ctx  context.Context
	r    *runner
	what string // "decode" or "encode", for errors
	h    *tensor.Tensor
	err  error
}

func (p *stages) stage(name string, f func(*tensor.Tensor) (*tensor.Tensor, error)) {
	if p.err != nil {
		return
	}
	if err := p.ctx.Err(); err != nil {
		p.r.free(p.h)
		p.h, p.err = nil, err
		return
	}
	out, err := f(p.h)
	p.h = out
	if err != nil {
		p.h, p.err = nil, fmt.Errorf("vae: %s: %s: %w", p.what, name, err)
	}
}

// middle runs mid.block_1, mid.attn_1 and mid.block_2.
func (p *stages) middle(block1 *resBlock, attn *attnBlock, block2 *resBlock) {
	p.stage("mid.block_1", func(x *tensor.Tensor) (*tensor.Tensor, error) { return p.r.resnet(x, true, block1) })
	p.stage("mid.attn_1", func(x *tensor.Tensor) (*tensor.Tensor, error) { return p.r.attention(x, true, attn) })
	p.stage("mid.block_2", func(x *tensor.Tensor) (*tensor.Tensor, error) { return p.r.resnet(x, true, block2) })
}

// level runs a level's blocks (with their attention) and then its resampling, if it has one.
func (p *stages) level(prefix string, lv *level, resampleName string, resample func(*tensor.Tensor, *convLayer) (*tensor.Tensor, error)) {
	for j := range lv.blocks {
		p.stage(fmt.Sprintf("%s.block.%d", prefix, j), func(x *tensor.Tensor) (*tensor.Tensor, error) { return p.r.block(x, true, lv, j) })
	}
	if lv.resamp != nil {
		p.stage(prefix+"."+resampleName, func(x *tensor.Tensor) (*tensor.Tensor, error) { return resample(x, lv.resamp) })
	}
}

// upsample: nearest-neighbour x2 (torch "nearest" with scale 2 picks the same source pixels as
// "nearest-exact"), then a 3x3 conv. x is consumed.
func (r *runner) upsample(x *tensor.Tensor, c *convLayer) (*tensor.Tensor, error) {
	up, err := r.be.Resize(nil, x, 2*x.Dim(2), 2*x.Dim(3), tensor.ResizeNearestExact)
	r.free(x)
	if err != nil {
		return nil, err
	}
	out, err := r.conv(up, c, pad1)
	r.free(up)
	return out, err
}

// downsample: zero pad right and bottom by one, 3x3 conv with stride 2. x is consumed.
func (r *runner) downsample(x *tensor.Tensor, c *convLayer) (*tensor.Tensor, error) {
	out, err := r.conv(x, c, tensor.Conv2DParams{StrideH: 2, StrideW: 2, PadBottom: 1, PadRight: 1})
	r.free(x)
	return out, err
}

// EncodeMoments runs the encoder on x [N, in_channels, H, W] (pixels already mapped to [-1, 1],
// any dtype, on the VAE's backend) and returns the moments [N, 2·z_channels, H/f, W/f] (mean
// then log-variance; z_channels only when double_z is false) in the compute dtype: ComfyUI's
// encoder output before the DiagonalGaussianRegularizer. H and W must be at least f. The caller
// frees the result.
func (v *VAE) EncodeMoments(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if v.enc == nil {
		return nil, fmt.Errorf("vae: %s has no encoder", v.file)
	}
	f := v.Downscale()
	if x.Rank() != 4 || x.Dim(1) != v.cfg.InChannels || x.Dim(2) < f || x.Dim(3) < f {
		return nil, fmt.Errorf("vae: encode: pixels %v, want [N, %d, H, W] with H, W ≥ %d", x.Shape(), v.cfg.InChannels, f)
	}
	r := v.runner()
	e := v.enc
	in, owned, err := r.input(x)
	if err != nil {
		return nil, fmt.Errorf("vae: encode: %w", err)
	}
	h, err := r.conv(in, &e.convIn, pad1)
	if owned {
		r.free(in)
	}
	if err != nil {
		return nil, fmt.Errorf("vae: encode: conv_in: %w", err)
	}
	p := &stages{ctx: ctx, r: r, what: "encode", h: h}
	for i := range e.levels {
		p.level(fmt.Sprintf("down.%d", i), &e.levels[i], "downsample", r.downsample)
	}
	p.middle(&e.mid1, &e.midAttn, &e.mid2)
	p.stage("norm_out/conv_out", func(x *tensor.Tensor) (*tensor.Tensor, error) { return r.tail(x, &e.normOut, &e.convOut) })
	return p.h, p.err
}
