package nodes

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
)

func tinyVAEEnv(t *testing.T, m *golden.Manifest, env Env) *VAE {
	t.Helper()
	var cfg struct {
		Weights struct {
			File string `json:"file"`
		} `json:"weights"`
	}
	if err := json.Unmarshal(m.Top["vae_config"], &cfg); err != nil || cfg.Weights.File == "" {
		t.Fatalf("manifest vae_config: %v", err)
	}
	dir := filepath.Join(env.ModelsDir, "vae")
	linkFile(t, m.Path(cfg.Weights.File), filepath.Join(dir, "tiny_ae.safetensors"))
	linkFile(t, m.Path(strings.TrimSuffix(cfg.Weights.File, ".safetensors")+".config.json"), filepath.Join(dir, "tiny_ae.config.json"))
	in := NewInputs()
	in.Set("vae_name", "tiny_ae.safetensors")
	return exec(t, "VAELoader", in, env).Values[0].(*VAE)
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestVAENodesMatchGolden runs VAELoader → VAEDecode and VAEEncode on the tiny golden VAE.
func TestVAENodesMatchGolden(t *testing.T) {
	m := golden.MustLoad(t)
	env := tempEnv(t)
	v := tinyVAEEnv(t, m, env)
	lat, lshape := goldenTensor(t, m, "vae_decode.safetensors", "latent")
	want, ishape := goldenTensor(t, m, "vae_decode.safetensors", "image_bhwc")
	in := NewInputs()
	in.Set("vae", v)
	in.Set("samples", &Latent{B: lshape[0], C: lshape[1], H: lshape[2], W: lshape[3], Samples: lat, DownscaleRatio: 8})
	im := exec(t, "VAEDecode", in, env).Values[0].(*Image)
	if im.B != ishape[0] || im.H != ishape[1] || im.W != ishape[2] || im.C != ishape[3] {
		t.Fatalf("decoded %dx%dx%dx%d", im.B, im.H, im.W, im.C)
	}
	if d := maxAbsDiff(im.Pix, want); d > 1e-4 {
		t.Fatalf("VAEDecode differs from ComfyUI by %.3g", d)
	}
	pix, pshape := goldenTensor(t, m, "vae_encode.safetensors", "image_bhwc")
	wantLat, _ := goldenTensor(t, m, "vae_encode.safetensors", "latent")
	enc := NewInputs()
	enc.Set("vae", v)
	enc.Set("pixels", &Image{B: pshape[0], H: pshape[1], W: pshape[2], C: pshape[3], Pix: pix})
	l := exec(t, "VAEEncode", enc, env).Values[0].(*Latent)
	if d := maxAbsDiff(l.Samples, wantLat); d > 1e-4 || l.DownscaleRatio != 8 {
		t.Fatalf("VAEEncode differs from ComfyUI by %.3g", d)
	}
	// The tiled decode node with tiles larger than the latent equals a plain decode.
	tiled := NewInputs()
	tiled.Set("vae", v)
	tiled.Set("samples", in.Value("samples"))
	tiled.Set("tile_size", intIn(4096))
	tiled.Set("overlap", intIn(64))
	tiled.Set("temporal_size", intIn(64))
	tiled.Set("temporal_overlap", intIn(8))
	tim := exec(t, "VAEDecodeTiled", tiled, env).Values[0].(*Image)
	if tim.H != im.H || tim.W != im.W {
		t.Fatalf("tiled decode %dx%d", tim.W, tim.H)
	}
}

func TestLatentUpscaleNodes(t *testing.T) {
	l := NewLatent(1, 2, 16, 24)
	for i := range l.Samples {
		l.Samples[i] = float32(i%7) - 3
	}
	for _, method := range latentUpscaleMethods {
		in := NewInputs()
		in.Set("samples", l)
		in.Set("upscale_method", method)
		in.Set("width", intIn(0))
		in.Set("height", intIn(256))
		in.Set("crop", "disabled")
		out := exec(t, "LatentUpscale", in, Env{}).Values[0].(*Latent)
		if out.H != 32 || out.W != 48 || len(out.Samples) != 2*32*48 {
			t.Errorf("%s: %dx%d", method, out.W, out.H)
		}
		by := NewInputs()
		by.Set("samples", l)
		by.Set("upscale_method", method)
		by.Set("scale_by", 1.5)
		out = exec(t, "LatentUpscaleBy", by, Env{}).Values[0].(*Latent)
		if out.H != 24 || out.W != 36 {
			t.Errorf("%s by 1.5: %dx%d", method, out.W, out.H)
		}
	}
}
