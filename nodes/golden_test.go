package nodes

import (
	"context"
	"encoding/json"
	"math"
	"math/big"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
)

// e2eCase is what the golden end-to-end loops record.
type e2eCase struct {
	Steps     int     `json:"steps"`
	NoiseSeed uint64  `json:"noise_seed"`
	Shift     float64 `json:"shift"`
	Scheduler string  `json:"scheduler"`
	Sampler   string  `json:"sampler"`
	Denoise   float64 `json:"denoise"`
	CFG       float64 `json:"cfg"`
	IO        struct {
		File    string                     `json:"file"`
		Tensors map[string]json.RawMessage `json:"tensors"`
	} `json:"io"`
}

// TestGolden runs the manifest's end-to-end chains through the nodes with the tiny golden
// models: the Qwen3 encoder on the recorded token ids, then UNETLoader → (VAEEncode →)
// KSampler → VAEDecode, comparing the context, the latents and the image with ComfyUI's.
func TestGolden(t *testing.T) {
	m := golden.MustLoad(t)
	for _, name := range []string{"txt2img_loop", "img2img_loop"} {
		raw, ok := m.Cases[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			var c e2eCase
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			runGoldenChain(t, m, c)
		})
	}
}

func runGoldenChain(t *testing.T, m *golden.Manifest, c e2eCase) {
	env := tinyClipEnv(t)
	tinyDiTEnv(t, m, env)
	v := tinyVAEEnv(t, m, env)
	file := c.IO.File
	has := func(name string) bool { _, ok := c.IO.Tensors[name]; return ok }

	// Text: the encoder's hidden state of the recorded ids is the context.
	in := NewInputs()
	in.Set("clip_name", "tiny.safetensors")
	in.Set("type", "lumina2")
	clip := exec(t, "CLIPLoader", in, env).Values[0].(*Clip)
	idsF, _ := goldenTensor(t, m, file, "input_ids")
	ids := make([]int, len(idsF))
	for i, f := range idsF {
		ids[i] = int(f)
	}
	hidden, err := clip.Encoder().Hidden(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	be := clip.Encoder().Backend()
	shape := hidden.Shape()
	host := make([]float32, shape[1]*shape[2])
	if err := be.Read(host, hidden); err != nil {
		t.Fatal(err)
	}
	be.Free(hidden)
	wantCtx, _ := goldenTensor(t, m, file, "context")
	check(t, "context", host, wantCtx, 1e-4)
	cond := &Conditioning{Entries: []CondEntry{{Tokens: shape[1], Dim: shape[2], Hidden: host}}}

	// Model.
	un := NewInputs()
	un.Set("unet_name", "tiny_dit.safetensors")
	un.Set("weight_dtype", "default")
	model := exec(t, "UNETLoader", un, env).Values[0].(*Model)
	if c.Shift != 0 {
		ms := NewInputs()
		ms.Set("model", model)
		ms.Set("shift", c.Shift)
		model = exec(t, "ModelSamplingAuraFlow", ms, env).Values[0].(*Model)
	}

	// Latent: empty for txt2img, VAEEncode of the input image for img2img.
	wantOut, outShape := goldenTensor(t, m, file, "latent_out")
	var latent *Latent
	if has("image_in_bhwc") {
		pix, ps := goldenTensor(t, m, file, "image_in_bhwc")
		enc := NewInputs()
		enc.Set("vae", v)
		enc.Set("pixels", &Image{B: ps[0], H: ps[1], W: ps[2], C: ps[3], Pix: pix})
		latent = exec(t, "VAEEncode", enc, env).Values[0].(*Latent)
		if has("latent_in") {
			wantIn, _ := goldenTensor(t, m, file, "latent_in")
			check(t, "latent_in", latent.Samples, wantIn, 1e-4)
		}
	} else {
		el := NewInputs()
		el.Set("width", intIn(int64(outShape[3]*8)))
		el.Set("height", intIn(int64(outShape[2]*8)))
		el.Set("batch_size", intIn(int64(outShape[0])))
		latent = exec(t, "EmptySD3LatentImage", el, env).Values[0].(*Latent)
	}

	ks := NewInputs()
	ks.Set("model", model)
	ks.Set("seed", new(big.Int).SetUint64(c.NoiseSeed))
	ks.Set("steps", intIn(int64(c.Steps)))
	ks.Set("cfg", orDefault(c.CFG, 1))
	ks.Set("sampler_name", orDefaultS(c.Sampler, "euler"))
	ks.Set("scheduler", orDefaultS(c.Scheduler, "simple"))
	ks.Set("positive", cond)
	ks.Set("negative", cond)
	ks.Set("latent_image", latent)
	ks.Set("denoise", orDefault(c.Denoise, 1))
	out := exec(t, "KSampler", ks, env).Values[0].(*Latent)
	check(t, "latent_out", out.Samples, wantOut, 1e-3)

	dec := NewInputs()
	dec.Set("vae", v)
	dec.Set("samples", out)
	img := exec(t, "VAEDecode", dec, env).Values[0].(*Image)
	wantImg, _ := goldenTensor(t, m, file, "image_bhwc")
	check(t, "image", img.Pix, wantImg, 1e-3)
}

func check(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var maxErr float64
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(float64(got[i]-want[i])))
	}
	t.Logf("%s: max abs error %.3g", what, maxErr)
	if maxErr > tol {
		t.Fatalf("%s differs from ComfyUI's by %.3g (tolerance %g)", what, maxErr, tol)
	}
}

func orDefault(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultS(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
