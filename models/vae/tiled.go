package vae

import (
	"context"
	"fmt"
	"math"
)

// TileOptions configures DecodeTiled and EncodeTiled, as comfy.sd.VAE.decode_tiled /
// encode_tiled take them: TileX (width) and TileY (height) and Overlap are in latent cells for
// decoding and in pixels for encoding. Each call runs three passes with tiles
// (TileX/2 × TileY·2), (TileX·2 × TileY/2) and (TileX × TileY) (integer division) and averages
// them.
type TileOptions struct {
	TileX, TileY, Overlap int
	// Progress, when not nil, is called after every tile with the tiles done and the total
	// over the three passes and the batch (ComfyUI's progress bar steps).
	Progress func(done, total int)
}

// DecodeTileDefaults are the tiles of comfy.sd.VAE.decode_tiled_ and of the automatic fallback
// of a plain decode: 64x64 latent cells, overlap 16.
func DecodeTileDefaults() TileOptions { return TileOptions{TileX: 64, TileY: 64, Overlap: 16} }

// EncodeTileDefaults are the tiles of comfy.sd.VAE.encode_tiled_ and of the automatic fallback
// of a plain encode: 512x512 pixels, overlap 64.
func EncodeTileDefaults() TileOptions { return TileOptions{TileX: 512, TileY: 512, Overlap: 64} }

// DecodeTilesFromPixels converts the VAEDecodeTiled node's pixel inputs to latent tile options
// the way that node does: overlap = tile_size/4 when tile_size < 4·overlap, then both divided by
// the downscale factor f (8).
func DecodeTilesFromPixels(tileSize, overlap, f int) TileOptions {
	if tileSize < overlap*4 {
		overlap = tileSize / 4
	}
	return TileOptions{TileX: tileSize / f, TileY: tileSize / f, Overlap: overlap / f}
}

// pass is one tiled_scale call: tile sizes along the height and the width.
type pass struct{ tileY, tileX int }

// decodePasses lists the three passes of decode_tiled_ in the order ComfyUI sums them.
func decodePasses(t TileOptions) []pass {
	return []pass{{t.TileY * 2, t.TileX / 2}, {t.TileY / 2, t.TileX * 2}, {t.TileY, t.TileX}}
}

// encodePasses lists the three passes of encode_tiled_ in the order ComfyUI sums them.
func encodePasses(t TileOptions) []pass {
	return []pass{{t.TileY, t.TileX}, {t.TileY / 2, t.TileX * 2}, {t.TileY * 2, t.TileX / 2}}
}

// check rejects tile options that ComfyUI would crash on or turn into NaN: a zero tile, a
// negative overlap, or a tile not larger than the overlap along an axis that needs tiling.
func (t TileOptions) check(passes []pass, h, w int) error {
	if t.Overlap < 0 {
		return fmt.Errorf("vae: tiled: negative overlap %d", t.Overlap)
	}
	for _, p := range passes {
		if p.tileX <= 0 || p.tileY <= 0 {
			return fmt.Errorf("vae: tiled: tile %dx%d (from %dx%d) is empty", p.tileX, p.tileY, t.TileX, t.TileY)
		}
		if h <= p.tileY && w <= p.tileX {
			continue
		}
		if (h > p.tileY && p.tileY <= t.Overlap) || (w > p.tileX && p.tileX <= t.Overlap) {
			return fmt.Errorf("vae: tiled: tile %dx%d (from %dx%d) must be larger than the overlap %d", p.tileX, p.tileY, t.TileX, t.TileY, t.Overlap)
		}
	}
	return nil
}

// tilePositions returns the tile origins and lengths along one axis of size n, as
// tiled_scale_multidim computes them: range(0, n - overlap, tile - overlap) when n > tile (else
// [0]), each origin clamped to [0, n - overlap] and the length min(tile, n - origin).
func tilePositions(n, tile, overlap int) (pos, length []int) {
	if n <= tile {
		return []int{0}, []int{n}
	}
	step := tile - overlap // > 0: checked by TileOptions.check
	for it := 0; it < n-overlap; it += step {
		p := max(0, min(n-overlap, it))
		pos = append(pos, p)
		length = append(length, min(tile, n-p))
	}
	return pos, length
}

// tiledSteps counts the tiles of one pass over an h×w input (get_tiled_scale_steps).
func tiledSteps(h, w int, p pass, overlap int) int {
	py, _ := tilePositions(h, p.tileY, overlap)
	px, _ := tilePositions(w, p.tileX, overlap)
	return len(py) * len(px)
}

// roundEven is Python's round() of a float to an int (ties to even).
func roundEven(x float64) int { return int(math.RoundToEven(x)) }

// tileFunc runs the model on one tile [C, h, w] and returns its output [outC, oh, ow].
type tileFunc func(ctx context.Context, in []float32, h, w int) (out []float32, oh, ow int, err error)

// tiledPass is comfy.utils.tiled_scale_multidim for one sample s [c, h, w] and two spatial
// dims: it returns the blended output [outC, round(h·scale), round(w·scale)]. Each tile output
// is weighted by a feather mask whose first and last round(overlap·scale) rows and columns ramp
// as (t+1)/feather, accumulated, and divided by the accumulated weights. All arithmetic is
// float32 in torch's order.
func tiledPass(ctx context.Context, s []float32, c, h, w int, p pass, overlap int, scale float64, outC int, fn tileFunc, tick func()) ([]float32, int, int, error) {
	oh, ow := roundEven(float64(h)*scale), roundEven(float64(w)*scale)
	if h <= p.tileY && w <= p.tileX {
		out, gh, gw, err := fn(ctx, s, h, w)
		if err != nil {
			return nil, 0, 0, err
		}
		if gh != oh || gw != ow {
			return nil, 0, 0, fmt.Errorf("vae: tiled: a %dx%d input gave %dx%d, want %dx%d", w, h, gw, gh, ow, oh)
		}
		tick()
		return out, oh, ow, nil
	}
	out := make([]float32, outC*oh*ow)
	div := make([]float32, oh*ow)
	posY, lenY := tilePositions(h, p.tileY, overlap)
	posX, lenX := tilePositions(w, p.tileX, overlap)
	feather := roundEven(float64(overlap) * scale)
	var in []float32
	for iy := range posY {
		for ix := range posX {
			if err := ctx.Err(); err != nil {
				return nil, 0, 0, err
			}
			y0, x0, th, tw := posY[iy], posX[ix], lenY[iy], lenX[ix]
			in = cropPlanes(in, s, c, h, w, y0, x0, th, tw)
			ps, ph, pw, err := fn(ctx, in, th, tw)
			if err != nil {
				return nil, 0, 0, err
			}
			mask := featherMask(ph, pw, feather)
			uy, ux := roundEven(float64(y0)*scale), roundEven(float64(x0)*scale)
			ly, lx := min(ph, oh-uy), min(pw, ow-ux)
			for ch := range outC {
				src := ps[ch*ph*pw:]
				dst := out[ch*oh*ow:]
				for y := 0; y < ly; y++ {
					srow, mrow := src[y*pw:y*pw+lx], mask[y*pw:y*pw+lx]
					drow := dst[(uy+y)*ow+ux : (uy+y)*ow+ux+lx]
					for x := range drow {
						drow[x] = drow[x] + float32(srow[x]*mrow[x])
					}
				}
			}
			for y := 0; y < ly; y++ {
				mrow := mask[y*pw : y*pw+lx]
				drow := div[(uy+y)*ow+ux : (uy+y)*ow+ux+lx]
				for x := range drow {
					drow[x] += mrow[x]
				}
			}
			tick()
		}
	}
	for ch := range outC {
		o := out[ch*oh*ow : (ch+1)*oh*ow]
		for i := range o {
			o[i] /= div[i]
		}
	}
	return out, oh, ow, nil
}

// featherMask builds the [h, w] blending mask of one tile output exactly as tiled_scale_multidim
// does: ones, then along the height and then the width, rows t and n-1-t multiplied by
// float32((t+1)/f) for t < f, unless f ≥ n.
func featherMask(h, w, f int) []float32 {
	m := make([]float32, h*w)
	for i := range m {
		m[i] = 1
	}
	if f > 0 && f < h {
		for t := range f {
			a := float32(float64(t+1) / float64(f))
			for _, y := range [2]int{t, h - 1 - t} {
				row := m[y*w : (y+1)*w]
				for x := range row {
					row[x] *= a
				}
			}
		}
	}
	if f > 0 && f < w {
		for t := range f {
			a := float32(float64(t+1) / float64(f))
			for y := range h {
				m[y*w+t] *= a
				m[y*w+w-1-t] *= a
			}
		}
	}
	return m
}

// cropPlanes copies the window [y0:y0+th, x0:x0+tw] of every plane of s [c, h, w] into dst
// (reused when large enough).
func cropPlanes(dst, s []float32, c, h, w, y0, x0, th, tw int) []float32 {
	if cap(dst) < c*th*tw {
		dst = make([]float32, c*th*tw)
	}
	dst = dst[:c*th*tw]
	for ch := range c {
		for y := range th {
			src := s[ch*h*w+(y0+y)*w+x0:]
			copy(dst[ch*th*tw+y*tw:ch*th*tw+(y+1)*tw], src[:tw])
		}
	}
	return dst
}

// runTiled runs the three passes over every sample of src [b, c, h, w] and returns
// (A + B + C)/3 per sample as [b, outC, OH, OW].
func runTiled(ctx context.Context, src []float32, b, c, h, w int, t TileOptions, passes []pass, scale float64, outC int, fn tileFunc) ([]float32, int, int, error) {
	if err := t.check(passes, h, w); err != nil {
		return nil, 0, 0, err
	}
	total := 0
	for _, p := range passes {
		total += b * tiledSteps(h, w, p, t.Overlap)
	}
	done := 0
	tick := func() {
		done++
		if t.Progress != nil {
			t.Progress(done, total)
		}
	}
	oh, ow := roundEven(float64(h)*scale), roundEven(float64(w)*scale)
	res := make([]float32, b*outC*oh*ow)
	for bi := range b {
		sample := src[bi*c*h*w : (bi+1)*c*h*w]
		acc := res[bi*outC*oh*ow : (bi+1)*outC*oh*ow]
		for k, p := range passes {
			out, _, _, err := tiledPass(ctx, sample, c, h, w, p, t.Overlap, scale, outC, fn, tick)
			if err != nil {
				return nil, 0, 0, err
			}
			if k == 0 {
				copy(acc, out)
				continue
			}
			for i := range acc {
				acc[i] += out[i]
			}
		}
		for i := range acc {
			acc[i] /= 3
		}
	}
	return res, oh, ow, nil
}
