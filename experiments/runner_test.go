package experiments

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/fixture"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// fixtureEnv writes the test fixture models and returns folders around them.
func fixtureEnv(t testing.TB) nodes.Env {
	t.Helper()
	dir := t.TempDir()
	if _, err := fixture.Write(filepath.Join(dir, "models"), fixture.Options{}); err != nil {
		t.Fatal(err)
	}
	env := nodes.Env{ModelsDir: filepath.Join(dir, "models"), OutputDir: filepath.Join(dir, "output"),
		InputDir: filepath.Join(dir, "input"), TempDir: filepath.Join(dir, "temp")}
	for _, d := range []string{env.OutputDir, env.InputDir, env.TempDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// small is a fast generation on the fixture.
func small(edit func(p *build.Params)) build.Params {
	p := build.Defaults()
	p.Prompt = "a cat"
	p.Width, p.Height, p.Steps = 128, 128, 2
	if edit != nil {
		edit(&p)
	}
	return p
}

func TestRunnerRun(t *testing.T) {
	env := fixtureEnv(t)
	r := NewRunner(env)
	defer r.Close()
	var steps []Progress
	var started []string
	r.OnProgress = func(p Progress) { steps = append(steps, p) }
	r.OnNode = func(id, class, title string) { started = append(started, class) }

	prompt, err := build.Build(small(func(p *build.Params) { p.Multipass = build.TwoPass; p.Width, p.Height = 256, 256 }))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || !strings.HasPrefix(res.Images[0], env.OutputDir) {
		t.Fatalf("images %v", res.Images)
	}
	if w, h, err := decodeSize(res.Images[0]); err != nil || w != 256 || h != 256 {
		t.Fatalf("image %dx%d, %v", w, h, err)
	}
	if len(steps) != 4 || steps[0].Pass != 0 || steps[3].Pass != 1 || steps[3].Passes != 2 || steps[3].Step != 2 || steps[3].Steps != 2 {
		t.Fatalf("progress %+v", steps)
	}
	if started[0] != "UNETLoader" || len(started) != len(prompt.Keys()) {
		t.Fatalf("nodes started %v", started)
	}
	if res.Wall <= 0 || res.Loading <= 0 || res.Generation() <= 0 || res.Generation() >= res.Wall {
		t.Fatalf("times wall %v loading %v", res.Wall, res.Loading)
	}
	if res.PeakRSS <= 0 || !res.PeakRSSExact {
		t.Errorf("peak RSS %d (exact %v)", res.PeakRSS, res.PeakRSSExact)
	}

	// A second run keeps the models loaded: no loading time, the loaders answered from cache.
	prompt2, _ := build.Build(small(func(p *build.Params) { p.Seed = 7 }))
	res2, err := r.Run(context.Background(), prompt2)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Loading != 0 {
		t.Errorf("second run spent %v loading models", res2.Loading)
	}
	for _, id := range res2.Ran {
		if id == "1" || id == "2" || id == "3" {
			t.Errorf("loader %s ran again", id)
		}
	}
}

func TestRunnerErrors(t *testing.T) {
	env := fixtureEnv(t)
	r := NewRunner(env)
	defer r.Close()

	// Validation: a model file that is not there.
	prompt, _ := build.Build(small(func(p *build.Params) { p.VAE = "missing.safetensors" }))
	_, err := r.Run(context.Background(), prompt)
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `node 3 "Load VAE" (VAELoader)`) ||
		!strings.Contains(err.Error(), "missing.safetensors") {
		t.Fatalf("error %v", err)
	}

	// Interruption: a cancelled context stops the run and says so.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	prompt, _ = build.Build(small(nil))
	res, err := r.Run(ctx, prompt)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v", err)
	}
	if res == nil || len(res.Images) != 0 {
		t.Fatalf("an interrupted run saved %v", res)
	}
	entries, _ := os.ReadDir(env.OutputDir)
	if len(entries) != 0 {
		t.Fatalf("output folder has %d entries after an interrupted run", len(entries))
	}

	// An execution error: an input image that is not a PNG passes validation but fails to load.
	if err := os.WriteFile(filepath.Join(env.InputDir, "bad.png"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	prompt, _ = build.Build(small(func(p *build.Params) { p.Image = "bad.png" }))
	if _, err := r.Run(context.Background(), prompt); err == nil || !strings.Contains(err.Error(), "the workflow failed") {
		t.Fatalf("error %v", err)
	}
}

func TestResolveModels(t *testing.T) {
	root := t.TempDir()
	full := filepath.Join(root, "full")
	if _, err := fixture.Write(full, fixture.Options{}); err != nil {
		t.Fatal(err)
	}
	// A folder whose files have other names: the only file of each folder is used.
	renamed := filepath.Join(root, "renamed")
	for _, mv := range [][2]string{
		{"diffusion_models/z_image_turbo_bf16", "unet/zit"}, {"text_encoders/qwen_3_4b", "clip/q"}, {"vae/ae", "vae/flux_ae"},
	} {
		for _, ext := range []string{".safetensors", ".config.json"} {
			copyFile(t, filepath.Join(full, mv[0]+ext), filepath.Join(renamed, mv[1]+ext))
		}
	}
	copyFile(t, filepath.Join(full, "text_encoders/qwen_3_4b.tokenizer.json"), filepath.Join(renamed, "clip/q.tokenizer.json"))
	// Two diffusion models and neither official: ambiguous.
	two := filepath.Join(root, "two")
	copyFile(t, filepath.Join(renamed, "unet/zit.safetensors"), filepath.Join(two, "diffusion_models/a.safetensors"))
	copyFile(t, filepath.Join(renamed, "unet/zit.safetensors"), filepath.Join(two, "diffusion_models/b.safetensors"))
	// A diffusers folder of single files, and one with a sharded transformer.
	diff := filepath.Join(root, "diffusers")
	writeText(t, filepath.Join(diff, "model_index.json"), "{}")
	copyFile(t, filepath.Join(full, "diffusion_models/z_image_turbo_bf16.safetensors"), filepath.Join(diff, "transformer/diffusion_pytorch_model.safetensors"))
	copyFile(t, filepath.Join(full, "text_encoders/qwen_3_4b.safetensors"), filepath.Join(diff, "text_encoder/model.safetensors"))
	copyFile(t, filepath.Join(full, "vae/ae.safetensors"), filepath.Join(diff, "vae/diffusion_pytorch_model.safetensors"))
	copyFile(t, filepath.Join(full, "text_encoders/qwen_3_4b.tokenizer.json"), filepath.Join(diff, "tokenizer/tokenizer.json"))
	// The tiny models need their sidecars, which travel beside the weights.
	copyFile(t, filepath.Join(full, "diffusion_models/z_image_turbo_bf16.config.json"), filepath.Join(diff, "transformer/diffusion_pytorch_model.config.json"))
	copyFile(t, filepath.Join(full, "text_encoders/qwen_3_4b.config.json"), filepath.Join(diff, "text_encoder/model.config.json"))
	copyFile(t, filepath.Join(full, "vae/ae.config.json"), filepath.Join(diff, "vae/diffusion_pytorch_model.config.json"))
	sharded := filepath.Join(root, "sharded")
	writeText(t, filepath.Join(sharded, "model_index.json"), "{}")
	writeText(t, filepath.Join(sharded, "transformer/diffusion_pytorch_model.safetensors.index.json"), "{}")
	writeText(t, filepath.Join(sharded, "transformer/diffusion_pytorch_model-00001-of-00002.safetensors"), "")

	cases := []struct {
		name    string
		path    string
		names   ModelNames
		want    [3]string
		wantErr string
	}{
		{"official names", full, ModelNames{}, [3]string{build.DefaultDiT, build.DefaultTextEncoder, build.DefaultVAE}, ""},
		{"only files", renamed, ModelNames{}, [3]string{"zit.safetensors", "q.safetensors", "flux_ae.safetensors"}, ""},
		{"explicit names", renamed, ModelNames{DiT: "zit.safetensors"}, [3]string{"zit.safetensors", "q.safetensors", "flux_ae.safetensors"}, ""},
		{"explicit name missing", full, ModelNames{VAE: "other.safetensors"}, [3]string{}, `VAE "other.safetensors" not found in`},
		{"ambiguous", two, ModelNames{}, [3]string{}, "several diffusion model files"},
		{"empty folders", two, ModelNames{DiT: "a.safetensors"}, [3]string{}, "no text encoder in"},
		{"missing path", filepath.Join(root, "nope"), ModelNames{}, [3]string{}, "does not exist"},
		{"a file", filepath.Join(full, fixture.ReadmeName), ModelNames{}, [3]string{}, "is a file"},
		{"diffusers", diff, ModelNames{}, [3]string{"transformer.safetensors", "text_encoder.safetensors", "vae.safetensors"}, ""},
		{"sharded diffusers", sharded, ModelNames{}, [3]string{}, "sharded diffusers components are not supported yet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ResolveModels(c.path, c.names)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := [3]string{m.DiT, m.TextEncoder, m.VAE}; got != c.want {
				t.Fatalf("names %v, want %v", got, c.want)
			}
			// The resolved folder runs a generation.
			env := nodes.Env{ModelsDir: m.Dir, OutputDir: t.TempDir()}
			r := NewRunner(env)
			defer r.Close()
			p := small(nil)
			p.DiT, p.TextEncoder, p.VAE = m.DiT, m.TextEncoder, m.VAE
			prompt, err := build.Build(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Run(context.Background(), prompt); err != nil {
				t.Fatal(err)
			}
			if m.Diffusers {
				dir := m.Dir
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Fatalf("temporary folder %s left behind", dir)
				}
			}
		})
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, dst, string(data))
}

func writeText(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
