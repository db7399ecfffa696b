package build_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/workflows/build"
)

const fullProfile = `
[hires]
model_path = "/models"

[hires.generation]
width = 2048
height = 1536
num_inference_steps = 12
seed = 7
guidance_scale = 1.5
negative_prompt = "blurry"
sampler = "res_multistep"
scheduler = "beta"
strength = 0.4
multipass = "twopass"
pass2_strength = 0.45
upscale_model = "4x-UltraSharp.pth"

[hires.scheduler]
shift = 2.5

[hires.dype]
enabled = true
method = "yarn"
dype_scale = 3
dype_exponent = 1.5
dype_start_sigma = 0.8
base_shift = 0.4
max_shift = 1.2
base_resolution = 1024
anisotropic = true
mode = "comfy"

[hires.pytorch]
tiled_vae = true
tile_size = 1024
tile_overlap = 128

[hires.encoder]
device = "cpu"

[hires.pipeline]
device = "cuda"

[other.generation]
steps = 3
`

func TestLoadProfile(t *testing.T) {
	pr, err := build.LoadProfile([]byte(fullProfile), "hires")
	if err != nil {
		t.Fatal(err)
	}
	p := build.Defaults()
	pr.Apply(&p)
	want := build.Defaults()
	want.Width, want.Height, want.Steps, want.Seed, want.CFG = 2048, 1536, 12, 7, 1.5
	want.NegativePrompt, want.Sampler, want.Scheduler = "blurry", "res_multistep", "beta"
	want.Strength, want.Multipass, want.Pass2Strength, want.Shift = 0.4, "twopass", 0.45, 2.5
	want.UpscaleModel = "4x-UltraSharp.pth"
	want.DyPE = build.DyPE{Enabled: true, Method: "yarn", Scale: 3, Exponent: 1.5, StartSigma: 0.8,
		BaseShift: 0.4, MaxShift: 1.2, BaseResolution: 1024, Anisotropic: true, Mode: "comfy"}
	want.TiledVAE, want.TileSize, want.TileOverlap = true, 1024, 128
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("applied profile\n got %+v\nwant %+v", p, want)
	}
	if pr.ModelPath != "/models" || pr.TextEncoderDevice != "cpu" || pr.PipelineDevice != "cuda" {
		t.Fatalf("model path %q, devices %q %q", pr.ModelPath, pr.TextEncoderDevice, pr.PipelineDevice)
	}
	if len(pr.Keys()) != 29 {
		t.Errorf("%d keys: %v", len(pr.Keys()), pr.Keys())
	}

	// Only what a profile sets changes.
	other, err := build.LoadProfile([]byte(fullProfile), "other")
	if err != nil {
		t.Fatal(err)
	}
	q := build.Defaults()
	other.Apply(&q)
	want = build.Defaults()
	want.Steps = 3
	if !reflect.DeepEqual(q, want) {
		t.Fatalf("other profile changed more than steps: %+v", q)
	}
	names, err := build.ProfileNames([]byte(fullProfile))
	if err != nil || !reflect.DeepEqual(names, []string{"hires", "other"}) {
		t.Fatalf("names %v, %v", names, err)
	}
}

func TestLoadProfileErrors(t *testing.T) {
	cases := []struct {
		name, doc, profile, want string
	}{
		{"not TOML", "[a\nb", "a", "config:"},
		{"missing profile", "[a.generation]\nsteps = 2\n", "b", `profile "b" not found; the file has a`},
		{"no profiles", "x = 1\n", "b", "the file has no [profile] tables"},
		{"empty name", "", "", "no profile name"},
		{"profile not a table", "a = 1\n", "a", "a must be a table"},
		{"unknown table", "[a.lora]\npaths = []\n", "a", "unknown key a.lora (accepted: model_path, [generation]"},
		{"unknown key", "[a.dype]\nscale = 2\n", "a", "unknown key a.dype.scale (accepted: anisotropic, base_resolution"},
		{"unknown top key", "[a]\ntemplates_dir = \"x\"\n", "a", "unknown key a.templates_dir"},
		{"wrong type int", "[a.generation]\nwidth = \"big\"\n", "a", "a.generation.width: must be an integer, not a string"},
		{"float for int", "[a.generation]\nsteps = 2.5\n", "a", "a.generation.steps: must be an integer, not a float"},
		{"wrong type bool", "[a.dype]\nenabled = 1\n", "a", "a.dype.enabled: must be true or false, not a integer"},
		{"wrong type float", "[a.dype]\ndype_scale = \"2\"\n", "a", "a.dype.dype_scale: must be a number"},
		{"wrong type string", "[a.generation]\nsampler = 3\n", "a", "a.generation.sampler: must be a string"},
		{"negative seed", "[a.generation]\nseed = -1\n", "a", "a.generation.seed: -1 must not be negative"},
		{"nan", "[a.generation]\ncfg = nan\n", "a", "not a finite number"},
		{"huge int", "[a.generation]\nwidth = 99999999999\n", "a", "out of range"},
		{"table as key", "[a]\ngeneration = 3\n", "a", "a.generation must be a table"},
		{"device type", "[a.encoder]\ndevice = 1\n", "a", "a.encoder.device must be a string"},
		{"device key", "[a.pipeline]\ndtype = \"bf16\"\n", "a", "unknown key a.pipeline.dtype (accepted: device)"},
		{"aliases", "[a.generation]\nsteps = 2\nnum_inference_steps = 3\n", "a", "a.generation.num_inference_steps and a.generation.steps set the same value"},
		{"two shifts", "[a.generation]\nshift = 2\n[a.scheduler]\nshift = 3\n", "a", "a.generation.shift and a.scheduler.shift set the same value"},
		{"model path type", "[a]\nmodel_path = 3\n", "a", "a.model_path must be a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := build.LoadProfile([]byte(c.doc), c.profile)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestProfileThenFlags: what a profile sets, a later write (the command line) overrides.
func TestProfileThenFlags(t *testing.T) {
	pr, err := build.LoadProfile([]byte("[p.generation]\nwidth = 512\nsteps = 4\n"), "p")
	if err != nil {
		t.Fatal(err)
	}
	p := build.Defaults()
	pr.Apply(&p)
	p.Steps = 8 // a flag
	if p.Width != 512 || p.Steps != 8 || p.Height != 1024 {
		t.Fatalf("%+v", p)
	}
}

// FuzzLoadProfile: any document and profile name gives a profile or an error, never a panic; a
// profile that loads applies without panicking and loads the same way twice.
func FuzzLoadProfile(f *testing.F) {
	f.Add([]byte(fullProfile), "hires")
	f.Add([]byte("[a.generation]\nwidth = 3\n"), "a")
	f.Add([]byte("[a]\ngeneration = [1, 2]\n"), "a")
	f.Add([]byte("[a.dype]\nenabled = true\nmethod = \"ntk\"\n"), "a")
	f.Add([]byte("a = {generation = {seed = 9223372036854775807}}"), "a")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		pr, err := build.LoadProfile(data, name)
		if err != nil {
			return
		}
		p := build.Defaults()
		pr.Apply(&p)
		_ = p.Validate()
		again, err := build.LoadProfile(data, name)
		if err != nil {
			t.Fatalf("second load failed: %v", err)
		}
		q := build.Defaults()
		again.Apply(&q)
		if !reflect.DeepEqual(p, q) || !reflect.DeepEqual(pr.Keys(), again.Keys()) {
			t.Fatalf("two loads differ: %+v vs %+v", p, q)
		}
	})
}
