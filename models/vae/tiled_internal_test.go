package vae

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestTilePositions(t *testing.T) {
	// Expected values are Python's range(0, n - overlap, tile - overlap) with ComfyUI's clamping.
	cases := []struct {
		n, tile, overlap int
		pos, length      []int
	}{
		{20, 24, 4, []int{0}, []int{20}},
		{24, 24, 4, []int{0}, []int{24}},
		{28, 12, 4, []int{0, 8, 16}, []int{12, 12, 12}},
		{28, 6, 4, []int{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22}, []int{6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6}},
		{100, 48, 16, []int{0, 32, 64}, []int{48, 48, 36}},
		{10, 4, 0, []int{0, 4, 8}, []int{4, 4, 2}},
		{30, 16, 8, []int{0, 8, 16}, []int{16, 16, 14}},
	}
	for _, c := range cases {
		pos, length := tilePositions(c.n, c.tile, c.overlap)
		if !slices.Equal(pos, c.pos) || !slices.Equal(length, c.length) {
			t.Errorf("tilePositions(%d, %d, %d) = %v %v, want %v %v", c.n, c.tile, c.overlap, pos, length, c.pos, c.length)
		}
	}
}

func TestFeatherMask(t *testing.T) {
	third, twoThirds := float32(1.0/3), float32(2.0/3)
	cases := []struct {
		h, w, f    int
		rows, cols []float32 // the mask is their outer product (one factor per row/col here)
	}{
		{3, 5, 0, []float32{1, 1, 1}, []float32{1, 1, 1, 1, 1}},
		{3, 5, 2, []float32{0.5, 1, 0.5}, []float32{0.5, 1, 1, 1, 0.5}},
		// f ≥ size: that axis is left alone.
		{3, 5, 3, []float32{1, 1, 1}, []float32{third, twoThirds, 1, twoThirds, third}},
		// f > size/2: the ramps overlap and multiply (ComfyUI narrows the same columns twice).
		{2, 4, 3, []float32{1, 1}, []float32{third, twoThirds * 1, 1 * twoThirds, third}},
	}
	for _, c := range cases {
		m := featherMask(c.h, c.w, c.f)
		for y := range c.h {
			for x := range c.w {
				if want := c.rows[y] * c.cols[x]; m[y*c.w+x] != want {
					t.Errorf("featherMask(%d, %d, %d)[%d][%d] = %v, want %v", c.h, c.w, c.f, y, x, m[y*c.w+x], want)
				}
			}
		}
	}
}

func TestRoundEven(t *testing.T) {
	for x, want := range map[float64]int{0.5: 0, 1.5: 2, 2.5: 2, 3.5: 4, 12.125: 12, 100.0 / 8: 12} {
		if got := roundEven(x); got != want {
			t.Errorf("roundEven(%v) = %d, want %d", x, got, want)
		}
	}
}

// localFn returns a tile function that applies a purely local map (so that blending any tiling
// must reproduce the untiled result): nearest upsampling by up, or average pooling by 1/up.
func localFn(c int, up int, pool bool) tileFunc {
	return func(_ context.Context, in []float32, h, w int) ([]float32, int, int, error) {
		if pool {
			oh, ow := h/up, w/up
			out := make([]float32, c*oh*ow)
			for ch := range c {
				for y := range oh {
					for x := range ow {
						var s float32
						for dy := range up {
							for dx := range up {
								s += in[ch*h*w+(y*up+dy)*w+x*up+dx]
							}
						}
						out[ch*oh*ow+y*ow+x] = s / float32(up*up)
					}
				}
			}
			return out, oh, ow, nil
		}
		oh, ow := h*up, w*up
		out := make([]float32, c*oh*ow)
		for ch := range c {
			for y := range oh {
				for x := range ow {
					out[ch*oh*ow+y*ow+x] = in[ch*h*w+(y/up)*w+x/up]
				}
			}
		}
		return out, oh, ow, nil
	}
}

func TestTiledMatchesLocalMaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name          string
		h, w          int
		tiles         TileOptions
		up            int
		pool          bool
		passes        func(TileOptions) []pass
		wantH, wantW  int
		wantSteps     int
		scale         float64
		channels, out int
	}{
		{"decode-like x8", 20, 28, TileOptions{TileX: 12, TileY: 12, Overlap: 4}, 8, false, decodePasses, 160, 224, 12 + 16 + 6, 8, 4, 4},
		{"decode-like, no overlap", 9, 7, TileOptions{TileX: 4, TileY: 4, Overlap: 0}, 2, false, decodePasses, 18, 14, 8 + 5 + 6, 2, 2, 2},
		{"encode-like /8", 96, 128, TileOptions{TileX: 48, TileY: 48, Overlap: 16}, 8, true, encodePasses, 12, 16, 12 + 20 + 14, 0.125, 3, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := 2
			src := make([]float32, b*c.channels*c.h*c.w)
			for i := range src {
				src[i] = float32(rng.NormFloat64())
			}
			fn := localFn(c.channels, c.up, c.pool)
			var calls, last, total int
			c.tiles.Progress = func(done, tot int) { calls, last, total = calls+1, done, tot }
			got, oh, ow, err := runTiled(context.Background(), src, b, c.channels, c.h, c.w, c.tiles, c.passes(c.tiles), c.scale, c.out, fn)
			if err != nil {
				t.Fatal(err)
			}
			if oh != c.wantH || ow != c.wantW {
				t.Fatalf("output %dx%d, want %dx%d", ow, oh, c.wantW, c.wantH)
			}
			if calls != b*c.wantSteps || last != total || total != b*c.wantSteps {
				t.Errorf("progress: %d calls, last %d of %d; want %d", calls, last, total, b*c.wantSteps)
			}
			for bi := range b {
				want, _, _, _ := fn(context.Background(), src[bi*c.channels*c.h*c.w:(bi+1)*c.channels*c.h*c.w], c.h, c.w)
				g := got[bi*c.out*oh*ow : (bi+1)*c.out*oh*ow]
				for i := range want {
					if d := math.Abs(float64(g[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("sample %d value %d: tiled %v, direct %v", bi, i, g[i], want[i])
					}
				}
			}
		})
	}
}

func TestTileOptionsCheck(t *testing.T) {
	cases := []struct {
		t      TileOptions
		h, w   int
		passes func(TileOptions) []pass
		want   string
	}{
		{TileOptions{TileX: 64, TileY: 64, Overlap: 8}, 100, 100, decodePasses, ""},
		{TileOptions{TileX: 8, TileY: 8, Overlap: 4}, 100, 100, decodePasses, "larger than the overlap"},
		{TileOptions{TileX: 8, TileY: 8, Overlap: 4}, 4, 4, decodePasses, ""}, // fits one tile
		{TileOptions{TileX: 1, TileY: 64, Overlap: 0}, 10, 10, decodePasses, "empty"},
		{TileOptions{TileX: 64, TileY: 64, Overlap: -1}, 10, 10, encodePasses, "negative overlap"},
	}
	for _, c := range cases {
		err := c.t.check(c.passes(c.t), c.h, c.w)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("check(%+v, %dx%d) = %v, want %q", c.t, c.w, c.h, err, c.want)
		}
	}
}

func TestTiledCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := make([]float32, 1*2*40*40)
	tiles := TileOptions{TileX: 8, TileY: 8, Overlap: 2}
	calls := 0
	tiles.Progress = func(done, total int) {
		calls++
		if done == 3 {
			cancel()
		}
	}
	_, _, _, err := runTiled(ctx, src, 1, 2, 40, 40, tiles, decodePasses(tiles), 2, 2, localFn(2, 2, false))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if calls != 3 {
		t.Errorf("%d tiles ran after cancellation at tile 3", calls-3)
	}
}
