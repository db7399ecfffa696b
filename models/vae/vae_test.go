package vae_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
)

func sliceLatent(l *vae.Latent, b int) *vae.Latent {
	n := l.C * l.H * l.W
	return &vae.Latent{B: 1, C: l.C, H: l.H, W: l.W, Data: l.Data[b*n : (b+1)*n]}
}

func TestDecode(t *testing.T) {
	be := newBackend(t)
	v := loadTiny(t, be, vae.Options{})
	ctx := context.Background()
	lat := randomLatent(3, 16, 5, 7, 11)
	img, err := v.Decode(ctx, lat)
	if err != nil {
		t.Fatal(err)
	}
	if img.B != 3 || img.H != 20 || img.W != 28 || img.C != 3 || len(img.Pix) != 3*20*28*3 {
		t.Fatalf("image %dx%dx%dx%d with %d values", img.B, img.H, img.W, img.C, len(img.Pix))
	}
	// The image is (raw + 1)/2 clamped, moved to BHWC, and every sample of a batch decodes as
	// it would alone.
	clamped := 0
	for b := range 3 {
		z, err := tensor.FromFloat32(sliceLatent(lat, b).Data, 1, 16, 5, 7)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := v.DecodeRaw(ctx, z)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := raw.ToFloat32()
		be.Free(raw)
		for c := range 3 {
			for y := range 20 {
				for x := range 28 {
					want := float32(math.Min(1, math.Max(0, float64((r[(c*20+y)*28+x]+1)/2))))
					if want == 0 || want == 1 {
						clamped++
					}
					got := img.Pix[((b*20+y)*28+x)*3+c]
					if math.Abs(float64(got-want)) > 1e-5 {
						t.Fatalf("sample %d (%d,%d,%d): %v, want %v", b, c, y, x, got, want)
					}
				}
			}
		}
	}
	if clamped == 0 {
		t.Log("no value needed clamping (weak check of the clamp)")
	}
}

func TestMemoryBudget(t *testing.T) {
	be := newBackend(t)
	ctx := context.Background()
	ref := loadTiny(t, be, vae.Options{})
	lat := randomLatent(2, 16, 12, 10, 3)
	im := randomImage(2, 48, 40, 3, 4)
	per := ref.DecodePeakBytes(12, 10)
	perEnc := ref.EncodePeakBytes(48, 40)
	plainImg, err := ref.Decode(ctx, lat)
	if err != nil {
		t.Fatal(err)
	}
	plainLat, err := ref.Encode(ctx, im)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		budget     int64
		decTiled   bool
		encTiled   bool
		chunk      int
		identicals bool // results identical to the unbudgeted ones
	}{
		{"unlimited", 0, false, false, 2, true},
		{"whole batch fits", 4 * max(per, perEnc), false, false, 2, true},
		{"one sample at a time", max(per, perEnc) + 1, false, false, 1, true},
		{"tiles", min(per, perEnc) / 2, true, true, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := loadTiny(t, be, vae.Options{MemoryBudget: c.budget})
			pd, pe := v.PlanDecode(2, 12, 10), v.PlanEncode(2, 48, 40)
			if pd.Tiled != c.decTiled || pe.Tiled != c.encTiled || pd.Chunk != c.chunk {
				t.Fatalf("plans %+v / %+v", pd, pe)
			}
			img, err := v.Decode(ctx, lat)
			if err != nil {
				t.Fatal(err)
			}
			l, err := v.Encode(ctx, im)
			if err != nil {
				t.Fatal(err)
			}
			if c.identicals {
				if d := maxDiff(img.Pix, plainImg.Pix); d != 0 {
					t.Errorf("decode differs from the unbudgeted one by %g", d)
				}
				if d := maxDiff(l.Data, plainLat.Data); d != 0 {
					t.Errorf("encode differs from the unbudgeted one by %g", d)
				}
				return
			}
			if pd.PeakBytes > c.budget && pd.Tile.TileX > 8 {
				t.Errorf("decode plan %+v does not fit %d", pd, c.budget)
			}
			tiled, err := v.DecodeTiled(ctx, lat, pd.Tile)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(img.Pix, tiled.Pix); d != 0 {
				t.Errorf("budgeted decode differs from DecodeTiled(%+v) by %g", pd.Tile, d)
			}
			tl, err := v.EncodeTiled(ctx, im, pe.Tile)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(l.Data, tl.Data); d != 0 {
				t.Errorf("budgeted encode differs from EncodeTiled(%+v) by %g", pe.Tile, d)
			}
		})
	}
}

func TestEncodeCropAndChannels(t *testing.T) {
	be := newBackend(t)
	v := loadTiny(t, be, vae.Options{})
	ctx := context.Background()
	// 23x30 RGBA: cropped to 20x28 (offsets (23 mod 4)/2 = 1 and (30 mod 4)/2 = 1), alpha dropped.
	big := randomImage(1, 23, 30, 4, 8)
	crop := &vae.Image{B: 1, H: 20, W: 28, C: 3, Pix: make([]float32, 20*28*3)}
	for y := range 20 {
		for x := range 28 {
			for c := range 3 {
				crop.Pix[(y*28+x)*3+c] = big.Pix[((y+1)*30+x+1)*4+c]
			}
		}
	}
	for _, tiled := range []bool{false, true} {
		enc := v.Encode
		if tiled {
			enc = func(ctx context.Context, im *vae.Image) (*vae.Latent, error) {
				return v.EncodeTiled(ctx, im, vae.TileOptions{TileX: 16, TileY: 16, Overlap: 4})
			}
		}
		a, err := enc(ctx, big)
		if err != nil {
			t.Fatal(err)
		}
		b, err := enc(ctx, crop)
		if err != nil {
			t.Fatal(err)
		}
		if a.H != 5 || a.W != 7 || a.C != 16 {
			t.Fatalf("tiled %v: latent %dx%dx%d", tiled, a.C, a.H, a.W)
		}
		if d := maxDiff(a.Data, b.Data); d != 0 {
			t.Errorf("tiled %v: crop differs by %g", tiled, d)
		}
	}
}

func TestInputErrors(t *testing.T) {
	be := newBackend(t)
	v := loadTiny(t, be, vae.Options{})
	ctx := context.Background()
	decCases := []struct {
		name string
		lat  *vae.Latent
		want string
	}{
		{"nil", nil, "no latent"},
		{"channels", randomLatent(1, 4, 4, 4, 1), "4 channels"},
		{"short data", &vae.Latent{B: 1, C: 16, H: 4, W: 4, Data: make([]float32, 10)}, "holds 10 values"},
		{"empty", &vae.Latent{B: 0, C: 16, H: 4, W: 4}, "empty"},
	}
	for _, c := range decCases {
		for _, tiled := range []bool{false, true} {
			var err error
			if tiled {
				_, err = v.DecodeTiled(ctx, c.lat, vae.DecodeTileDefaults())
			} else {
				_, err = v.Decode(ctx, c.lat)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("decode %s (tiled %v): %v, want %q", c.name, tiled, err, c.want)
			}
		}
	}
	encCases := []struct {
		name string
		im   *vae.Image
		want string
	}{
		{"nil", nil, "no image"},
		{"gray", randomImage(1, 16, 16, 1, 1), "1 channels"},
		{"tiny", randomImage(1, 3, 16, 3, 1), "smaller than one latent cell"},
		{"short", &vae.Image{B: 1, H: 8, W: 8, C: 3, Pix: make([]float32, 5)}, "holds 5 values"},
	}
	for _, c := range encCases {
		if _, err := v.Encode(ctx, c.im); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("encode %s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := v.DecodeTiled(ctx, randomLatent(1, 16, 40, 40, 1), vae.TileOptions{TileX: 8, TileY: 8, Overlap: 8}); err == nil || !strings.Contains(err.Error(), "larger than the overlap") {
		t.Errorf("tile not larger than the overlap: %v", err)
	}
}

func TestCancellation(t *testing.T) {
	be := newBackend(t)
	v := loadTiny(t, be, vae.Options{})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	lat := randomLatent(1, 16, 8, 8, 1)
	im := randomImage(1, 32, 32, 3, 1)
	calls := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"Decode", func(ctx context.Context) error { _, err := v.Decode(ctx, lat); return err }},
		{"DecodeTiled", func(ctx context.Context) error {
			_, err := v.DecodeTiled(ctx, lat, vae.TileOptions{TileX: 4, TileY: 4, Overlap: 1})
			return err
		}},
		{"Encode", func(ctx context.Context) error { _, err := v.Encode(ctx, im); return err }},
		{"EncodeTiled", func(ctx context.Context) error {
			_, err := v.EncodeTiled(ctx, im, vae.TileOptions{TileX: 16, TileY: 16, Overlap: 4})
			return err
		}},
	}
	for _, c := range calls {
		if err := c.run(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", c.name, err)
		}
	}
	// Cancelling from the progress callback stops before the next tile.
	ctx, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	n := 0
	_, err := v.DecodeTiled(ctx, lat, vae.TileOptions{TileX: 4, TileY: 4, Overlap: 1, Progress: func(done, total int) {
		n = done
		if done == 2 {
			cancel2()
		}
	}})
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Errorf("cancel at tile 2: err %v after %d tiles", err, n)
	}
}

func TestConcurrentUse(t *testing.T) {
	be := newBackend(t)
	v := loadTiny(t, be, vae.Options{})
	ctx := context.Background()
	lat := randomLatent(1, 16, 6, 6, 2)
	want, err := v.Decode(ctx, lat)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			got, err := v.Decode(ctx, lat)
			if err == nil && maxDiff(got.Pix, want.Pix) != 0 {
				err = errors.New("concurrent decode differs")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestLatentFormat(t *testing.T) {
	z := []float32{vae.ShiftFactor, 0, 1, -2.5}
	vae.ProcessIn(z)
	want := []float32{0, float32(-0.1159 * 0.3611), float32((1 - 0.1159) * 0.3611), float32((-2.5 - 0.1159) * 0.3611)}
	for i := range z {
		if math.Abs(float64(z[i]-want[i])) > 1e-7 {
			t.Errorf("ProcessIn[%d] = %v, want %v", i, z[i], want[i])
		}
	}
	vae.ProcessOut(z)
	for i, w := range []float32{vae.ShiftFactor, 0, 1, -2.5} {
		if math.Abs(float64(z[i]-w)) > 1e-6 {
			t.Errorf("ProcessOut(ProcessIn(x))[%d] = %v, want %v", i, z[i], w)
		}
	}
}

func TestDecodeTilesFromPixels(t *testing.T) {
	cases := []struct {
		tile, overlap int
		want          vae.TileOptions
	}{
		{512, 64, vae.TileOptions{TileX: 64, TileY: 64, Overlap: 8}},
		{64, 32, vae.TileOptions{TileX: 8, TileY: 8, Overlap: 2}}, // overlap > tile/4 → tile/4
		{256, 0, vae.TileOptions{TileX: 32, TileY: 32, Overlap: 0}},
		{1024, 256, vae.TileOptions{TileX: 128, TileY: 128, Overlap: 32}},
	}
	for _, c := range cases {
		if got := vae.DecodeTilesFromPixels(c.tile, c.overlap, 8); got.TileX != c.want.TileX || got.TileY != c.want.TileY || got.Overlap != c.want.Overlap {
			t.Errorf("DecodeTilesFromPixels(%d, %d) = %+v, want %+v", c.tile, c.overlap, got, c.want)
		}
	}
}
