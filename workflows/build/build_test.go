package build_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/models/fixture"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows/build"
)

func params(edit func(p *build.Params)) build.Params {
	p := build.Defaults()
	p.Prompt = "a fox"
	if edit != nil {
		edit(&p)
	}
	return p
}

// node returns a built node's class and inputs.
func node(t *testing.T, prompt *ojson.Object, id string) (string, *ojson.Object) {
	t.Helper()
	v, ok := prompt.Get(id)
	if !ok {
		t.Fatalf("no node %s", id)
	}
	n := v.(*ojson.Object)
	c, _ := n.Get("class_type")
	in, _ := n.Get("inputs")
	return c.(string), in.(*ojson.Object)
}

// classes lists the class of every node in id order.
func classes(t *testing.T, prompt *ojson.Object) []string {
	var out []string
	for _, id := range prompt.Keys() {
		c, _ := node(t, prompt, id)
		out = append(out, c)
	}
	return out
}

// inputsOf returns the named input of every node of a class, in id order, as JSON text.
func inputsOf(t *testing.T, prompt *ojson.Object, class, input string) []string {
	var out []string
	for _, id := range prompt.Keys() {
		c, in := node(t, prompt, id)
		if c != class {
			continue
		}
		v, ok := in.Get(input)
		if !ok {
			out = append(out, "<absent>")
			continue
		}
		b, _ := ojson.Marshal(v)
		out = append(out, string(b))
	}
	return out
}

func TestBuild(t *testing.T) {
	cases := []struct {
		name    string
		params  build.Params
		classes []string
		// checks: class.input → values in id order
		checks map[string][]string
	}{
		{
			name:   "txt2img",
			params: params(nil),
			classes: []string{"UNETLoader", "CLIPLoader", "VAELoader", "CLIPTextEncode", "ConditioningZeroOut",
				"EmptySD3LatentImage", "ModelSamplingAuraFlow", "KSampler", "VAEDecode", "SaveImage"},
			checks: map[string][]string{
				"KSampler.steps": {"9"}, "KSampler.cfg": {"1.0"}, "KSampler.seed": {"42"}, "KSampler.denoise": {"1.0"},
				"KSampler.sampler_name": {`"euler"`}, "ModelSamplingAuraFlow.shift": {"3.0"},
				"EmptySD3LatentImage.width": {"1024"}, "CLIPLoader.type": {`"lumina2"`},
				"UNETLoader.unet_name": {`"z_image_turbo_bf16.safetensors"`},
			},
		},
		{
			name: "negative prompt, shift 0, big seed",
			params: params(func(p *build.Params) {
				p.NegativePrompt = "blurry"
				p.Shift = 0
				p.CFG = 4
				p.Seed = 18446744073709551615
			}),
			classes: []string{"UNETLoader", "CLIPLoader", "VAELoader", "CLIPTextEncode", "CLIPTextEncode",
				"EmptySD3LatentImage", "KSampler", "VAEDecode", "SaveImage"},
			checks: map[string][]string{
				"CLIPTextEncode.text": {`"a fox"`, `"blurry"`}, "KSampler.seed": {"18446744073709551615"},
				"KSampler.model": {`["1",0]`}, "KSampler.cfg": {"4.0"},
			},
		},
		{
			name: "DyPE tiled 2K",
			params: params(func(p *build.Params) {
				p.Width, p.Height = 2048, 1536
				p.DyPE.Enabled = true
				p.DyPE.Method = "yarn"
				p.DyPE.Anisotropic = true
				p.TiledVAE = true
			}),
			classes: []string{"UNETLoader", "CLIPLoader", "VAELoader", "CLIPTextEncode", "ConditioningZeroOut",
				"EmptySD3LatentImage", "DyPE_FLUX", "ModelSamplingAuraFlow", "KSampler", "VAEDecodeTiled", "SaveImage"},
			checks: map[string][]string{
				"DyPE_FLUX.width": {"2048"}, "DyPE_FLUX.height": {"1536"}, "DyPE_FLUX.method": {`"yarn"`},
				"DyPE_FLUX.yarn_alt_scaling": {"true"}, "DyPE_FLUX.position_mode": {`"llm_dit"`},
				"ModelSamplingAuraFlow.model": {`["7",0]`}, "VAEDecodeTiled.tile_size": {"512"}, "VAEDecodeTiled.overlap": {"64"},
			},
		},
		{
			name: "DyPE without position mode (portable)",
			params: params(func(p *build.Params) {
				p.DyPE.Enabled = true
				p.DyPE.Mode = ""
			}),
			checks: map[string][]string{"DyPE_FLUX.position_mode": {"<absent>"}},
		},
		{
			name: "img2img",
			params: params(func(p *build.Params) {
				p.Image = "in.png"
				p.Strength = 0.6
				p.Width, p.Height = 512, 768
			}),
			classes: []string{"UNETLoader", "CLIPLoader", "VAELoader", "CLIPTextEncode", "ConditioningZeroOut",
				"LoadImage", "ImageScale", "VAEEncode", "ModelSamplingAuraFlow", "KSampler", "VAEDecode", "SaveImage"},
			checks: map[string][]string{
				"KSampler.denoise": {"0.6"}, "ImageScale.width": {"512"}, "ImageScale.height": {"768"},
				"ImageScale.crop": {`"center"`}, "LoadImage.image": {`"in.png"`},
			},
		},
		{
			name: "twopass with DyPE",
			params: params(func(p *build.Params) {
				p.Width, p.Height = 2048, 2048
				p.Multipass = build.TwoPass
				p.DyPE.Enabled = true
				p.TiledVAE = true
			}),
			checks: map[string][]string{
				"EmptySD3LatentImage.width": {"1024"}, "KSampler.denoise": {"1.0", "0.5"},
				"DyPE_FLUX.width": {"2048"}, "ImageScale.width": {"2048"}, "ImageScale.upscale_method": {`"lanczos"`},
				"VAEEncodeTiled.tile_size": {"512"}, "VAEDecodeTiled.tile_size": {"512", "512"},
			},
		},
		{
			name: "threepass with an upscale model",
			params: params(func(p *build.Params) {
				p.Width, p.Height = 2048, 2048
				p.Multipass = build.ThreePass
				p.UpscaleModel = "4x.safetensors"
			}),
			checks: map[string][]string{
				"UpscaleModelLoader.model_name":       {`"4x.safetensors"`},
				"ImageUpscaleWithModel.upscale_model": {`["10",0]`, `["10",0]`},
				"ImageScale.image":                    {`["11",0]`, `["16",0]`},
				"ImageScale.width":                    {"1024", "2048"},
			},
		},
		{
			name: "threepass",
			params: params(func(p *build.Params) {
				p.Width, p.Height = 4096, 2048
				p.Multipass = build.ThreePass
				p.Pass2Strength = 0.4
				p.DyPE.Enabled = true
			}),
			checks: map[string][]string{
				"EmptySD3LatentImage.width": {"1024"}, "EmptySD3LatentImage.height": {"512"},
				"KSampler.denoise": {"1.0", "0.6", "0.4"}, "ImageScale.width": {"2048", "4096"},
				"DyPE_FLUX.width": {"2048", "4096"}, "ModelSamplingAuraFlow.shift": {"3.0", "3.0", "3.0"},
				"VAEDecode.samples": {`["8",0]`, `["14",0]`, `["20",0]`},
			},
		},
		{
			name: "threepass without DyPE shares one model",
			params: params(func(p *build.Params) {
				p.Width, p.Height = 1024, 1024
				p.Multipass = build.ThreePass
			}),
			checks: map[string][]string{
				"ModelSamplingAuraFlow.model": {`["1",0]`}, "KSampler.model": {`["7",0]`, `["7",0]`, `["7",0]`},
				"EmptySD3LatentImage.width": {"256"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prompt, err := build.Build(c.params)
			if err != nil {
				t.Fatal(err)
			}
			if c.classes != nil && !reflect.DeepEqual(classes(t, prompt), c.classes) {
				t.Errorf("classes %v\nwant    %v", classes(t, prompt), c.classes)
			}
			for key, want := range c.checks {
				class, input, _ := strings.Cut(key, ".")
				if got := inputsOf(t, prompt, class, input); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want %v", key, got, want)
				}
			}
			if ks := build.KSamplers(prompt); len(ks) != len(inputsOf(t, prompt, "KSampler", "steps")) {
				t.Errorf("KSamplers %v", ks)
			}
		})
	}
}

func TestPasses(t *testing.T) {
	cases := []struct {
		mode   string
		w, h   int
		image  bool
		want   []build.Pass
		errSub string
	}{
		{build.Single, 1024, 768, false, []build.Pass{{1024, 768, 1}}, ""},
		{build.Single, 512, 512, true, []build.Pass{{512, 512, 0.75}}, ""},
		{build.TwoPass, 2048, 1200, false, []build.Pass{{1024, 592, 1}, {2048, 1200, 0.5}}, ""},
		{build.ThreePass, 4096, 4096, false, []build.Pass{{1024, 1024, 1}, {2048, 2048, 0.6}, {4096, 4096, 0.5}}, ""},
		{build.ThreePass, 48, 48, false, nil, "below the 16 px minimum"},
		{"fourpass", 1024, 1024, false, nil, "want single, twopass or threepass"},
	}
	for _, c := range cases {
		p := params(func(p *build.Params) {
			p.Multipass, p.Width, p.Height = c.mode, c.w, c.h
			if c.image {
				p.Image = "x.png"
			}
		})
		got, err := build.Passes(p)
		if c.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.errSub) {
				t.Errorf("%s %dx%d: error %v, want %q", c.mode, c.w, c.h, err, c.errSub)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %dx%d: %v, %v; want %v", c.mode, c.w, c.h, got, err, c.want)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(p *build.Params)
		want string
	}{
		{"width not multiple of 16", func(p *build.Params) { p.Width = 1000 }, "width 1000 is not a multiple of 16 (Z-Image works on 16-pixel tokens); try 992 or 1008"},
		{"height too small", func(p *build.Params) { p.Height = 0 }, "height 0 is out of range"},
		{"too large", func(p *build.Params) { p.Width = 16400 }, "out of range: it must be 16 to 16384"},
		{"DyPE too large", func(p *build.Params) { p.Width = 8208; p.DyPE.Enabled = true }, "16 to 8192"},
		{"steps", func(p *build.Params) { p.Steps = 0 }, "steps 0 must be 1 to 10000"},
		{"cfg", func(p *build.Params) { p.CFG = -1 }, "cfg -1 must be 0 to 100"},
		{"sampler", func(p *build.Params) { p.Sampler = "dpm_fast" }, `sampler "dpm_fast" is not available; choose one of euler`},
		{"scheduler", func(p *build.Params) { p.Scheduler = "fast" }, `scheduler "fast" is not available`},
		{"dype method", func(p *build.Params) { p.DyPE.Enabled = true; p.DyPE.Method = "pi" }, `DyPE method "pi"`},
		{"dype mode", func(p *build.Params) { p.DyPE.Enabled = true; p.DyPE.Mode = "x" }, `DyPE mode "x"`},
		{"dype scale", func(p *build.Params) { p.DyPE.Enabled = true; p.DyPE.Scale = 0 }, "DyPE scale 0 must be above 0"},
		{"dype base", func(p *build.Params) { p.DyPE.Enabled = true; p.DyPE.BaseResolution = 100 }, "base resolution 100"},
		{"tile size", func(p *build.Params) { p.TiledVAE = true; p.TileSize = 100 }, "tile size 100 must be a multiple of 32"},
		{"tile overlap", func(p *build.Params) { p.TiledVAE = true; p.TileOverlap = 512 }, "tile overlap 512"},
		{"strength", func(p *build.Params) { p.Image = "a.png"; p.Strength = 0 }, "strength 0 must be above 0"},
		{"multipass + img2img", func(p *build.Params) { p.Image = "a.png"; p.Multipass = build.TwoPass }, "img2img cannot be combined with multipass twopass"},
		{"pass2 strength", func(p *build.Params) { p.Multipass = build.TwoPass; p.Pass2Strength = 2 }, "pass2 strength 2"},
		{"upscale model without multipass", func(p *build.Params) { p.UpscaleModel = "4x.pth" }, "upscale model 4x.pth is used between the passes of a multipass generation"},
		{"multipass name", func(p *build.Params) { p.Multipass = "x" }, `multipass "x"`},
		{"weight dtype", func(p *build.Params) { p.WeightDType = "int4" }, `weight dtype "int4"`},
		{"model name", func(p *build.Params) { p.VAE = "" }, "no VAE file name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := params(c.edit)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if _, err := build.Build(p); err == nil {
				t.Fatal("Build accepted invalid params")
			}
		})
	}
	if err := params(nil).Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// TestBuiltWorkflowsValidate runs graph.Validate on built workflows against a fixture models
// folder: what the builder makes is what the nodes accept.
func TestBuiltWorkflowsValidate(t *testing.T) {
	dir := t.TempDir()
	if _, err := fixture.Write(filepath.Join(dir, "models"), fixture.Options{}); err != nil {
		t.Fatal(err)
	}
	env := nodes.Env{ModelsDir: filepath.Join(dir, "models"), InputDir: filepath.Join(dir, "input")}
	if err := os.MkdirAll(env.InputDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.InputDir, "in.png"), tinyPNG(t), 0o644); err != nil {
		t.Fatal(err)
	}
	upscale, err := os.ReadFile(filepath.Join("..", "..", "models", "upscale", "testdata", "esrgan_x4_old.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(env.ModelsDir, "upscale_models"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.ModelsDir, "upscale_models", "4x.safetensors"), upscale, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []build.Params{
		params(nil),
		params(func(p *build.Params) { p.DyPE.Enabled = true; p.TiledVAE = true; p.Width = 4096; p.Height = 2048 }),
		params(func(p *build.Params) { p.Image = "in.png"; p.TiledVAE = true }),
		params(func(p *build.Params) {
			p.Multipass = build.ThreePass
			p.DyPE.Enabled = true
			p.NegativePrompt = "x"
			p.Shift = 0
		}),
		params(func(p *build.Params) { p.Multipass = build.TwoPass; p.UpscaleModel = "4x.safetensors" }),
	} {
		prompt, err := build.Build(p)
		if err != nil {
			t.Fatal(err)
		}
		wf, err := graph.FromPrompt(prompt)
		if err != nil {
			t.Fatal(err)
		}
		res := graph.Validate(wf, nodes.Default(), env, nil)
		if !res.OK() || len(res.NodeErrors) > 0 {
			b, _ := ojson.Marshal(res.ErrorResponse(wf.Order))
			t.Fatalf("does not validate: %s", b)
		}
	}
}

// TestUIWorkflowRoundTrip renders built workflows in the editor format and converts them back
// with graph.ConvertUI: every node, link and literal comes back (an optional widget the prompt
// left out comes back as its default).
func TestUIWorkflowRoundTrip(t *testing.T) {
	for _, p := range []build.Params{
		params(nil),
		params(func(p *build.Params) { p.Multipass = build.TwoPass; p.DyPE.Enabled = true; p.TiledVAE = true }),
		params(func(p *build.Params) { p.Image = "in.png"; p.NegativePrompt = "bad"; p.Seed = 18446744073709551615 }),
		params(func(p *build.Params) { p.DyPE.Enabled = true; p.DyPE.Mode = "" }),
	} {
		prompt, err := build.Build(p)
		if err != nil {
			t.Fatal(err)
		}
		ui, err := build.UIWorkflow(prompt, nodes.Default())
		if err != nil {
			t.Fatal(err)
		}
		data, err := ojson.Marshal(ui)
		if err != nil {
			t.Fatal(err)
		}
		if !graph.IsUIFormat(ui) {
			t.Fatal("not recognised as a UI workflow")
		}
		back, err := graph.Parse(data, nodes.Default(), nodes.Env{})
		if err != nil {
			t.Fatal(err)
		}
		orig, err := graph.FromPrompt(prompt)
		if err != nil {
			t.Fatal(err)
		}
		if len(back.Nodes) != len(orig.Nodes) {
			t.Fatalf("%d nodes back, want %d", len(back.Nodes), len(orig.Nodes))
		}
		for id, n := range orig.Nodes {
			b := back.Nodes[id]
			if b == nil || b.ClassType != n.ClassType {
				t.Fatalf("node %s: got %+v", id, b)
			}
			for _, in := range n.Inputs {
				bi, ok := b.Input(in.Name)
				if !ok {
					t.Fatalf("node %s (%s): input %s lost", id, n.ClassType, in.Name)
				}
				if !reflect.DeepEqual(jsonOf(t, in.Link, in.Literal), jsonOf(t, bi.Link, bi.Literal)) {
					t.Errorf("node %s (%s) input %s: %s, want %s", id, n.ClassType, in.Name,
						jsonOf(t, bi.Link, bi.Literal), jsonOf(t, in.Link, in.Literal))
				}
			}
			for _, bi := range b.Inputs {
				if _, ok := n.Input(bi.Name); !ok && !(n.ClassType == "DyPE_FLUX" && bi.Name == "position_mode" && bi.Literal == "comfy") {
					t.Errorf("node %s (%s): extra input %s = %v", id, n.ClassType, bi.Name, bi.Literal)
				}
			}
			if b.Title != n.Title {
				t.Errorf("node %s title %q, want %q", id, b.Title, n.Title)
			}
		}
	}
}

func jsonOf(t *testing.T, l *graph.Link, lit any) string {
	if l != nil {
		return l.Node + ":" + strconv.Itoa(l.Slot)
	}
	b, err := ojson.Marshal(lit)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func TestUIWorkflowRejects(t *testing.T) {
	for name, src := range map[string]string{
		"unknown class": `{"1": {"class_type": "NoSuchNode", "inputs": {}}}`,
		"bad link":      `{"1": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["9", 0]}}}`,
		"bad slot":      `{"1": {"class_type": "VAELoader", "inputs": {"vae_name": "a"}}, "2": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 5], "vae": ["1", 0]}}}`,
		"not an object": `{"1": 5}`,
	} {
		v, err := ojson.Decode([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := build.UIWorkflow(v.(*ojson.Object), nodes.Default()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPrettyJSONParses(t *testing.T) {
	prompt, err := build.Build(params(func(p *build.Params) { p.Prompt = "quote \" and, colon: ok" }))
	if err != nil {
		t.Fatal(err)
	}
	data, err := build.PrettyJSON(prompt)
	if err != nil {
		t.Fatal(err)
	}
	wf, err := graph.ParseAPI(data)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := wf.Nodes["4"].Input("text")
	if in.Literal != "quote \" and, colon: ok" {
		t.Fatalf("text %q", in.Literal)
	}
	if strings.Count(string(data), "\n") != len(wf.Order)+2 {
		t.Fatalf("want one node per line:\n%s", data)
	}
}

func tinyPNG(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 32, 32))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
