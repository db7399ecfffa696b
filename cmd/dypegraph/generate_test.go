package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/experiments"
	"github.com/dypegraph/dypegraph/models/fixture"
	"github.com/dypegraph/dypegraph/nodes"
)

// fixtureModels writes the test fixture into a temporary folder.
func fixtureModels(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	if _, err := fixture.Write(dir, fixture.Options{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pngInfo reads a PNG's size and text chunks.
func pngInfo(t *testing.T, path string) (int, int, map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	texts, err := nodes.ReadPNGText(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Width, cfg.Height, texts
}

func classCounts(t *testing.T, prompt string) map[string]int {
	t.Helper()
	var wf map[string]struct {
		ClassType string `json:"class_type"`
	}
	if err := json.Unmarshal([]byte(prompt), &wf); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, n := range wf {
		out[n.ClassType]++
	}
	return out
}

// TestGenerate runs generate on the fixture in each mode and checks the PNG: size, prompt and
// workflow chunks, and the nodes the workflow used.
func TestGenerate(t *testing.T) {
	models := fixtureModels(t)
	upscale, err := os.ReadFile(filepath.Join("..", "..", "models", "upscale", "testdata", "esrgan_x4_old.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(models, "upscale_models"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "upscale_models", "4x.safetensors"), upscale, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "in.png")
	src := image.NewRGBA(image.Rect(0, 0, 200, 136))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(input, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		w, h    int
		classes map[string]int
	}{
		{"txt2img", []string{"--width", "128", "--height", "192"}, 128, 192,
			map[string]int{"EmptySD3LatentImage": 1, "KSampler": 1, "VAEDecode": 1, "DyPE_FLUX": 0, "ModelSamplingAuraFlow": 1}},
		{"dype tiled", []string{"--width", "256", "--height", "192", "--dype", "--dype-method", "ntk", "--dype-mode", "comfy",
			"--dype-base-resolution", "256", "--tiled-vae", "--tile-size", "256", "--tile-overlap", "64"}, 256, 192,
			map[string]int{"DyPE_FLUX": 1, "VAEDecodeTiled": 1, "VAEDecode": 0}},
		{"img2img keeps the image size", []string{"--img2img", input, "--strength", "0.5"}, 192, 128,
			map[string]int{"LoadImage": 1, "ImageScale": 1, "VAEEncode": 1, "EmptySD3LatentImage": 0}},
		{"img2img at a given size", []string{"--img2img", input, "--width", "128", "--height", "128"}, 128, 128,
			map[string]int{"LoadImage": 1}},
		{"twopass", []string{"--width", "256", "--height", "256", "--multipass", "twopass", "--dype", "--pass2-strength", "0.6"}, 256, 256,
			map[string]int{"KSampler": 2, "ImageScale": 1, "VAEEncode": 1, "DyPE_FLUX": 1}},
		{"twopass with an upscale model", []string{"--width", "256", "--height", "256", "--multipass", "twopass", "--upscale-model", "4x.safetensors"}, 256, 256,
			map[string]int{"KSampler": 2, "UpscaleModelLoader": 1, "ImageUpscaleWithModel": 1, "ImageScale": 1}},
		{"threepass", []string{"--width", "256", "--height", "256", "--multipass", "threepass", "--shift", "0", "--cfg", "2", "--negative-prompt", "blur"}, 256, 256,
			map[string]int{"KSampler": 3, "ImageScale": 2, "ModelSamplingAuraFlow": 0, "CLIPTextEncode": 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".png")
			args := append([]string{"generate", "--model-path", models, "--steps", "2", "--output", out}, c.args...)
			args = append(args, "a", "small", "fox")
			start := time.Now()
			code, stdout, stderr := runCLI(args...)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			t.Logf("%s: %.2fs", c.name, time.Since(start).Seconds())
			if !strings.Contains(stdout, "wrote "+out) {
				t.Errorf("stdout %q", stdout)
			}
			w, h, texts := pngInfo(t, out)
			if w != c.w || h != c.h {
				t.Fatalf("image %dx%d, want %dx%d", w, h, c.w, c.h)
			}
			if !strings.Contains(texts["prompt"], `"text": "a small fox"`) {
				t.Errorf("prompt chunk %.300s", texts["prompt"])
			}
			if !strings.Contains(texts["workflow"], `"nodes": [`) || !strings.Contains(texts["workflow"], `"links": [`) {
				t.Errorf("workflow chunk %.300s", texts["workflow"])
			}
			got := classCounts(t, texts["prompt"])
			for class, n := range c.classes {
				if got[class] != n {
					t.Errorf("%d %s nodes, want %d (%v)", got[class], class, n, got)
				}
			}
			// Plain progress lines (stderr is not a terminal): nodes and sampler steps.
			if !strings.Contains(stderr, "step 2/2") || !strings.Contains(stderr, "it/s") || !strings.Contains(stderr, "Load Diffusion Model\n") {
				t.Errorf("progress output %q", stderr)
			}
			// No temporary folders are left beside the output.
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".dypegraph-generate-") {
					t.Errorf("left behind %s", e.Name())
				}
			}
		})
	}
}

// TestGenerateProfileAndSaveWorkflow: a TOML profile sets values, flags override them, and
// --save-workflow writes the workflow that ran.
func TestGenerateProfileAndSaveWorkflow(t *testing.T) {
	models := fixtureModels(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	body := "[small]\nmodel_path = " + quoteTOML(models) + "\n\n[small.generation]\nwidth = 128\nheight = 128\nsteps = 2\nseed = 5\n\n" +
		"[small.dype]\nenabled = true\nmethod = \"yarn\"\nmode = \"comfy\"\n\n[small.pytorch]\ntiled_vae = true\ntile_size = 256\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "p.png")
	saved := filepath.Join(dir, "wf.json")
	code, stdout, stderr := runCLI("generate", "--config", cfg, "--profile", "small", "--height", "160", "--seed", "9",
		"--output", out, "--save-workflow", saved, "fox")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	w, h, texts := pngInfo(t, out)
	if w != 128 || h != 160 {
		t.Fatalf("image %dx%d, want 128x160 (width from the profile, height from the flag)", w, h)
	}
	data, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	var wf map[string]struct {
		ClassType string         `json:"class_type"`
		Inputs    map[string]any `json:"inputs"`
	}
	if err := json.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	var sawDyPE, sawSampler bool
	for _, n := range wf {
		switch n.ClassType {
		case "DyPE_FLUX":
			sawDyPE = n.Inputs["method"] == "yarn" && n.Inputs["position_mode"] == "comfy" && n.Inputs["height"] == 160.0
		case "KSampler":
			sawSampler = n.Inputs["seed"] == 9.0 && n.Inputs["steps"] == 2.0
		case "VAEDecodeTiled":
			if n.Inputs["tile_size"] != 256.0 {
				t.Errorf("tile size %v", n.Inputs["tile_size"])
			}
		}
	}
	if !sawDyPE || !sawSampler {
		t.Fatalf("saved workflow does not carry the profile and flags:\n%s", data)
	}
	if classCounts(t, texts["prompt"])["DyPE_FLUX"] != 1 {
		t.Fatal("the PNG's prompt is not the saved workflow")
	}
}

func quoteTOML(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestGenerateErrors: bad arguments exit 2 with a message that says what to do, and write
// nothing; an unavailable device exits 1.
func TestGenerateErrors(t *testing.T) {
	models := fixtureModels(t)
	dir := t.TempDir()
	badTOML := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badTOML, []byte("[p.dype]\nscale = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notImage := filepath.Join(dir, "x.png")
	if err := os.WriteFile(notImage, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.png")
	tiny := filepath.Join(dir, "tiny.png")
	for path, size := range map[string]int{good: 64, tiny: 8} {
		var b bytes.Buffer
		if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, size, size))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out.png")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no prompt", []string{}, 2, "no PROMPT given"},
		{"width not multiple of 16", []string{"--width", "1000", "x"}, 2, "width 1000 is not a multiple of 16 (Z-Image works on 16-pixel tokens); try 992 or 1008"},
		{"height too big", []string{"--height", "20000", "x"}, 2, "height 20000 is out of range"},
		{"DyPE too big", []string{"--dype", "--width", "9216", "x"}, 2, "16 to 8192"},
		{"bad sampler", []string{"--sampler", "dpm_fast", "x"}, 2, `sampler "dpm_fast" is not available`},
		{"bad method", []string{"--dype", "--dype-method", "pi", "x"}, 2, `DyPE method "pi"`},
		{"bad multipass", []string{"--multipass", "many", "x"}, 2, `multipass "many"`},
		{"multipass img2img", []string{"--multipass", "twopass", "--img2img", notImage, "x"}, 2, "--img2img:"},
		{"img2img missing", []string{"--img2img", filepath.Join(dir, "none.png"), "x"}, 2, "--img2img:"},
		{"img2img not an image", []string{"--img2img", notImage, "x"}, 2, "is not a readable image"},
		{"strength", []string{"--img2img", good, "--strength", "2", "x"}, 2, "strength 2 must be above 0 and at most 1"},
		{"tiny image", []string{"--img2img", tiny, "x"}, 2, "it must be at least 16 pixels"},
		{"tile size", []string{"--tiled-vae", "--tile-size", "100", "x"}, 2, "tile size 100"},
		{"unknown flag", []string{"--wdith", "512", "x"}, 2, "flag provided but not defined: -wdith"},
		{"bad device", []string{"--vae-device", "tpu", "x"}, 2, `--vae-device "tpu": want cpu or cuda`},
		{"cuda", []string{"--dit-device", "cuda", "--text-encoder-device", "cuda", "--vae-device", "cuda", "x"}, 1, "the CUDA backend is not available in this build"},
		{"unknown TOML key", []string{"--config", badTOML, "--profile", "p", "x"}, 2, "unknown key p.dype.scale (accepted: anisotropic"},
		{"profile without config", []string{"--profile", "p", "x"}, 2, "--profile needs --config FILE"},
		{"missing config", []string{"--config", filepath.Join(dir, "none.toml"), "x"}, 2, "--config:"},
		{"missing profile", []string{"--config", badTOML, "--profile", "q", "x"}, 2, `profile "q" not found`},
		{"missing models", []string{"--model-path", filepath.Join(dir, "nomodels"), "x"}, 2, "does not exist: give a ComfyUI models folder"},
		{"empty models", []string{"--model-path", dir, "x"}, 2, "no diffusion model in"},
		{"output is a folder", []string{"--output", dir, "x"}, 2, "is a folder; give a file name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"generate"}
			if c.name != "output is a folder" {
				args = append(args, "--output", out)
			}
			if !strings.HasPrefix(c.name, "missing models") && !strings.HasPrefix(c.name, "empty models") {
				args = append(args, "--model-path", models)
			}
			code, stdout, stderr := runCLI(append(args, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d (want %d)\nstderr %s\nwant %q", code, c.code, stderr, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("%s was written", out)
			}
		})
	}
}

func TestGenerateNotes(t *testing.T) {
	models := fixtureModels(t)
	out := filepath.Join(t.TempDir(), "n.png")
	code, _, stderr := runCLI("generate", "--model-path", models, "--width", "64", "--height", "64", "--steps", "1", "--output", out,
		"--dype-scale", "3", "--tile-size", "256", "--strength", "0.3", "--pass2-strength", "0.3", "--negative-prompt", "x", "fox")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"--dype-scale has no effect without --dype", "--tile-size has no effect without --tiled-vae",
		"--strength has no effect without --img2img", "--pass2-strength has no effect without --multipass",
		"--negative-prompt has no effect with --cfg 1"} {
		if !strings.Contains(stderr, "dypegraph generate: note: "+want) {
			t.Errorf("no note %q in %s", want, stderr)
		}
	}
}

// TestGenerateInterrupted: a cancelled run (Ctrl-C) stops cleanly, exits 1 and writes no file.
func TestGenerateInterrupted(t *testing.T) {
	models := fixtureModels(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.png")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := generate(ctx, []string{"--model-path", models, "--width", "128", "--height", "128", "--steps", "2", "--output", out, "x"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "interrupted; no image written") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("an interrupted run wrote its output")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left %v behind", entries)
	}
}

func TestProgressPrinter(t *testing.T) {
	clock := time.Unix(100, 0)
	for _, tty := range []bool{false, true} {
		var b bytes.Buffer
		p := newProgressPrinter(&b, tty)
		p.now = func() time.Time { return clock }
		p.node("1", "UNETLoader", "Load Diffusion Model")
		p.node("8", "KSampler", "KSampler (pass 2/2)")
		clock = clock.Add(2 * time.Second)
		p.step(experiments.Progress{Node: "8", Pass: 1, Passes: 2, Step: 2, Steps: 8})
		p.finish()
		s := b.String()
		if tty {
			want := "\r\x1b[Kpass 2/2 |" + strings.Repeat("█", 7) + strings.Repeat("░", 23) + "| 2/8  1.00 it/s  ETA 6.0s"
			if !strings.Contains(s, want) || !strings.HasSuffix(s, "\r\x1b[K") || strings.Contains(s, "\n") {
				t.Errorf("terminal output %q\nwant it to contain %q", s, want)
			}
		} else if s != "Load Diffusion Model\nKSampler (pass 2/2)\npass 2/2 step 2/8  1.00 it/s  ETA 6.0s\n" {
			t.Errorf("plain output %q", s)
		}
	}
	for _, c := range []struct {
		s    float64
		want string
	}{{4.25, "4.2s"}, {125, "2m05s"}, {3725, "1h02m"}} {
		if got := formatSeconds(c.s); got != c.want {
			t.Errorf("formatSeconds(%v) = %q, want %q", c.s, got, c.want)
		}
	}
	if progressBar(20, 10, 4) != "|████|" || progressBar(-1, 0, 2) != "|░░|" {
		t.Errorf("bar %q %q", progressBar(20, 10, 4), progressBar(-1, 0, 2))
	}
}
