package vae_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/internal/golden/goldentensor"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// goldenCase is the part of a manifest case these tests read.
type goldenCase struct {
	IO struct {
		File string `json:"file"`
	} `json:"io"`
	FP32vsFP64 *struct {
		MaxAbs float64 `json:"max_abs"`
	} `json:"fp32_vs_fp64"`
	TiledVsUntiled *struct {
		MaxAbs float64 `json:"max_abs"`
	} `json:"tiled_vs_untiled"`
	TileLatent    int `json:"tile_latent"`
	OverlapLatent int `json:"overlap_latent"`
	TilePx        int `json:"tile_px"`
	OverlapPx     int `json:"overlap_px"`
}

type hostTensor struct {
	shape []int
	data  []float32
}

func readTensors(t *testing.T, path string) map[string]hostTensor {
	t.Helper()
	g := goldentensor.Open(t, path)
	out := map[string]hostTensor{}
	for _, n := range g.Names() {
		out[n] = hostTensor{shape: g.Shape(n), data: g.Floats(n)}
	}
	return out
}

func (h hostTensor) get(t *testing.T, name string) hostTensor {
	t.Helper()
	if h.data == nil {
		t.Fatalf("golden tensor %s missing", name)
	}
	return h
}

// checkMaxAbs logs the largest |got − want| of the named output and fails the test when it is
// above tol.
func checkMaxAbs(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	d := maxAbsDiff(t, got, want)
	t.Logf("%s max abs err %.3g (tol %.3g)", name, d, tol)
	if d > tol {
		t.Errorf("%s max abs err %g > %g", name, d, tol)
	}
}

func maxAbsDiff(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	var m float64
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}

// bhwcToNCHW reorders an image to planes.
func bhwcToNCHW(im *vae.Image) []float32 {
	out := make([]float32, len(im.Pix))
	for b := range im.B {
		for y := range im.H {
			for x := range im.W {
				for c := range im.C {
					out[((b*im.C+c)*im.H+y)*im.W+x] = im.Pix[((b*im.H+y)*im.W+x)*im.C+c]
				}
			}
		}
	}
	return out
}

// tolerance is 10x the case's float32-vs-float64 deviation (the manifest's guide); tiled cases,
// which carry none, use their untiled counterpart's.
func tolerance(t *testing.T, m *golden.Manifest, name string, c goldenCase) float64 {
	t.Helper()
	if c.FP32vsFP64 == nil {
		base := strings.TrimSuffix(name, "_tiled")
		var bc goldenCase
		if raw, ok := m.Cases[base]; ok && json.Unmarshal(raw, &bc) == nil && bc.FP32vsFP64 != nil {
			c.FP32vsFP64 = bc.FP32vsFP64
		}
	}
	if c.FP32vsFP64 == nil {
		t.Fatalf("case %s: no fp32_vs_fp64 deviation to derive a tolerance from", name)
	}
	return max(10*c.FP32vsFP64.MaxAbs, 1e-6)
}

func loadGoldenVAE(t *testing.T, m *golden.Manifest, be tensor.Backend) *vae.VAE {
	t.Helper()
	var cfg struct {
		Weights struct {
			File string `json:"file"`
		} `json:"weights"`
	}
	raw, ok := m.Top["vae_config"]
	if !ok {
		t.Fatal("manifest has no vae_config")
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Weights.File == "" {
		t.Fatalf("vae_config: no weights file (%v)", err)
	}
	v, err := vae.Load(m.Path(cfg.Weights.File), be, vae.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGolden(t *testing.T) {
	m := golden.MustLoad(t)
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	v := loadGoldenVAE(t, m, be)
	defer v.Close()
	ctx := context.Background()

	cases := []struct {
		name string
		run  func(t *testing.T, c goldenCase, io map[string]hostTensor, tol float64)
	}{
		{"vae_decode", func(t *testing.T, c goldenCase, io map[string]hostTensor, tol float64) {
			z := io["latent"].get(t, "latent")
			zt, err := tensor.FromFloat32(z.data, z.shape...)
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := io["decoder_raw"]; ok {
				raw, err := v.DecodeRaw(ctx, zt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := raw.ToFloat32()
				be.Free(raw)
				if err != nil {
					t.Fatal(err)
				}
				checkMaxAbs(t, "decoder_raw", got, want.data, tol)
			}
			img, err := v.Decode(ctx, &vae.Latent{B: z.shape[0], C: z.shape[1], H: z.shape[2], W: z.shape[3], Data: z.data})
			if err != nil {
				t.Fatal(err)
			}
			want := io["image_bhwc"].get(t, "image_bhwc")
			if img.B != want.shape[0] || img.H != want.shape[1] || img.W != want.shape[2] || img.C != want.shape[3] {
				t.Fatalf("image %dx%dx%dx%d, want %v", img.B, img.H, img.W, img.C, want.shape)
			}
			checkMaxAbs(t, "image_bhwc", img.Pix, want.data, tol)
		}},
		{"vae_encode", func(t *testing.T, c goldenCase, io map[string]hostTensor, tol float64) {
			im := io["image_bhwc"].get(t, "image_bhwc")
			img := &vae.Image{B: im.shape[0], H: im.shape[1], W: im.shape[2], C: im.shape[3], Pix: im.data}
			if mo, ok := io["moments"]; ok {
				px := bhwcToNCHW(img)
				for i := range px {
					px[i] = px[i]*2 - 1
				}
				x, err := tensor.FromFloat32(px, img.B, img.C, img.H, img.W)
				if err != nil {
					t.Fatal(err)
				}
				mt, err := v.EncodeMoments(ctx, x)
				if err != nil {
					t.Fatal(err)
				}
				got, err := mt.ToFloat32()
				be.Free(mt)
				if err != nil {
					t.Fatal(err)
				}
				checkMaxAbs(t, "moments", got, mo.data, tol)
			}
			lat, err := v.Encode(ctx, img)
			if err != nil {
				t.Fatal(err)
			}
			want := io["latent"].get(t, "latent")
			if lat.B != want.shape[0] || lat.C != want.shape[1] || lat.H != want.shape[2] || lat.W != want.shape[3] {
				t.Fatalf("latent %dx%dx%dx%d, want %v", lat.B, lat.C, lat.H, lat.W, want.shape)
			}
			d := maxAbsDiff(t, lat.Data, want.data)
			t.Logf("latent (posterior mean) max abs err %.3g", d)
			if d > tol {
				t.Errorf("latent max abs err %g > %g", d, tol)
			}
		}},
		{"vae_decode_tiled", func(t *testing.T, c goldenCase, io map[string]hostTensor, tol float64) {
			if c.TileLatent <= 0 {
				t.Fatal("case has no tile_latent")
			}
			z := io["latent"].get(t, "latent")
			lat := &vae.Latent{B: z.shape[0], C: z.shape[1], H: z.shape[2], W: z.shape[3], Data: z.data}
			img, err := v.DecodeTiled(ctx, lat, vae.TileOptions{TileX: c.TileLatent, TileY: c.TileLatent, Overlap: c.OverlapLatent})
			if err != nil {
				t.Fatal(err)
			}
			want := io["image_nchw"].get(t, "image_nchw")
			if img.B != want.shape[0] || img.C != want.shape[1] || img.H != want.shape[2] || img.W != want.shape[3] {
				t.Fatalf("image %dx%dx%dx%d (BHWC), want NCHW %v", img.B, img.H, img.W, img.C, want.shape)
			}
			tiled := bhwcToNCHW(img)
			checkMaxAbs(t, "tiled image", tiled, want.data, tol)
			if c.TiledVsUntiled != nil {
				plain, err := v.Decode(ctx, lat)
				if err != nil {
					t.Fatal(err)
				}
				seam := maxAbsDiff(t, tiled, bhwcToNCHW(plain))
				t.Logf("tiled vs plain max abs difference %.4g (upstream %.4g)", seam, c.TiledVsUntiled.MaxAbs)
				if math.Abs(seam-c.TiledVsUntiled.MaxAbs) > 2*tol {
					t.Errorf("tiled vs plain difference %g, upstream %g", seam, c.TiledVsUntiled.MaxAbs)
				}
			}
		}},
		{"vae_encode_tiled", func(t *testing.T, c goldenCase, io map[string]hostTensor, tol float64) {
			if c.TilePx <= 0 {
				t.Fatal("case has no tile_px")
			}
			im := io["image_bhwc"].get(t, "image_bhwc")
			img := &vae.Image{B: im.shape[0], H: im.shape[1], W: im.shape[2], C: im.shape[3], Pix: im.data}
			lat, err := v.EncodeTiled(ctx, img, vae.TileOptions{TileX: c.TilePx, TileY: c.TilePx, Overlap: c.OverlapPx})
			if err != nil {
				t.Fatal(err)
			}
			want := io["latent"].get(t, "latent")
			if lat.B != want.shape[0] || lat.C != want.shape[1] || lat.H != want.shape[2] || lat.W != want.shape[3] {
				t.Fatalf("latent %dx%dx%dx%d, want %v", lat.B, lat.C, lat.H, lat.W, want.shape)
			}
			checkMaxAbs(t, "tiled latent", lat.Data, want.data, tol)
			if c.TiledVsUntiled != nil {
				plain, err := v.Encode(ctx, img)
				if err != nil {
					t.Fatal(err)
				}
				seam := maxAbsDiff(t, lat.Data, plain.Data)
				t.Logf("tiled vs plain max abs difference %.4g (upstream %.4g)", seam, c.TiledVsUntiled.MaxAbs)
				if math.Abs(seam-c.TiledVsUntiled.MaxAbs) > 2*tol {
					t.Errorf("tiled vs plain difference %g, upstream %g", seam, c.TiledVsUntiled.MaxAbs)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, ok := m.Cases[tc.name]
			if !ok {
				t.Fatalf("manifest has no case %s", tc.name)
			}
			var c goldenCase
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatalf("case %s: %v", tc.name, err)
			}
			tc.run(t, c, readTensors(t, m.Path(c.IO.File)), tolerance(t, m, tc.name, c))
		})
	}
}
