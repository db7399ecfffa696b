package executor

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
	"github.com/dypegraph/dypegraph/nodes"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// goldenModels lays the tiny golden models out in ComfyUI's folders: the DiT, the Qwen3 encoder
// (with the byte-level fixture tokenizer, whose ids fit its vocabulary) and the VAE.
func goldenModels(t *testing.T) nodes.Env {
	t.Helper()
	m := golden.MustLoad(t)
	dir := t.TempDir()
	env := nodes.Env{ModelsDir: filepath.Join(dir, "models"), InputDir: filepath.Join(dir, "input"),
		OutputDir: filepath.Join(dir, "output"), TempDir: filepath.Join(dir, "temp")}
	weights := func(key string) string {
		var v struct {
			File    string `json:"file"`
			Weights struct {
				File string `json:"file"`
			} `json:"weights"`
		}
		if err := json.Unmarshal(m.Top[key], &v); err != nil {
			t.Fatalf("manifest %s: %v", key, err)
		}
		if v.File != "" {
			return v.File
		}
		return v.Weights.File
	}
	place := func(file, folder, name string) {
		stem := strings.TrimSuffix(file, ".safetensors")
		copyFile(t, m.Path(file), filepath.Join(env.ModelsDir, folder, name+".safetensors"))
		copyFile(t, m.Path(stem+".config.json"), filepath.Join(env.ModelsDir, folder, name+".config.json"))
	}
	place(weights("dit_weights"), "diffusion_models", "tiny_dit")
	place(weights("vae_config"), "vae", "tiny_ae")
	place("qwen3_tiny_weights.safetensors", "text_encoders", "tiny_qwen3")
	tok, err := tokenizer.FixtureJSON()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(env.ModelsDir, "text_encoders", "tiny_qwen3.tokenizer.json"), tok, 0o644)
	return env
}

// TestZImageGraphWithGoldenModels runs the official Z-Image template's graph (text encoder,
// ConditioningZeroOut negative, ModelSamplingAuraFlow, res_multistep, VAE decode, SaveImage)
// through validation and the executor on the tiny golden models.
func TestZImageGraphWithGoldenModels(t *testing.T) {
	env := goldenModels(t)
	prompt := `{
 "28": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_dit.safetensors", "weight_dtype": "default"}},
 "30": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_qwen3.safetensors", "type": "lumina2", "device": "default"}},
 "29": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
 "11": {"class_type": "ModelSamplingAuraFlow", "inputs": {"shift": 3, "model": ["28", 0]}},
 "27": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": ["30", 0]}},
 "33": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["27", 0]}},
 "13": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 96, "height": 64, "batch_size": 1}},
 "3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615, "steps": 3, "cfg": 1, "sampler_name": "res_multistep", "scheduler": "simple", "denoise": 1,
        "model": ["11", 0], "positive": ["27", 0], "negative": ["33", 0], "latent_image": ["13", 0]}},
 "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["29", 0]}},
 "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "z-image-turbo", "images": ["8", 0]}}
}`
	wf, err := graph.ParseAPI([]byte(prompt))
	if err != nil {
		t.Fatal(err)
	}
	res := graph.Validate(wf, nodes.Default(), env, nil)
	if !res.OK() {
		b, _ := json.Marshal(res.ErrorResponse(wf.Order))
		t.Fatalf("validation: %s", b)
	}
	ex := New(nodes.Default(), env)
	defer ex.ClearCache()
	rec := &recorder{}
	out := ex.Run(context.Background(), &Request{PromptID: "p", Workflow: wf, Validation: res}, rec)
	if !out.Success {
		t.Fatalf("run failed: %v (events %v)", out.Err, rec.types())
	}
	progress := 0
	for _, ty := range rec.types() {
		if ty == "progress" {
			progress++
		}
	}
	if progress != 3 {
		t.Fatalf("%d progress events for 3 steps", progress)
	}
	f, err := os.Open(filepath.Join(env.OutputDir, "z-image-turbo_00001_.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 96 || img.Bounds().Dy() != 64 {
		t.Fatalf("image %v, want 96x64", img.Bounds())
	}
	// A second run with another seed reuses every loader from the cache.
	wf2, _ := graph.ParseAPI([]byte(strings.Replace(prompt, "18446744073709551615", "7", 1)))
	res2 := graph.Validate(wf2, nodes.Default(), env, nil)
	rec2 := &recorder{}
	if out := ex.Run(context.Background(), &Request{PromptID: "p2", Workflow: wf2, Validation: res2}, rec2); !out.Success {
		t.Fatalf("second run: %v", out.Err)
	}
	if got := strings.Join(rec2.executing(), ","); got != "3,8,9" {
		t.Fatalf("second run executed %s, want only the sampler, the decode and the save", got)
	}
}

// TestDyPEGraph runs UNETLoader → DyPE_FLUX → ModelSamplingAuraFlow → KSampler in both position
// modes above the DyPE base resolution and checks that the patch changes the image while a
// plain run stays reproducible.
func TestDyPEGraph(t *testing.T) {
	env := goldenModels(t)
	base := `{
 "28": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_dit.safetensors", "weight_dtype": "default"}},
 "30": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_qwen3.safetensors", "type": "lumina2"}},
 "29": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
 "40": {"class_type": "DyPE_FLUX", "inputs": {"model": ["28", 0], "width": 512, "height": 384, "model_type": "auto", "method": "%METHOD%",
        "yarn_alt_scaling": false, "enable_dype": true, "base_resolution": 256, "dype_start_sigma": 1.0, "dype_scale": 2.0, "dype_exponent": 2.0,
        "base_shift": 0.5, "max_shift": 1.15, "position_mode": "%MODE%"}},
 "11": {"class_type": "ModelSamplingAuraFlow", "inputs": {"shift": 3, "model": [%MODEL%, 0]}},
 "27": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["30", 0]}},
 "13": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 512, "height": 384, "batch_size": 1}},
 "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 1, "sampler_name": "euler", "scheduler": "simple", "denoise": 1,
        "model": ["11", 0], "positive": ["27", 0], "negative": ["27", 0], "latent_image": ["13", 0]}},
 "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["29", 0]}},
 "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "%PREFIX%", "images": ["8", 0]}}
}`
	ex := New(nodes.Default(), env)
	defer ex.ClearCache()
	run := func(method, mode, model, prefix string) []byte {
		t.Helper()
		p := strings.NewReplacer("%METHOD%", method, "%MODE%", mode, "%MODEL%", model, "%PREFIX%", prefix).Replace(base)
		wf, err := graph.ParseAPI([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		res := graph.Validate(wf, nodes.Default(), env, nil)
		if !res.OK() {
			b, _ := json.Marshal(res.ErrorResponse(wf.Order))
			t.Fatalf("validation: %s", b)
		}
		if out := ex.Run(context.Background(), &Request{PromptID: prefix, Workflow: wf, Validation: res}, &recorder{}); !out.Success {
			t.Fatalf("%s: %v", prefix, out.Err)
		}
		data, err := os.ReadFile(filepath.Join(env.OutputDir, prefix+"_00001_.png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(strings.NewReader(string(data)))
		if err != nil || img.Bounds().Dx() != 512 || img.Bounds().Dy() != 384 {
			t.Fatalf("%s: image %v %v", prefix, img.Bounds(), err)
		}
		// Compare pixels only: the PNG text chunks differ between prompts anyway.
		var pix []byte
		for y := 0; y < 384; y++ {
			for x := 0; x < 512; x++ {
				r, g, b, _ := img.At(x, y).RGBA()
				pix = append(pix, byte(r>>8), byte(g>>8), byte(b>>8))
			}
		}
		return pix
	}
	plain := run("vision_yarn", "comfy", `"28"`, "plain")
	if again := run("vision_yarn", "comfy", `"28"`, "plain_again"); string(again) != string(plain) {
		t.Fatal("the same plain graph gave different pixels")
	}
	for _, c := range []struct{ method, mode string }{{"vision_yarn", "comfy"}, {"yarn", "comfy"}, {"ntk", "llm_dit"}, {"vision_yarn", "llm_dit"}} {
		got := run(c.method, c.mode, `"40"`, "dype_"+c.method+"_"+c.mode)
		if string(got) == string(plain) {
			t.Errorf("DyPE %s/%s did not change the image", c.method, c.mode)
		}
	}
}
