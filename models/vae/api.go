package vae

import (
	"context"
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// Latent is a batch of VAE-space latents on the host: float32 [B, C, H, W], row-major. It is
// what ComfyUI's LATENT "samples" holds (see the package documentation for where the latent
// format's scale and shift are applied: not here).
type Latent struct {
	B, C, H, W int
	Data       []float32
}

// Image is a batch of images on the host in ComfyUI's IMAGE layout: float32 [B, H, W, C],
// row-major, values nominally in [0, 1].
type Image struct {
	B, H, W, C int
	Pix        []float32
}

func (l *Latent) check(c int) error {
	switch {
	case l == nil:
		return fmt.Errorf("vae: no latent")
	case l.B <= 0 || l.H <= 0 || l.W <= 0:
		return fmt.Errorf("vae: latent %dx%dx%dx%d is empty", l.B, l.C, l.H, l.W)
	case l.C != c:
		return fmt.Errorf("vae: latent has %d channels, this VAE takes %d", l.C, c)
	case len(l.Data) != l.B*l.C*l.H*l.W:
		return fmt.Errorf("vae: latent [%d %d %d %d] holds %d values, want %d", l.B, l.C, l.H, l.W, len(l.Data), l.B*l.C*l.H*l.W)
	}
	return nil
}

func (im *Image) check(c, f int) error {
	switch {
	case im == nil:
		return fmt.Errorf("vae: no image")
	case im.B <= 0 || im.H <= 0 || im.W <= 0 || im.C <= 0:
		return fmt.Errorf("vae: image %dx%dx%dx%d is empty", im.B, im.H, im.W, im.C)
	case len(im.Pix) != im.B*im.H*im.W*im.C:
		return fmt.Errorf("vae: image [%d %d %d %d] holds %d values, want %d", im.B, im.H, im.W, im.C, len(im.Pix), im.B*im.H*im.W*im.C)
	case im.C < c:
		return fmt.Errorf("vae: image has %d channels, the encoder takes %d", im.C, c)
	case im.H < f || im.W < f:
		return fmt.Errorf("vae: image %dx%d is smaller than one latent cell (%d px)", im.W, im.H, f)
	}
	return nil
}

// Plan says how Decode or Encode will run a batch under the memory budget.
type Plan struct {
	// Tiled is true when one sample does not fit the budget: the tiled algorithm runs with Tile.
	Tiled bool
	Tile  TileOptions
	// Chunk is the number of samples a plain pass runs at once.
	Chunk int
	// PeakBytes is the estimated peak memory of the chosen way (activations and host buffers).
	PeakBytes int64
}

// PlanDecode decides how Decode runs a b×h×w latent under the VAE's memory budget.
func (v *VAE) PlanDecode(b, h, w int) Plan {
	per := v.DecodePeakBytes(h, w)
	return v.plan(b, per, DecodeTileDefaults(), 8, 4, func(t TileOptions) int64 { return v.DecodeTiledPeakBytes(h, w, t) })
}

// PlanEncode decides how Encode runs a b×H×W image (pixels, after cropping to multiples of
// Downscale) under the VAE's memory budget.
func (v *VAE) PlanEncode(b, h, w int) Plan {
	per := v.EncodePeakBytes(h, w)
	return v.plan(b, per, EncodeTileDefaults(), 64, 8, func(t TileOptions) int64 { return v.EncodeTiledPeakBytes(h, w, t) })
}

func (v *VAE) plan(b int, per int64, tile TileOptions, minTile, overlapDiv int, tiled func(TileOptions) int64) Plan {
	if v.budget <= 0 || per <= v.budget {
		chunk := b
		if v.budget > 0 {
			chunk = int(min(int64(b), max(1, v.budget/max(per, 1))))
		}
		return Plan{Chunk: chunk, PeakBytes: per * int64(chunk)}
	}
	peak := tiled(tile)
	for peak > v.budget && tile.TileX/2 >= minTile {
		tile.TileX /= 2
		tile.TileY /= 2
		tile.Overlap = tile.TileX / overlapDiv
		peak = tiled(tile)
	}
	return Plan{Tiled: true, Tile: tile, Chunk: 1, PeakBytes: peak}
}

// Decode turns a batch of VAE-space latents into images: ComfyUI's VAE.decode, i.e. the decoder
// followed by process_output, clamp((y+1)/2, 0, 1), moved to [B, H, W, C]. Under a memory
// budget (Options.MemoryBudget) the batch is split, or decoded with DecodeTiled using the
// tiles of PlanDecode when one sample does not fit.
func (v *VAE) Decode(ctx context.Context, lat *Latent) (*Image, error) {
	if err := v.decodeReady(lat); err != nil {
		return nil, err
	}
	p := v.PlanDecode(lat.B, lat.H, lat.W)
	if p.Tiled {
		return v.DecodeTiled(ctx, lat, p.Tile)
	}
	f, oc := v.Downscale(), v.cfg.OutCh
	img := &Image{B: lat.B, H: lat.H * f, W: lat.W * f, C: oc}
	img.Pix = make([]float32, img.B*img.H*img.W*oc)
	per := lat.C * lat.H * lat.W
	var raw []float32
	for b0 := 0; b0 < lat.B; b0 += p.Chunk {
		n := min(p.Chunk, lat.B-b0)
		out, err := v.decodeHost(ctx, lat.Data[b0*per:(b0+n)*per], n, lat.H, lat.W, raw)
		if err != nil {
			return nil, err
		}
		raw = out
		processOutput(img.Pix[b0*img.H*img.W*oc:], out, n, oc, img.H, img.W)
	}
	return img, nil
}

func (v *VAE) decodeReady(lat *Latent) error {
	if v.dec == nil {
		return fmt.Errorf("vae: %s has no decoder", v.file)
	}
	return lat.check(v.cfg.ZChannels)
}

// decodeHost decodes n latents [n, C, h, w] on the host into raw decoder output
// [n, out_ch, h·f, w·f] (reusing buf when large enough).
func (v *VAE) decodeHost(ctx context.Context, data []float32, n, h, w int, buf []float32) ([]float32, error) {
	t, err := tensor.FromFloat32(data, n, v.cfg.ZChannels, h, w)
	if err != nil {
		return nil, fmt.Errorf("vae: decode: %w", err)
	}
	z, err := v.be.ToDevice(t)
	if err != nil {
		return nil, fmt.Errorf("vae: decode: %w", err)
	}
	raw, err := v.DecodeRaw(ctx, z)
	v.be.Free(z)
	if err != nil {
		return nil, err
	}
	defer v.be.Free(raw)
	if cap(buf) < raw.NumElements() {
		buf = make([]float32, raw.NumElements())
	}
	buf = buf[:raw.NumElements()]
	if err := v.be.Read(buf, raw); err != nil {
		return nil, fmt.Errorf("vae: decode: %w", err)
	}
	return buf, nil
}

// processOutput writes clamp((raw+1)/2, 0, 1) of raw [n, c, h, w] into dst [n, h, w, c]
// (float32, NaN kept, as torch's add_/div_/clamp_).
func processOutput(dst, raw []float32, n, c, h, w int) {
	hw := h * w
	for b := range n {
		src := raw[b*c*hw:]
		out := dst[b*hw*c:]
		for ch := range c {
			plane := src[ch*hw : (ch+1)*hw]
			for p, y := range plane {
				y = (y + 1) / 2
				if y < 0 {
					y = 0
				} else if y > 1 {
					y = 1
				}
				out[p*c+ch] = y
			}
		}
	}
}

// DecodeTiled decodes with ComfyUI's tiled algorithm (VAE.decode_tiled_): the average of three
// passes of comfy.utils.tiled_scale over the latent with tiles (TileX/2 × TileY·2),
// (TileX·2 × TileY/2) and (TileX × TileY) latent cells, overlapping by t.Overlap cells and blended
// with feathered masks, then process_output. Peak memory is bounded by the tile size (see
// DecodeTiledPeakBytes). Cancellation is checked between tiles and blocks.
func (v *VAE) DecodeTiled(ctx context.Context, lat *Latent, t TileOptions) (*Image, error) {
	if err := v.decodeReady(lat); err != nil {
		return nil, err
	}
	f, oc := v.Downscale(), v.cfg.OutCh
	var buf []float32
	fn := func(ctx context.Context, in []float32, h, w int) ([]float32, int, int, error) {
		out, err := v.decodeHost(ctx, in, 1, h, w, buf)
		if err != nil {
			return nil, 0, 0, err
		}
		buf = out // tiledPass is done with a tile's output before it asks for the next one
		return out, h * f, w * f, nil
	}
	raw, oh, ow, err := runTiled(ctx, lat.Data, lat.B, lat.C, lat.H, lat.W, t, decodePasses(t), float64(f), oc, fn)
	if err != nil {
		return nil, err
	}
	img := &Image{B: lat.B, H: oh, W: ow, C: oc, Pix: make([]float32, lat.B*oh*ow*oc)}
	processOutput(img.Pix, raw, lat.B, oc, oh, ow)
	return img, nil
}

// cropWindow is vae_encode_crop_pixels: each spatial size is cut down to a multiple of f,
// keeping the centre (offset (n mod f)/2).
func cropWindow(h, w, f int) (y0, x0, ch, cw int) {
	ch, cw = (h/f)*f, (w/f)*f
	return (h % f) / 2, (w % f) / 2, ch, cw
}

// pixelsNCHW returns the cropped, channel-trimmed samples b0..b0+n of im as [n, c, ch, cw]
// planes, mapped with process_input (2x - 1) when signed.
func pixelsNCHW(im *Image, b0, n, c, y0, x0, ch, cw int, signed bool) []float32 {
	out := make([]float32, n*c*ch*cw)
	for b := range n {
		for k := range c {
			plane := out[(b*c+k)*ch*cw:]
			for y := range ch {
				row := im.Pix[((b0+b)*im.H+y0+y)*im.W*im.C:]
				for x := range cw {
					p := row[(x0+x)*im.C+k]
					if signed {
						p = float32(p*2) - 1
					}
					plane[y*cw+x] = p
				}
			}
		}
	}
	return out
}

// Encode turns images into VAE-space latents: ComfyUI's VAE.encode, i.e. the pixels cropped to
// multiples of Downscale (centred), channels beyond in_channels dropped, mapped to 2x - 1, the
// encoder, and the posterior mode (the mean: the first z_channels moments). Under a memory budget
// the batch is split, or encoded with EncodeTiled using the tiles of PlanEncode.
func (v *VAE) Encode(ctx context.Context, im *Image) (*Latent, error) {
	if err := v.encodeReady(im); err != nil {
		return nil, err
	}
	f, c := v.Downscale(), v.cfg.InChannels
	y0, x0, ch, cw := cropWindow(im.H, im.W, f)
	p := v.PlanEncode(im.B, ch, cw)
	if p.Tiled {
		return v.EncodeTiled(ctx, im, p.Tile)
	}
	lat := &Latent{B: im.B, C: v.cfg.ZChannels, H: ch / f, W: cw / f}
	lat.Data = make([]float32, lat.B*lat.C*lat.H*lat.W)
	per := lat.C * lat.H * lat.W
	for b0 := 0; b0 < im.B; b0 += p.Chunk {
		n := min(p.Chunk, im.B-b0)
		px := pixelsNCHW(im, b0, n, c, y0, x0, ch, cw, true)
		if err := v.encodeHost(ctx, px, n, ch, cw, lat.Data[b0*per:(b0+n)*per]); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

func (v *VAE) encodeReady(im *Image) error {
	if v.enc == nil {
		return fmt.Errorf("vae: %s has no encoder", v.file)
	}
	if !v.cfg.DoubleZ {
		return fmt.Errorf("vae: %s: encoding needs double_z (mean and log-variance moments)", v.file)
	}
	return im.check(v.cfg.InChannels, v.Downscale())
}

// encodeHost encodes n signed pixel planes [n, c, h, w] into dst [n, z, h/f, w/f] (the mean).
func (v *VAE) encodeHost(ctx context.Context, px []float32, n, h, w int, dst []float32) error {
	t, err := tensor.FromFloat32(px, n, v.cfg.InChannels, h, w)
	if err != nil {
		return fmt.Errorf("vae: encode: %w", err)
	}
	x, err := v.be.ToDevice(t)
	if err != nil {
		return fmt.Errorf("vae: encode: %w", err)
	}
	m, err := v.EncodeMoments(ctx, x)
	v.be.Free(x)
	if err != nil {
		return err
	}
	defer v.be.Free(m)
	mean, err := m.Slice(1, 0, v.cfg.ZChannels)
	if err != nil {
		return fmt.Errorf("vae: encode: %w", err)
	}
	if mean.NumElements() != len(dst) {
		return fmt.Errorf("vae: encode: mean %v does not fill %d values", mean.Shape(), len(dst))
	}
	if err := v.be.Read(dst, mean); err != nil {
		return fmt.Errorf("vae: encode: %w", err)
	}
	return nil
}

// EncodeTiled encodes with ComfyUI's tiled algorithm (VAE.encode_tiled_): the average of three
// passes with tiles (TileX × TileY), (TileX·2 × TileY/2) and (TileX/2 × TileY·2) pixels,
// overlapping by t.Overlap pixels, blended with feathered masks (feather Overlap/f latent cells).
// The image is cropped to multiples of Downscale first, as Encode does.
func (v *VAE) EncodeTiled(ctx context.Context, im *Image, t TileOptions) (*Latent, error) {
	if err := v.encodeReady(im); err != nil {
		return nil, err
	}
	f, c, z := v.Downscale(), v.cfg.InChannels, v.cfg.ZChannels
	y0, x0, ch, cw := cropWindow(im.H, im.W, f)
	px := pixelsNCHW(im, 0, im.B, c, y0, x0, ch, cw, false)
	fn := func(ctx context.Context, in []float32, h, w int) ([]float32, int, int, error) {
		if h < f || w < f {
			return nil, 0, 0, fmt.Errorf("vae: tiled encode: a %dx%d tile is smaller than one latent cell", w, h)
		}
		signed := make([]float32, len(in))
		for i, p := range in {
			signed[i] = float32(p*2) - 1
		}
		oh, ow := h/f, w/f
		out := make([]float32, z*oh*ow)
		if err := v.encodeHost(ctx, signed, 1, h, w, out); err != nil {
			return nil, 0, 0, err
		}
		return out, oh, ow, nil
	}
	data, oh, ow, err := runTiled(ctx, px, im.B, c, ch, cw, t, encodePasses(t), 1/float64(f), z, fn)
	if err != nil {
		return nil, err
	}
	return &Latent{B: im.B, C: z, H: oh, W: ow, Data: data}, nil
}
