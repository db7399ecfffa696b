package upscale

import (
	"context"
	"fmt"
)

// TileFunc upscales one tile (planes [C, h, w]) to [outC, h·scale, w·scale].
type TileFunc func(ctx context.Context, tile Planar) (Planar, error)

// TiledScaleSteps is comfy.utils.get_tiled_scale_steps: the number of tiles TiledScale runs on
// one width×height image.
func TiledScaleSteps(width, height, tileX, tileY, overlap int) int {
	count := func(size, tile int) int {
		if size <= tile {
			return 1
		}
		return ceilDiv(size-overlap, tile-overlap)
	}
	return count(height, tileY) * count(width, tileX)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// tilePositions is ComfyUI's range(0, size - overlap, tile - overlap), or [0] when the image
// fits in one tile.
func tilePositions(size, tile, overlap int) []int {
	if size <= tile {
		return []int{0}
	}
	var pos []int
	for p := 0; p < size-overlap; p += tile - overlap {
		pos = append(pos, p)
	}
	return pos
}

// featherFactors returns, for each index of a tile dimension of length n, the two factors
// ComfyUI's loop `for t in range(feather): mask[t] *= a; mask[n-1-t] *= a` multiplies it by,
// in the order it applies them (1 where it applies none), as float32 like torch's mul_.
func featherFactors(n, feather int) (first, second []float32) {
	first, second = make([]float32, n), make([]float32, n)
	for i := range n {
		first[i], second[i] = 1, 1
	}
	if feather >= n {
		return first, second
	}
	applied := make([]int, n)
	mul := func(i int, a float32) {
		if applied[i] == 0 {
			first[i] = a
		} else {
			second[i] = a
		}
		applied[i]++
	}
	for t := range feather {
		a := float32(float64(t+1) / float64(feather))
		mul(t, a)
		mul(n-1-t, a)
	}
	return first, second
}

// TiledScale is ComfyUI's tiled_scale (tiled_scale_multidim over height and width) for an
// integer scale: every image of the batch that is larger than a tile is cut into tiles of at
// most tileY×tileX input pixels overlapping by overlap, each tile is upscaled by fn, and the
// results are blended with linear feathering over scale·overlap output pixels at every tile
// edge, divided by the summed weights. An image that fits in one tile is passed to fn whole.
// progress, when set, is called once per tile.
func TiledScale(ctx context.Context, batch []Planar, fn TileFunc, tileX, tileY, overlap, scale, outC int, progress func()) ([]Planar, error) {
	if tileX < 1 || tileY < 1 || overlap < 0 || scale < 1 || outC < 1 {
		return nil, fmt.Errorf("upscale: tiled scale: tile %dx%d, overlap %d, scale %d, %d channels", tileX, tileY, overlap, scale, outC)
	}
	if overlap >= tileX || overlap >= tileY {
		return nil, fmt.Errorf("upscale: tiled scale: overlap %d must be smaller than the tile (%dx%d)", overlap, tileX, tileY)
	}
	out := make([]Planar, len(batch))
	for b, s := range batch {
		if err := s.check(); err != nil {
			return nil, err
		}
		oh, ow := s.H*scale, s.W*scale
		checkTile := func(ps Planar, h, w int) error {
			if ps.C != outC || ps.H != h*scale || ps.W != w*scale || len(ps.Pix) != ps.C*ps.H*ps.W {
				return fmt.Errorf("upscale: tiled scale: a %dx%d tile gave %dx%dx%d, want %dx%dx%d", w, h, ps.C, ps.H, ps.W, outC, h*scale, w*scale)
			}
			return nil
		}
		if s.H <= tileY && s.W <= tileX {
			ps, err := fn(ctx, s)
			if err != nil {
				return nil, err
			}
			if err := checkTile(ps, s.H, s.W); err != nil {
				return nil, err
			}
			out[b] = ps
			if progress != nil {
				progress()
			}
			continue
		}
		acc := make([]float32, outC*oh*ow)
		div := make([]float32, oh*ow)
		feather := scale * overlap
		for _, py := range tilePositions(s.H, tileY, overlap) {
			for _, px := range tilePositions(s.W, tileX, overlap) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				y0, x0 := max(0, min(s.H-overlap, py)), max(0, min(s.W-overlap, px))
				th, tw := min(tileY, s.H-y0), min(tileX, s.W-x0)
				tile := Planar{C: s.C, H: th, W: tw, Pix: make([]float32, s.C*th*tw)}
				for c := range s.C {
					for y := range th {
						copy(tile.Pix[(c*th+y)*tw:(c*th+y+1)*tw], s.Pix[(c*s.H+y0+y)*s.W+x0:])
					}
				}
				ps, err := fn(ctx, tile)
				if err != nil {
					return nil, err
				}
				if err := checkTile(ps, th, tw); err != nil {
					return nil, err
				}
				ry1, ry2 := featherFactors(ps.H, feather)
				cx1, cx2 := featherFactors(ps.W, feather)
				uy, ux := y0*scale, x0*scale
				lh, lw := min(ps.H, oh-uy), min(ps.W, ow-ux)
				for y := range lh {
					my := ry1[y] * ry2[y]
					for x := range lw {
						mask := my * cx1[x] * cx2[x]
						o := (uy+y)*ow + ux + x
						for c := range outC {
							acc[c*oh*ow+o] += ps.Pix[(c*ps.H+y)*ps.W+x] * mask
						}
						div[o] += mask
					}
				}
				if progress != nil {
					progress()
				}
			}
		}
		for c := range outC {
			plane := acc[c*oh*ow : (c+1)*oh*ow]
			for i := range plane {
				plane[i] /= div[i]
			}
		}
		out[b] = Planar{C: outC, H: oh, W: ow, Pix: acc}
	}
	return out, nil
}

// Options configures Model.Upscale.
type Options struct {
	// Tile and Overlap are the starting tile size and the overlap in input pixels (0: 512 and
	// 32, ImageUpscaleWithModel's values).
	Tile, Overlap int
	// IsOOM reports whether an error is an out-of-memory failure, after which the upscale is
	// retried with half the tile size down to MinTile (ComfyUI's loop); nil: never retry.
	IsOOM func(error) bool
	// MinTile is the smallest tile tried (0: 128).
	MinTile int
	// Progress is told done and total tiles after each tile (a retry starts over).
	Progress func(done, total int)
}

// Image is an IMAGE batch [B, H, W, C] of float32 pixels.
type Image struct {
	B, H, W, C int
	Pix        []float32
}

// Upscale is ComfyUI's ImageUpscaleWithModel on img: channels last to planes, TiledScale over
// Call with tiles of opts.Tile (halved on out-of-memory), clamp to [0, 1], back to channels
// last.
func (m *Model) Upscale(ctx context.Context, img Image, opts Options) (Image, error) {
	if img.B < 1 || img.H < 1 || img.W < 1 || img.C < 1 || len(img.Pix) != img.B*img.H*img.W*img.C {
		return Image{}, fmt.Errorf("upscale: image %dx%dx%dx%d with %d values", img.B, img.H, img.W, img.C, len(img.Pix))
	}
	if img.C != m.cfg.InChannels {
		return Image{}, fmt.Errorf("upscale: the image has %d channels but the model takes %d", img.C, m.cfg.InChannels)
	}
	return upscaleTiled(ctx, img, opts, m.Call, m.cfg.Scale, m.cfg.OutChannels)
}

// upscaleTiled is Upscale with the tile function, scale and output channels given.
func upscaleTiled(ctx context.Context, img Image, opts Options, fn TileFunc, scale, outC int) (Image, error) {
	tile, overlap, minTile := opts.Tile, opts.Overlap, opts.MinTile
	if tile == 0 {
		tile, overlap = 512, 32
	}
	if minTile == 0 {
		minTile = 128
	}
	batch := make([]Planar, img.B)
	hw := img.H * img.W
	for b := range batch {
		p := Planar{C: img.C, H: img.H, W: img.W, Pix: make([]float32, img.C*hw)}
		src := img.Pix[b*hw*img.C:]
		for i := range hw {
			for c := range img.C {
				p.Pix[c*hw+i] = src[i*img.C+c]
			}
		}
		batch[b] = p
	}
	for {
		total := img.B * TiledScaleSteps(img.W, img.H, tile, tile, overlap)
		done := 0
		var progress func()
		if opts.Progress != nil {
			progress = func() { done++; opts.Progress(done, total) }
		}
		out, err := TiledScale(ctx, batch, fn, tile, tile, overlap, scale, outC, progress)
		if err != nil {
			if ctx.Err() != nil || opts.IsOOM == nil || !opts.IsOOM(err) {
				return Image{}, err
			}
			tile /= 2
			if tile < minTile || tile <= overlap {
				return Image{}, err
			}
			continue
		}
		oh, ow, oc := img.H*scale, img.W*scale, outC
		res := Image{B: img.B, H: oh, W: ow, C: oc, Pix: make([]float32, img.B*oh*ow*oc)}
		ohw := oh * ow
		for b, p := range out {
			dst := res.Pix[b*ohw*oc:]
			for i := range ohw {
				for c := range oc {
					dst[i*oc+c] = clamp01(p.Pix[c*ohw+i])
				}
			}
		}
		return res, nil
	}
}
