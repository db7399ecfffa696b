package upscale

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTiledScaleSteps(t *testing.T) {
	// Values of ComfyUI's formula: rows = ceil((h - overlap) / (tile - overlap)) unless h fits.
	cases := []struct{ w, h, tile, overlap, want int }{
		{512, 512, 512, 32, 1},
		{513, 512, 512, 32, 2},
		{1024, 768, 512, 32, 6},
		{1920, 1080, 512, 32, 12},
		{100, 100, 64, 8, 4},
		{17, 14, 10, 4, 6},
		{1, 1, 512, 32, 1},
	}
	for _, c := range cases {
		if got := TiledScaleSteps(c.w, c.h, c.tile, c.tile, c.overlap); got != c.want {
			t.Errorf("%dx%d tile %d overlap %d: %d steps, want %d", c.w, c.h, c.tile, c.overlap, got, c.want)
		}
	}
}

func TestPadRightBottom(t *testing.T) {
	row := func(n int) Planar {
		p := Planar{C: 1, H: 1, W: n}
		for i := range n {
			p.Pix = append(p.Pix, float32(i))
		}
		return p
	}
	cases := []struct {
		n, w int
		want []float32
	}{
		{3, 3, []float32{0, 1, 2}},
		{3, 5, []float32{0, 1, 2, 1, 0}},          // reflect
		{2, 5, []float32{0, 1, 0, 0, 0}},          // reflect 1, then replicate
		{1, 4, []float32{0, 0, 0, 0}},             // replicate only
		{4, 8, []float32{0, 1, 2, 3, 2, 1, 0, 0}}, // reflect 3 of 4, replicate 1
	}
	for _, c := range cases {
		got := padRightBottom(row(c.n), 1, c.w)
		if !slices.Equal(got.Pix, c.want) {
			t.Errorf("pad %d to %d: %v, want %v", c.n, c.w, got.Pix, c.want)
		}
	}
	// Rows and columns pad independently.
	p := Planar{C: 1, H: 2, W: 2, Pix: []float32{1, 2, 3, 4}}
	got := padRightBottom(p, 3, 3)
	if want := []float32{1, 2, 1, 3, 4, 3, 1, 2, 1}; !slices.Equal(got.Pix, want) {
		t.Fatalf("2x2 to 3x3: %v, want %v", got.Pix, want)
	}
}

func TestUnshuffle(t *testing.T) {
	p := Planar{C: 1, H: 2, W: 4, Pix: []float32{0, 1, 2, 3, 4, 5, 6, 7}}
	got := unshuffle(p, 2)
	// torch.pixel_unshuffle(arange(8).reshape(1,1,2,4), 2): channels (i, j) = offsets in the block.
	want := []float32{0, 2, 1, 3, 4, 6, 5, 7}
	if got.C != 4 || got.H != 1 || got.W != 2 || !slices.Equal(got.Pix, want) {
		t.Fatalf("got %dx%dx%d %v, want 4x1x2 %v", got.C, got.H, got.W, got.Pix, want)
	}
}

// nearest is a tile function with a known global result: every pixel repeated s×s times.
func nearest(s int) TileFunc {
	return func(_ context.Context, p Planar) (Planar, error) {
		out := Planar{C: p.C, H: p.H * s, W: p.W * s, Pix: make([]float32, p.C*p.H*p.W*s*s)}
		for c := range p.C {
			for y := range out.H {
				for x := range out.W {
					out.Pix[(c*out.H+y)*out.W+x] = p.Pix[(c*p.H+y/s)*p.W+x/s]
				}
			}
		}
		return out, nil
	}
}

// TestTiledScaleBlends checks that blending tiles of a position-independent function gives the
// untiled result (the feathering weights sum to the divisor everywhere).
func TestTiledScaleBlends(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ c, h, w, tile, overlap, scale int }{
		{3, 20, 23, 8, 2, 2},
		{1, 9, 40, 10, 3, 3},
		{3, 64, 64, 32, 8, 1},
		{2, 5, 5, 8, 2, 4},     // fits in one tile
		{1, 33, 17, 16, 15, 1}, // overlap just below the tile
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%dx%d_tile%d_overlap%d_x%d", c.w, c.h, c.tile, c.overlap, c.scale), func(t *testing.T) {
			img := Planar{C: c.c, H: c.h, W: c.w, Pix: make([]float32, c.c*c.h*c.w)}
			for i := range img.Pix {
				img.Pix[i] = rng.Float32()
			}
			tiles := 0
			got, err := TiledScale(context.Background(), []Planar{img, img}, nearest(c.scale), c.tile, c.tile, c.overlap, c.scale, c.c, func() { tiles++ })
			if err != nil {
				t.Fatal(err)
			}
			if want := 2 * TiledScaleSteps(c.w, c.h, c.tile, c.tile, c.overlap); tiles != want {
				t.Fatalf("%d tiles, want %d", tiles, want)
			}
			want, _ := nearest(c.scale)(context.Background(), img)
			for b := range got {
				for i := range want.Pix {
					if d := got[b].Pix[i] - want.Pix[i]; d > 1e-6 || d < -1e-6 {
						t.Fatalf("image %d value %d: %v, want %v", b, i, got[b].Pix[i], want.Pix[i])
					}
				}
			}
		})
	}
}

func TestTiledScaleErrors(t *testing.T) {
	img := Planar{C: 1, H: 4, W: 4, Pix: make([]float32, 16)}
	ctx := context.Background()
	if _, err := TiledScale(ctx, []Planar{img}, nearest(1), 4, 4, 4, 1, 1, nil); err == nil {
		t.Error("overlap = tile accepted")
	}
	if _, err := TiledScale(ctx, []Planar{img}, nearest(1), 2, 2, 0, 2, 1, nil); err == nil {
		t.Error("a tile function of the wrong scale accepted")
	}
	if _, err := TiledScale(ctx, []Planar{{C: 1, H: 2, W: 2, Pix: []float32{1}}}, nearest(1), 2, 2, 0, 1, 1, nil); err == nil {
		t.Error("a short image accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := TiledScale(cancelled, []Planar{img}, nearest(1), 2, 2, 0, 1, 1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

var errFakeOOM = errors.New("fake: out of memory")

// TestUpscaleRetriesOnOOM follows ImageUpscaleWithModel's loop: halve the tile on out of memory,
// give up below 128, restart the progress count, pass other errors through.
func TestUpscaleRetriesOnOOM(t *testing.T) {
	// The first tile of each attempt is the one holding the marked pixel (0, 0).
	img := Image{B: 1, H: 600, W: 600, C: 3, Pix: make([]float32, 600*600*3)}
	img.Pix[0] = -1
	isOOM := func(err error) bool { return errors.Is(err, errFakeOOM) }
	cases := []struct {
		name      string
		maxTile   int   // tiles larger than this fail with OOM
		other     error // returned instead for any tile
		wantTiles []int // tile sizes tried
		wantErr   error
	}{
		{"fits", 512, nil, []int{512}, nil},
		{"halved once", 256, nil, []int{512, 256}, nil},
		{"halved twice", 128, nil, []int{512, 256, 128}, nil},
		{"gives up below 128", 100, nil, []int{512, 256, 128}, errFakeOOM},
		{"other errors pass", 512, errors.New("boom"), []int{512}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tried []int
			var totals []int
			fn := func(ctx context.Context, p Planar) (Planar, error) {
				size := max(p.H, p.W)
				if p.Pix[0] == -1 {
					tried = append(tried, size)
				}
				if c.other != nil {
					return Planar{}, c.other
				}
				if size > c.maxTile {
					return Planar{}, errFakeOOM
				}
				return nearest(1)(ctx, p)
			}
			// Record the starting tile of each attempt through the progress totals.
			_, err := upscaleTiled(context.Background(), img, Options{IsOOM: isOOM, Progress: func(done, total int) {
				if done == 1 {
					totals = append(totals, total)
				}
			}}, fn, 1, 3)
			switch {
			case c.other != nil:
				if err == nil || err.Error() != "boom" {
					t.Fatalf("err %v, want boom", err)
				}
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err %v, want %v", err, c.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
			if !slices.Equal(tried, c.wantTiles) {
				t.Fatalf("tiles tried %v, want %v", tried, c.wantTiles)
			}
			if c.wantErr == nil && c.other == nil {
				last := c.wantTiles[len(c.wantTiles)-1]
				if want := TiledScaleSteps(600, 600, last, last, 32); totals[len(totals)-1] != want {
					t.Fatalf("progress total %d, want %d for tile %d", totals[len(totals)-1], want, last)
				}
			}
		})
	}
}

func TestUpscaleChecksInput(t *testing.T) {
	be := newBackend(t)
	m := loadTestModel(t, be, "esrgan_x4_old")
	ctx := context.Background()
	if _, err := m.Upscale(ctx, Image{B: 1, H: 2, W: 2, C: 4, Pix: make([]float32, 16)}, Options{}); err == nil {
		t.Error("a 4-channel image accepted by a 3-channel model")
	}
	if _, err := m.Upscale(ctx, Image{B: 1, H: 2, W: 2, C: 3, Pix: make([]float32, 5)}, Options{}); err == nil {
		t.Error("a short image accepted")
	}
	// A 1-pixel image is padded to spandrel's minimum of 2 and cropped back.
	out, err := m.Upscale(ctx, Image{B: 1, H: 1, W: 1, C: 3, Pix: []float32{0.2, 0.5, 0.9}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out.H != 4 || out.W != 4 || out.C != 3 || len(out.Pix) != 48 {
		t.Fatalf("1x1 image gave %dx%dx%d", out.H, out.W, out.C)
	}
	for _, v := range out.Pix {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("value %v outside [0, 1]", v)
		}
	}
}
