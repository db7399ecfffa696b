package nodes

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/internal/golden/goldentensor"
	"github.com/dypegraph/dypegraph/sampling"
)

// goldenTensor reads one F32/I64 tensor of a golden file as float32 with its shape.
func goldenTensor(t *testing.T, m *golden.Manifest, file, name string) ([]float32, []int) {
	t.Helper()
	g := goldentensor.Open(t, m.Path(file))
	return g.Floats(name), g.Shape(name)
}

// tinyDiTEnv puts the golden tiny DiT (with its sidecar) into a models folder.
func tinyDiTEnv(t *testing.T, m *golden.Manifest, env Env) {
	var weights string
	if err := json.Unmarshal(m.Top["dit_weights"], &struct {
		File *string `json:"file"`
	}{&weights}); err != nil || weights == "" {
		t.Fatalf("manifest dit_weights: %v", err)
	}
	dir := filepath.Join(env.ModelsDir, "diffusion_models")
	linkFile(t, m.Path(weights), filepath.Join(dir, "tiny_dit.safetensors"))
	linkFile(t, m.Path(strings.TrimSuffix(weights, ".safetensors")+".config.json"), filepath.Join(dir, "tiny_dit.config.json"))
}

// loopCase is what the golden sampling loops record about their parameters.
type loopCase struct {
	Steps     int     `json:"steps"`
	NoiseSeed uint64  `json:"noise_seed"`
	Shift     float64 `json:"shift"`
	Scheduler string  `json:"scheduler"`
	Sampler   string  `json:"sampler"`
	CFG       float64 `json:"cfg"`
	IO        struct {
		File string `json:"file"`
	} `json:"io"`
}

// TestKSamplerNodeMatchesGoldenLoop runs UNETLoader → KSampler on the tiny golden DiT with the
// golden conditioning and compares the final latent with ComfyUI's.
func TestKSamplerNodeMatchesGoldenLoop(t *testing.T) {
	m := golden.MustLoad(t)
	raw, ok := m.Cases["txt2img_loop"]
	if !ok {
		t.Fatal("golden set has no txt2img_loop case")
	}
	var c loopCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	env := tempEnv(t)
	tinyDiTEnv(t, m, env)
	in := NewInputs()
	in.Set("unet_name", "tiny_dit.safetensors")
	in.Set("weight_dtype", "default")
	model := exec(t, "UNETLoader", in, env).Values[0].(*Model)
	if c.Shift != 0 && c.Shift != ZImageShift {
		ms := NewInputs()
		ms.Set("model", model)
		ms.Set("shift", c.Shift)
		model = exec(t, "ModelSamplingAuraFlow", ms, env).Values[0].(*Model)
	}
	ctxData, ctxShape := goldenTensor(t, m, c.IO.File, "context")
	cond := &Conditioning{Entries: []CondEntry{{Tokens: ctxShape[1], Dim: ctxShape[2], Hidden: ctxData}}}
	want, shape := goldenTensor(t, m, c.IO.File, "latent_out")
	el := NewInputs()
	el.Set("width", intIn(int64(shape[3]*8)))
	el.Set("height", intIn(int64(shape[2]*8)))
	el.Set("batch_size", intIn(int64(shape[0])))
	latent := exec(t, "EmptySD3LatentImage", el, env).Values[0].(*Latent)
	ks := NewInputs()
	ks.Set("model", model)
	ks.Set("seed", new(big.Int).SetUint64(c.NoiseSeed))
	ks.Set("steps", intIn(int64(c.Steps)))
	cfg := c.CFG
	if cfg == 0 {
		cfg = 1
	}
	ks.Set("cfg", cfg)
	sampler := c.Sampler
	if sampler == "" {
		sampler = "euler"
	}
	ks.Set("sampler_name", sampler)
	ks.Set("scheduler", c.Scheduler)
	ks.Set("positive", cond)
	ks.Set("negative", cond)
	ks.Set("latent_image", latent)
	ks.Set("denoise", 1.0)
	got := exec(t, "KSampler", ks, env).Values[0].(*Latent)
	if len(got.Samples) != len(want) {
		t.Fatalf("latent has %d values, want %d", len(got.Samples), len(want))
	}
	var maxErr float64
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(float64(got.Samples[i]-want[i])))
	}
	t.Logf("max |latent - golden| = %.3g", maxErr)
	if maxErr > 1e-3 {
		t.Fatalf("latent differs from ComfyUI's by %.3g", maxErr)
	}
}

// TestKSamplerEverySampler runs every sampler of the combo through the KSampler node on the
// tiny golden DiT, at cfg 1 (where the CFG++ samplers still need the negative model) and at
// cfg 2: each must finish with a finite latent of the input's shape.
func TestKSamplerEverySampler(t *testing.T) {
	m := golden.MustLoad(t)
	env := tempEnv(t)
	tinyDiTEnv(t, m, env)
	in := NewInputs()
	in.Set("unet_name", "tiny_dit.safetensors")
	in.Set("weight_dtype", "default")
	model := exec(t, "UNETLoader", in, env).Values[0].(*Model)
	dim := model.DiT().Config().CapFeatDim
	hidden := make([]float32, 3*dim)
	for i := range hidden {
		hidden[i] = float32(math.Sin(float64(i)))
	}
	cond := &Conditioning{Entries: []CondEntry{{Tokens: 3, Dim: dim, Hidden: hidden}}}
	el := NewInputs()
	el.Set("width", intIn(32))
	el.Set("height", intIn(32))
	el.Set("batch_size", intIn(1))
	latent := exec(t, "EmptySD3LatentImage", el, env).Values[0].(*Latent)
	for _, name := range sampling.Samplers() {
		for _, cfg := range []float64{1, 2} {
			t.Run(fmt.Sprintf("%s/cfg=%v", name, cfg), func(t *testing.T) {
				ks := NewInputs()
				ks.Set("model", model)
				ks.Set("seed", big.NewInt(7))
				ks.Set("steps", intIn(3))
				ks.Set("cfg", cfg)
				ks.Set("sampler_name", name)
				ks.Set("scheduler", "simple")
				ks.Set("positive", cond)
				ks.Set("negative", cond)
				ks.Set("latent_image", latent)
				ks.Set("denoise", 1.0)
				got := exec(t, "KSampler", ks, env).Values[0].(*Latent)
				if len(got.Samples) != len(latent.Samples) {
					t.Fatalf("latent has %d values, want %d", len(got.Samples), len(latent.Samples))
				}
				for i, v := range got.Samples {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("latent value %d is %v", i, v)
					}
				}
			})
		}
	}
}
