package upscale

import (
	"context"
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// Planar is one image as float32 planes [C, H, W] on the host.
type Planar struct {
	C, H, W int
	Pix     []float32
}

func (p Planar) check() error {
	if p.C < 1 || p.H < 1 || p.W < 1 || len(p.Pix) != p.C*p.H*p.W {
		return fmt.Errorf("upscale: image %dx%dx%d with %d values", p.C, p.H, p.W, len(p.Pix))
	}
	return nil
}

// padRightBottom pads p to h×w on the right and bottom: reflect (mirror without repeating the
// edge) as far as torch allows (size-1), then replicate, as spandrel's pad_tensor.
func padRightBottom(p Planar, h, w int) Planar {
	if h == p.H && w == p.W {
		return p
	}
	// idx maps an output index to its source along a dimension of size n padded by pad.
	idx := func(i, n, pad int) int {
		if i < n {
			return i
		}
		rw := min(pad, n-1)
		if i < n+rw {
			return 2*(n-1) - i
		}
		return n - 1 - rw // replicate the last reflected row
	}
	out := Planar{C: p.C, H: h, W: w, Pix: make([]float32, p.C*h*w)}
	for c := range p.C {
		for y := range h {
			sy := idx(y, p.H, h-p.H)
			for x := range w {
				out.Pix[(c*h+y)*w+x] = p.Pix[(c*p.H+sy)*p.W+idx(x, p.W, w-p.W)]
			}
		}
	}
	return out
}

// reflectOnly pads to a multiple of s with torch's reflect mode (pad_to_multiple); the pad is
// at most s-1 < the size for the sizes the model sees after the descriptor's padding.
func reflectOnly(p Planar, s int) (Planar, error) {
	ph, pw := (s-p.H%s)%s, (s-p.W%s)%s
	if ph == 0 && pw == 0 {
		return p, nil
	}
	if ph >= p.H || pw >= p.W {
		return p, fmt.Errorf("upscale: a %dx%d input is too small to reflect-pad to a multiple of %d", p.W, p.H, s)
	}
	return padRightBottom(p, p.H+ph, p.W+pw), nil
}

// unshuffle is torch.pixel_unshuffle: out[c·s²+i·s+j, y, x] = in[c, y·s+i, x·s+j].
func unshuffle(p Planar, s int) Planar {
	h, w := p.H/s, p.W/s
	out := Planar{C: p.C * s * s, H: h, W: w, Pix: make([]float32, p.C*s*s*h*w)}
	for c := range p.C {
		for i := range s {
			for j := range s {
				oc := (c*s+i)*s + j
				for y := range h {
					row := p.Pix[(c*p.H+y*s+i)*p.W:]
					dst := out.Pix[(oc*h+y)*w:]
					for x := range w {
						dst[x] = row[x*s+j]
					}
				}
			}
		}
	}
	return out
}

// crop keeps the top-left h×w of every plane.
func crop(p Planar, h, w int) Planar {
	if h == p.H && w == p.W {
		return p
	}
	out := Planar{C: p.C, H: h, W: w, Pix: make([]float32, p.C*h*w)}
	for c := range p.C {
		for y := range h {
			copy(out.Pix[(c*h+y)*w:(c*h+y+1)*w], p.Pix[(c*p.H+y)*p.W:])
		}
	}
	return out
}

// Forward runs the network on one image of InChannels planes and returns its raw output
// (OutChannels planes, H·Scale × W·Scale, not clamped), as spandrel's RRDBNet.forward: an
// unshuffling model first reflect-pads the input to a multiple of the factor and crops the
// output back.
func (m *Model) Forward(ctx context.Context, in Planar) (Planar, error) {
	if err := in.check(); err != nil {
		return Planar{}, err
	}
	if in.C != m.cfg.InChannels {
		return Planar{}, fmt.Errorf("upscale: the image has %d channels but the model takes %d", in.C, m.cfg.InChannels)
	}
	x := in
	if s := m.cfg.Shuffle; s > 1 {
		var err error
		if x, err = reflectOnly(x, s); err != nil {
			return Planar{}, err
		}
		x = unshuffle(x, s)
	}
	out, err := m.net(ctx, x)
	if err != nil {
		return Planar{}, err
	}
	return crop(out, in.H*m.cfg.Scale, in.W*m.cfg.Scale), nil
}

// sizeRequirement returns spandrel's size requirements for ESRGAN: at least 2 pixels, and a
// multiple of 4 for unshuffling models.
func (m *Model) sizeRequirement() (minimum, multiple int) {
	if m.cfg.Shuffle > 1 {
		return 4, 4 // spandrel rounds the minimum of 2 up to the multiple
	}
	return 2, 1
}

// Call is spandrel's ImageModelDescriptor call, what ComfyUI's upscale node runs per tile: pad
// the image (right and bottom, reflect then replicate) to the size requirements, run Forward,
// clamp to [0, 1] and crop the padding off.
func (m *Model) Call(ctx context.Context, in Planar) (Planar, error) {
	if err := in.check(); err != nil {
		return Planar{}, err
	}
	minimum, multiple := m.sizeRequirement()
	ceil := func(v int) int { return (max(v, minimum) + multiple - 1) / multiple * multiple }
	x := padRightBottom(in, ceil(in.H), ceil(in.W))
	out, err := m.Forward(ctx, x)
	if err != nil {
		return Planar{}, err
	}
	for i, v := range out.Pix {
		out.Pix[i] = clamp01(v)
	}
	return crop(out, in.H*m.cfg.Scale, in.W*m.cfg.Scale), nil
}

func clamp01(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v // NaN stays NaN, as torch.clamp
}

// runner holds the live activations of one forward pass and frees them on exit.
type runner struct {
	be   tensor.Backend
	live []*tensor.Tensor
}

func (r *runner) keep(t *tensor.Tensor, err error) (*tensor.Tensor, error) {
	if err == nil {
		r.live = append(r.live, t)
	}
	return t, err
}

func (r *runner) release(t *tensor.Tensor) {
	for i, l := range r.live {
		if l == t {
			r.be.Free(t)
			r.live = append(r.live[:i], r.live[i+1:]...)
			return
		}
	}
}

func (r *runner) freeAll() {
	for _, t := range r.live {
		r.be.Free(t)
	}
	r.live = nil
}

var pad1 = tensor.Pad(1, 1)

// leaky applies LeakyReLU(0.2) in place as max(x, 0.2·x), which equals it for every x (the
// tensor package has no leaky ReLU op).
func (r *runner) leaky(x *tensor.Tensor) error {
	t, err := r.be.Affine(nil, x, 0.2, 0)
	if err != nil {
		return err
	}
	_, err = r.be.Binary(x, x, t, tensor.Maximum)
	r.be.Free(t)
	return err
}

// net runs RRDBNet on the (already unshuffled) input planes.
func (m *Model) net(ctx context.Context, in Planar) (out Planar, err error) {
	if in.C != m.cfg.NetInChannels {
		return Planar{}, fmt.Errorf("upscale: %d input planes, the network takes %d", in.C, m.cfg.NetInChannels)
	}
	r := &runner{be: m.be}
	defer r.freeAll()
	nf, gc, h, w := m.cfg.Features, m.cfg.Growth, in.H, in.W
	hostIn, err := tensor.FromFloat32(in.Pix, 1, in.C, h, w)
	if err != nil {
		return Planar{}, err
	}
	x, err := r.keep(m.be.ToDevice(hostIn))
	if err != nil {
		return Planar{}, fmt.Errorf("upscale: upload: %w", err)
	}
	fea, err := r.keep(m.be.Conv2D(nil, x, m.first.w, m.first.b, pad1))
	if err != nil {
		return Planar{}, fmt.Errorf("upscale: first conv: %w", err)
	}
	r.release(x)
	// buf holds a dense block's running concatenation [t, x1, x2, x3, x4]; its first nf
	// channels are the trunk activation t.
	buf, err := r.keep(m.be.Alloc(tensor.F32, 1, nf+4*gc, h, w))
	if err != nil {
		return Planar{}, fmt.Errorf("upscale: %w", err)
	}
	t, err := buf.Slice(1, 0, nf)
	if err != nil {
		return Planar{}, err
	}
	if _, err := m.be.Copy(t, fea); err != nil {
		return Planar{}, err
	}
	var rin *tensor.Tensor
	if len(m.dense) > 0 {
		if rin, err = r.keep(m.be.Alloc(tensor.F32, 1, nf, h, w)); err != nil {
			return Planar{}, err
		}
	}
	for b := range m.dense {
		if err := ctx.Err(); err != nil {
			return Planar{}, err
		}
		if _, err := m.be.Copy(rin, t); err != nil {
			return Planar{}, err
		}
		for rdb := range 3 {
			if err := m.dense5(r, buf, t, &m.dense[b][rdb]); err != nil {
				return Planar{}, fmt.Errorf("upscale: block %d RDB%d: %w", b, rdb+1, err)
			}
		}
		// RRDB: out·0.2 + x.
		if _, err := m.be.Affine(t, t, 0.2, 0); err != nil {
			return Planar{}, err
		}
		if _, err := m.be.Binary(t, t, rin, tensor.Add); err != nil {
			return Planar{}, err
		}
	}
	// Trunk conv and the long skip: fea + conv_body(t).
	body, err := r.keep(m.be.Conv2D(nil, t, m.trunk.w, m.trunk.b, pad1))
	if err != nil {
		return Planar{}, fmt.Errorf("upscale: trunk conv: %w", err)
	}
	if _, err := m.be.Binary(fea, fea, body, tensor.Add); err != nil {
		return Planar{}, err
	}
	r.release(body)
	r.release(rin)
	r.release(buf)
	cur := fea
	for i, u := range m.ups {
		if err := ctx.Err(); err != nil {
			return Planar{}, err
		}
		// torch's nearest ×2 picks the same source pixels as nearest-exact.
		up, err := r.keep(m.be.Resize(nil, cur, 2*cur.Dim(2), 2*cur.Dim(3), tensor.ResizeNearestExact))
		if err != nil {
			return Planar{}, fmt.Errorf("upscale: upsample %d: %w", i+1, err)
		}
		r.release(cur)
		next, err := r.keep(m.be.Conv2D(nil, up, u.w, u.b, pad1))
		if err != nil {
			return Planar{}, fmt.Errorf("upscale: upsample conv %d: %w", i+1, err)
		}
		r.release(up)
		if err := r.leaky(next); err != nil {
			return Planar{}, err
		}
		cur = next
	}
	hr, err := r.keep(m.be.Conv2D(nil, cur, m.hr.w, m.hr.b, pad1))
	if err != nil {
		return Planar{}, fmt.Errorf("upscale: hr conv: %w", err)
	}
	r.release(cur)
	if err := r.leaky(hr); err != nil {
		return Planar{}, err
	}
	last, err := r.keep(m.be.Conv2D(nil, hr, m.last.w, m.last.b, pad1))
	if err != nil {
		return Planar{}, fmt.Errorf("upscale: last conv: %w", err)
	}
	r.release(hr)
	oh, ow := last.Dim(2), last.Dim(3)
	out = Planar{C: m.cfg.OutChannels, H: oh, W: ow, Pix: make([]float32, m.cfg.OutChannels*oh*ow)}
	if err := m.be.Read(out.Pix, last); err != nil {
		return Planar{}, fmt.Errorf("upscale: read back: %w", err)
	}
	return out, nil
}

// dense5 runs one ResidualDenseBlock_5C on buf's first nf channels (t), writing each growth
// conv's output into buf after its inputs, and leaves x5·0.2 + t in t.
func (m *Model) dense5(r *runner, buf, t *tensor.Tensor, convs *[5]conv) error {
	nf, gc := m.cfg.Features, m.cfg.Growth
	for c := range 4 {
		in, err := buf.Slice(1, 0, nf+c*gc)
		if err != nil {
			return err
		}
		dst, err := buf.Slice(1, nf+c*gc, nf+(c+1)*gc)
		if err != nil {
			return err
		}
		if _, err := m.be.Conv2D(dst, in, convs[c].w, convs[c].b, pad1); err != nil {
			return fmt.Errorf("conv%d: %w", c+1, err)
		}
		if err := r.leaky(dst); err != nil {
			return err
		}
	}
	x5, err := r.keep(m.be.Conv2D(nil, buf, convs[4].w, convs[4].b, pad1))
	if err != nil {
		return fmt.Errorf("conv5: %w", err)
	}
	defer r.release(x5)
	if _, err := m.be.Affine(x5, x5, 0.2, 0); err != nil {
		return err
	}
	_, err = m.be.Binary(t, x5, t, tensor.Add)
	return err
}
