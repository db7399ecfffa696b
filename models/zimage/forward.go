package zimage

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/tensor"
)

// Input is one model evaluation.
type Input struct {
	// X is the latent [B, InChannels, H, W] on the model's backend (any float dtype; odd sizes
	// are padded circularly to the patch size and the output cropped back, as ComfyUI).
	X *tensor.Tensor
	// Sigma is the timestep ComfyUI passes to the network (σ·multiplier, multiplier 1 for
	// Z-Image): one value per sample, or a single value for the whole batch.
	Sigma []float32
	// Context is the text conditioning [B, L, CapFeatDim] (or [1, L, CapFeatDim], shared by
	// every sample).
	Context *tensor.Tensor
	// CaptionLens optionally gives each sample's caption length (≤ L): sample i attends to its
	// first CaptionLens[i] context rows only. nil means L for all. Samples with different
	// lengths run as separate passes (ComfyUI never masks captions; it runs conditionings of
	// different lengths in separate calls).
	CaptionLens []int
	// Rope is the RoPE of the current step: nil for plain Z-Image RoPE, or a *dype.Rope whose
	// σ the sampler has set for this step.
	Rope RopeProvider
}

// Forward runs the DiT and returns the velocity ComfyUI's NextDiT returns (already negated):
// F32 [B, InChannels, H, W] on the backend, which the caller frees. It checks ctx between
// blocks and returns ctx.Err() when cancelled.
func (m *Model) Forward(ctx context.Context, in Input) (*tensor.Tensor, error) {
	return m.forward(ctx, in, fwdOpts{})
}

// tableFunc overrides how RoPE tables are made (tests feed recorded tables).
type tableFunc func(l ropeLayout) (ropeTables, error)

// fwdOpts are test seams: recorded RoPE tables, and a trace of intermediate activations (block
// inputs/outputs under ComfyUI's module names; the tensor is valid only during the call).
type fwdOpts struct {
	tables tableFunc
	trace  func(name string, t *tensor.Tensor)
}

func (m *Model) forward(ctx context.Context, in Input, o fwdOpts) (*tensor.Tensor, error) {
	if m.isClosed() {
		return nil, errors.New("zimage: forward: model is closed")
	}
	c := m.cfg
	x, cx := in.X, in.Context
	if x == nil || x.Rank() != 4 || x.Dim(1) != c.InChannels || x.Dim(2) < 1 || x.Dim(3) < 1 {
		return nil, fmt.Errorf("zimage: forward: latent must be [B, %d, H, W], got %v", c.InChannels, shapeOf(x))
	}
	b := x.Dim(0)
	if b < 1 {
		return nil, fmt.Errorf("zimage: forward: empty batch")
	}
	if cx == nil || cx.Rank() != 3 || cx.Dim(2) != c.CapFeatDim || (cx.Dim(0) != b && cx.Dim(0) != 1) || cx.Dim(1) < 1 {
		return nil, fmt.Errorf("zimage: forward: context must be [%d or 1, L ≥ 1, %d], got %v", b, c.CapFeatDim, shapeOf(cx))
	}
	sig := make([]float32, b)
	switch len(in.Sigma) {
	case b:
		copy(sig, in.Sigma)
	case 1:
		for i := range sig {
			sig[i] = in.Sigma[0]
		}
	default:
		return nil, fmt.Errorf("zimage: forward: %d sigmas for a batch of %d", len(in.Sigma), b)
	}
	for _, s := range sig {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("zimage: forward: sigma %v is not finite", s)
		}
	}
	l := cx.Dim(1)
	if in.CaptionLens != nil && len(in.CaptionLens) != b {
		return nil, fmt.Errorf("zimage: forward: %d caption lengths for a batch of %d", len(in.CaptionLens), b)
	}
	lens := make([]int, b)
	uniform := true
	for i := range lens {
		lens[i] = l
		if in.CaptionLens != nil {
			lens[i] = in.CaptionLens[i]
			if lens[i] < 1 || lens[i] > l {
				return nil, fmt.Errorf("zimage: forward: caption length %d of sample %d is outside [1, %d]", lens[i], i, l)
			}
		}
		uniform = uniform && lens[i] == lens[0]
	}
	if o.tables == nil {
		o.tables = func(lay ropeLayout) (ropeTables, error) { return m.tables(in.Rope, lay) }
	}
	if uniform {
		cxs := cx
		if lens[0] != l {
			var err error
			if cxs, err = cx.Slice(1, 0, lens[0]); err != nil {
				return nil, fmt.Errorf("zimage: forward: %w", err)
			}
		}
		return m.forwardGroup(ctx, x, sig, cxs, o)
	}
	return m.forwardRagged(ctx, x, sig, cx, lens, o)
}

// forwardRagged runs the samples grouped by caption length and gathers the outputs.
func (m *Model) forwardRagged(ctx context.Context, x *tensor.Tensor, sig []float32, cx *tensor.Tensor, lens []int, o fwdOpts) (*tensor.Tensor, error) {
	be := m.be
	b := x.Dim(0)
	out, err := be.Alloc(tensor.F32, x.Shape()...)
	if err != nil {
		return nil, fmt.Errorf("zimage: forward: %w", err)
	}
	done := make([]bool, b)
	for i := range b {
		if done[i] {
			continue
		}
		var idx []int
		for j := i; j < b; j++ {
			if lens[j] == lens[i] {
				idx = append(idx, j)
				done[j] = true
			}
		}
		v, err := m.forwardSubset(ctx, x, sig, cx, lens[i], idx, o)
		if err != nil {
			be.Free(out)
			return nil, err
		}
		for k, j := range idx {
			dst, _ := out.Slice(0, j, j+1)
			src, _ := v.Slice(0, k, k+1)
			if _, err := be.Copy(dst, src); err != nil {
				be.Free(out, v)
				return nil, fmt.Errorf("zimage: forward: %w", err)
			}
		}
		be.Free(v)
	}
	return out, nil
}

// forwardSubset runs the samples idx, whose captions have length n.
func (m *Model) forwardSubset(ctx context.Context, x *tensor.Tensor, sig []float32, cx *tensor.Tensor, n int, idx []int, o fwdOpts) (*tensor.Tensor, error) {
	be := m.be
	var xs, cs []*tensor.Tensor
	var ss []float32
	for _, j := range idx {
		xv, err := x.Slice(0, j, j+1)
		if err != nil {
			return nil, fmt.Errorf("zimage: forward: %w", err)
		}
		cj := 0
		if cx.Dim(0) > 1 {
			cj = j
		}
		cv, err := cx.Slice(0, cj, cj+1)
		if err == nil {
			cv, err = cv.Slice(1, 0, n)
		}
		if err != nil {
			return nil, fmt.Errorf("zimage: forward: %w", err)
		}
		xs, cs, ss = append(xs, xv), append(cs, cv), append(ss, sig[j])
	}
	if len(idx) == 1 {
		return m.forwardGroup(ctx, xs[0], ss, cs[0], o)
	}
	xb, err := be.Concat(nil, 0, xs...)
	if err != nil {
		return nil, fmt.Errorf("zimage: forward: %w", err)
	}
	defer be.Free(xb)
	cb, err := be.Concat(nil, 0, cs...)
	if err != nil {
		return nil, fmt.Errorf("zimage: forward: %w", err)
	}
	defer be.Free(cb)
	return m.forwardGroup(ctx, xb, ss, cb, o)
}

// scratch tracks the activations of one pass so that every exit path frees them.
type scratch struct {
	be   tensor.Backend
	live []*tensor.Tensor
}

func (s *scratch) keep(t *tensor.Tensor) *tensor.Tensor {
	s.live = append(s.live, t)
	return t
}

// free releases t now (it must have been kept).
func (s *scratch) free(ts ...*tensor.Tensor) {
	for _, t := range ts {
		for i, u := range s.live {
			if u == t {
				s.live = append(s.live[:i], s.live[i+1:]...)
				s.be.Free(t)
				break
			}
		}
	}
}

// release frees everything still kept except the tensors in except.
func (s *scratch) release(except ...*tensor.Tensor) {
	for _, t := range s.live {
		skip := false
		for _, e := range except {
			skip = skip || t == e
		}
		if !skip {
			s.be.Free(t)
		}
	}
	s.live = nil
}

// forwardGroup runs a batch whose samples share one caption length (context [B or 1, L, C]).
func (m *Model) forwardGroup(ctx context.Context, x *tensor.Tensor, sig []float32, cx *tensor.Tensor, o fwdOpts) (out *tensor.Tensor, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, be := m.cfg, m.be
	s := &scratch{be: be}
	defer func() { s.release(out) }()
	wrap := func(what string, err error) error { return fmt.Errorf("zimage: forward: %s: %w", what, err) }
	trace := func(name string, t *tensor.Tensor) {
		if o.trace != nil {
			o.trace(name, t)
		}
	}

	b, h, w := x.Dim(0), x.Dim(2), x.Dim(3)
	p := c.PatchSize
	gh, gw := (h+p-1)/p, (w+p-1)/p
	nImg, l := gh*gw, cx.Dim(1)
	lay := ropeLayout{capRows: c.padded(l), gridH: gh, gridW: gw, imgRows: c.padded(nImg)}
	seq := lay.capRows + lay.imgRows

	// Timestep conditioning c [B, 256] (the adaLN input of every modulated block).
	cond, err := m.timestep(s, sig)
	if err != nil {
		return nil, wrap("t_embedder", err)
	}

	// RoPE tables [capRows + imgRows, lanes].
	tabs, err := o.tables(lay)
	if err != nil {
		return nil, err
	}
	if tabs.lanes != c.HeadDim/2 || len(tabs.cos) != seq*tabs.lanes || len(tabs.sin) != len(tabs.cos) {
		return nil, fmt.Errorf("zimage: forward: rope tables of %d values with %d lanes, need %d rows × %d lanes", len(tabs.cos), tabs.lanes, seq, c.HeadDim/2)
	}
	cos, err := m.upload(s, tabs.cos, seq, tabs.lanes)
	if err != nil {
		return nil, wrap("rope table", err)
	}
	sin, err := m.upload(s, tabs.sin, seq, tabs.lanes)
	if err != nil {
		return nil, wrap("rope table", err)
	}
	capCos, _ := cos.Slice(0, 0, lay.capRows)
	capSin, _ := sin.Slice(0, 0, lay.capRows)
	imgCos, _ := cos.Slice(0, lay.capRows, seq)
	imgSin, _ := sin.Slice(0, lay.capRows, seq)

	// Caption: RMSNorm + Linear, then the pad token rows.
	capFeat, err := m.embedCaption(s, cx, b, lay.capRows)
	if err != nil {
		return nil, wrap("cap_embedder", err)
	}
	// Image: patchify + Linear, then the pad token rows.
	img, err := m.embedImage(s, x, lay)
	if err != nil {
		return nil, wrap("x_embedder", err)
	}

	trace("t_embedder.out", cond)
	trace("caption", capFeat)
	trace("image", img)
	run := func(blk *block, x, cond, cos, sin *tensor.Tensor) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		trace(blk.name+".in", x)
		if err := m.block(s, blk, x, cond, cos, sin); err != nil {
			return err
		}
		trace(blk.name+".out", x)
		return nil
	}
	for i := range m.w.ctxRef {
		if err := run(&m.w.ctxRef[i], capFeat, nil, capCos, capSin); err != nil {
			return nil, err
		}
	}
	for i := range m.w.noiseRef {
		if err := run(&m.w.noiseRef[i], img, cond, imgCos, imgSin); err != nil {
			return nil, err
		}
	}
	u, err := be.Concat(nil, 1, capFeat, img)
	if err != nil {
		return nil, wrap("joint sequence", err)
	}
	s.keep(u)
	s.free(capFeat, img)
	for i := range m.w.layers {
		if err := run(&m.w.layers[i], u, cond, cos, sin); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Final layer: LayerNorm (no affine) · (1 + scale), Linear.
	fs, err := m.finalScale(s, cond)
	if err != nil {
		return nil, wrap("final_layer", err)
	}
	// Only the image rows reach the output; the norm is row-wise.
	imgRows, err := u.Slice(1, lay.capRows, lay.capRows+nImg)
	if err != nil {
		return nil, wrap("final_layer", err)
	}
	if _, err := be.LayerNorm(imgRows, imgRows, nil, nil, FinalNormEps); err != nil {
		return nil, wrap("final_layer", err)
	}
	if _, err := be.Binary(imgRows, imgRows, fs, tensor.Mul); err != nil {
		return nil, wrap("final_layer", err)
	}
	fo, err := m.linear(s, nil, imgRows, &m.w.finalLin)
	if err != nil {
		return nil, err
	}
	trace("final_layer.out", fo)
	s.free(u)
	out, err = m.unpatchify(s, fo, b, h, w, gh, gw)
	if err != nil {
		return nil, wrap("unpatchify", err)
	}
	return out, nil
}

func shapeOf(t *tensor.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}

// upload makes a backend tensor [rows, cols] of host values.
func (m *Model) upload(s *scratch, v []float32, shape ...int) (*tensor.Tensor, error) {
	t, err := m.be.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, err
	}
	s.keep(t)
	if err := m.be.Write(t, v); err != nil {
		return nil, err
	}
	return t, nil
}

// linear applies l to x (Linear over the last dimension) into dst (nil: allocated F32). Every
// Linear weight of the model is read here: the one place a weight patch (LoRA) will apply.
func (m *Model) linear(s *scratch, dst, x *tensor.Tensor, l *linear) (*tensor.Tensor, error) {
	if dst == nil {
		shape := x.Shape()
		shape[len(shape)-1] = l.rows
		var err error
		if dst, err = m.be.Alloc(tensor.F32, shape...); err != nil {
			return nil, fmt.Errorf("zimage: %s: %w", l.name, err)
		}
		s.keep(dst)
	}
	if len(l.w) == 1 {
		if _, err := m.be.Linear(dst, x, l.w[0], l.b); err != nil {
			return nil, fmt.Errorf("zimage: %s: %w", l.name, err)
		}
		return dst, nil
	}
	off := 0
	for i, w := range l.w {
		n := w.Dim(0)
		part, err := dst.Slice(-1, off, off+n)
		if err != nil {
			return nil, fmt.Errorf("zimage: %s part %d: %w", l.name, i, err)
		}
		var bias *tensor.Tensor
		if l.b != nil {
			if bias, err = l.b.Slice(0, off, off+n); err != nil {
				return nil, fmt.Errorf("zimage: %s part %d: %w", l.name, i, err)
			}
		}
		if _, err := m.be.Linear(part, x, w, bias); err != nil {
			return nil, fmt.Errorf("zimage: %s part %d: %w", l.name, i, err)
		}
		off += n
	}
	return dst, nil
}

// norm applies the RMSNorm n to x into dst (may be x itself; nil: allocated F32). Every norm
// gain is read here.
func (m *Model) norm(s *scratch, dst, x *tensor.Tensor, n *norm, eps float64) (*tensor.Tensor, error) {
	if dst == nil {
		var err error
		if dst, err = m.be.Alloc(tensor.F32, x.Shape()...); err != nil {
			return nil, fmt.Errorf("zimage: %s: %w", n.name, err)
		}
		s.keep(dst)
	}
	if _, err := m.be.RMSNorm(dst, x, n.w, float32(eps)); err != nil {
		return nil, fmt.Errorf("zimage: %s: %w", n.name, err)
	}
	return dst, nil
}

// timestep computes the adaLN input c = mlp.2(silu(mlp.0(sinusoid((1 − σ)·time_scale)))),
// [B, 256]. The sinusoid follows torch's float32 arithmetic (comfy timestep_embedding).
func (m *Model) timestep(s *scratch, sig []float32) (*tensor.Tensor, error) {
	b := len(sig)
	const half = FrequencyEmbeddingSize / 2
	negLog := float32(-math.Log(MaxPeriod))
	var freqs [half]float32
	for k := range freqs {
		freqs[k] = float32(math.Exp(float64(negLog * float32(k) / half)))
	}
	emb := make([]float32, b*FrequencyEmbeddingSize)
	ts := float32(m.cfg.TimeScale)
	for i, sg := range sig {
		t := (1 - sg) * ts
		row := emb[i*FrequencyEmbeddingSize:]
		for k, f := range freqs {
			arg := float64(t * f)
			row[k] = float32(math.Cos(arg))
			row[half+k] = float32(math.Sin(arg))
		}
	}
	e, err := m.upload(s, emb, b, FrequencyEmbeddingSize)
	if err != nil {
		return nil, err
	}
	hid, err := m.linear(s, nil, e, &m.w.t0)
	if err != nil {
		return nil, err
	}
	s.free(e)
	if _, err := m.be.Unary(hid, hid, tensor.SiLU); err != nil {
		return nil, err
	}
	cond, err := m.linear(s, nil, hid, &m.w.t2)
	if err != nil {
		return nil, err
	}
	s.free(hid)
	return cond, nil
}

// finalScale is 1 + final_layer.adaLN_modulation(silu(c)) as [B, 1, D].
func (m *Model) finalScale(s *scratch, cond *tensor.Tensor) (*tensor.Tensor, error) {
	sc, err := m.be.Alloc(tensor.F32, cond.Shape()...)
	if err != nil {
		return nil, err
	}
	s.keep(sc)
	if _, err := m.be.Unary(sc, cond, tensor.SiLU); err != nil {
		return nil, err
	}
	fs, err := m.linear(s, nil, sc, &m.w.finalMod)
	if err != nil {
		return nil, err
	}
	s.free(sc)
	if _, err := m.be.Affine(fs, fs, 1, 1); err != nil {
		return nil, err
	}
	return fs.Unsqueeze(1)
}

// embedCaption returns the caption features [B, capRows, D]: cap_embedder on the context
// rows, then copies of cap_pad_token.
func (m *Model) embedCaption(s *scratch, cx *tensor.Tensor, b, capRows int) (*tensor.Tensor, error) {
	be := m.be
	l := cx.Dim(1)
	cn, err := m.norm(s, nil, cx, &m.w.capNorm, m.cfg.NormEps)
	if err != nil {
		return nil, err
	}
	ce, err := m.linear(s, nil, cn, &m.w.capLin)
	if err != nil {
		return nil, err
	}
	s.free(cn)
	if capRows == l && cx.Dim(0) == b {
		return ce, nil
	}
	out, err := be.Alloc(tensor.F32, b, capRows, m.cfg.Dim)
	if err != nil {
		return nil, err
	}
	s.keep(out)
	if err := m.fillRows(out, ce, m.w.capPad, l); err != nil {
		return nil, err
	}
	s.free(ce)
	return out, nil
}

// fillRows writes src [B or 1, n, D] into the first n rows of dst [B, R, D] and copies of the
// pad token [1, D] into the rest.
func (m *Model) fillRows(dst, src, pad *tensor.Tensor, n int) error {
	b, r, d := dst.Dim(0), dst.Dim(1), dst.Dim(2)
	head, err := dst.Slice(1, 0, n)
	if err != nil {
		return err
	}
	if src.Dim(0) != b {
		if src, err = src.Expand(b, n, d); err != nil {
			return err
		}
	}
	if _, err := m.be.Copy(head, src); err != nil {
		return err
	}
	if r == n {
		return nil
	}
	if pad == nil {
		return fmt.Errorf("%d padding rows needed but the model has no pad token", r-n)
	}
	tail, err := dst.Slice(1, n, r)
	if err != nil {
		return err
	}
	pe, err := pad.Expand(b, r-n, d)
	if err != nil {
		return err
	}
	_, err = m.be.Copy(tail, pe)
	return err
}

// embedImage patchifies the latent (circular padding to the patch size) and embeds it:
// [B, imgRows, D] with the x_pad_token rows after the image tokens.
func (m *Model) embedImage(s *scratch, x *tensor.Tensor, lay ropeLayout) (*tensor.Tensor, error) {
	be, c := m.be, m.cfg
	p := c.PatchSize
	b, ch := x.Dim(0), x.Dim(1)
	xp, err := m.padCircular(s, x, lay.gridH*p, lay.gridW*p)
	if err != nil {
		return nil, err
	}
	// [B, C, gh, p, gw, p] → [B, gh, gw, py, px, C]: feature index (py·p + px)·C + c.
	v, err := xp.Reshape(b, ch, lay.gridH, p, lay.gridW, p)
	if err != nil {
		return nil, err
	}
	if v, err = v.Permute(0, 2, 4, 3, 5, 1); err != nil {
		return nil, err
	}
	tok, err := be.Alloc(tensor.F32, b, lay.gridH, lay.gridW, p, p, ch)
	if err != nil {
		return nil, err
	}
	s.keep(tok)
	if _, err := be.Copy(tok, v); err != nil {
		return nil, err
	}
	if xp != x {
		s.free(xp)
	}
	nImg := lay.gridH * lay.gridW
	t2, err := tok.Reshape(b, nImg, c.patchFeatures())
	if err != nil {
		return nil, err
	}
	emb, err := m.linear(s, nil, t2, &m.w.xEmb)
	if err != nil {
		return nil, err
	}
	s.free(tok)
	if lay.imgRows == nImg {
		return emb, nil
	}
	out, err := be.Alloc(tensor.F32, b, lay.imgRows, c.Dim)
	if err != nil {
		return nil, err
	}
	s.keep(out)
	if err := m.fillRows(out, emb, m.w.xPad, nImg); err != nil {
		return nil, err
	}
	s.free(emb)
	return out, nil
}

// padCircular returns x padded at the bottom/right to [.., hp, wp] by wrapping around
// (torch.nn.functional.pad mode "circular"), or x itself when no padding is needed.
func (m *Model) padCircular(s *scratch, x *tensor.Tensor, hp, wp int) (*tensor.Tensor, error) {
	h, w := x.Dim(2), x.Dim(3)
	if h == hp && w == wp {
		return x, nil
	}
	out, err := m.be.Alloc(tensor.F32, x.Dim(0), x.Dim(1), hp, wp)
	if err != nil {
		return nil, err
	}
	s.keep(out)
	// Source row/column ranges of each destination block: [0,h) then wrap [0, hp-h).
	for _, rb := range [][2]int{{0, h}, {h, hp}} {
		for _, cb := range [][2]int{{0, w}, {w, wp}} {
			if rb[0] == rb[1] || cb[0] == cb[1] {
				continue
			}
			dst, err := out.Slice(2, rb[0], rb[1])
			if err == nil {
				dst, err = dst.Slice(3, cb[0], cb[1])
			}
			if err != nil {
				return nil, err
			}
			src, err := x.Slice(2, rb[0]%h, rb[0]%h+rb[1]-rb[0])
			if err == nil {
				src, err = src.Slice(3, cb[0]%w, cb[0]%w+cb[1]-cb[0])
			}
			if err != nil {
				return nil, err
			}
			if _, err := m.be.Copy(dst, src); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// unpatchify turns the image rows of the final layer [B, gh·gw, p·p·C] into the negated
// velocity [B, C, H, W] (cropping the circular padding).
func (m *Model) unpatchify(s *scratch, fo *tensor.Tensor, b, h, w, gh, gw int) (*tensor.Tensor, error) {
	be, c := m.be, m.cfg
	p, ch := c.PatchSize, c.InChannels
	v, err := fo.Reshape(b, gh, gw, p, p, ch)
	if err != nil {
		return nil, err
	}
	// [B, gh, gw, py, px, C] → [B, C, gh, py, gw, px]
	if v, err = v.Permute(0, 5, 1, 3, 2, 4); err != nil {
		return nil, err
	}
	full, err := be.Alloc(tensor.F32, b, ch, gh*p, gw*p)
	if err != nil {
		return nil, err
	}
	s.keep(full)
	f6, err := full.Reshape(b, ch, gh, p, gw, p)
	if err != nil {
		return nil, err
	}
	if _, err := be.Copy(f6, v); err != nil {
		return nil, err
	}
	s.free(fo)
	out := full
	if gh*p != h || gw*p != w {
		crop, err := full.Slice(2, 0, h)
		if err == nil {
			crop, err = crop.Slice(3, 0, w)
		}
		if err != nil {
			return nil, err
		}
		if out, err = be.Alloc(tensor.F32, b, ch, h, w); err != nil {
			return nil, err
		}
		s.keep(out)
		if _, err := be.Copy(out, crop); err != nil {
			return nil, err
		}
		s.free(full)
	}
	if _, err := be.Unary(out, out, tensor.Neg); err != nil {
		return nil, err
	}
	return out, nil
}
