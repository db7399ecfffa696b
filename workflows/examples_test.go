package workflows_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/experiments"
	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/models/fixture"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows"
)

// fixtureEnv writes the test fixture models and returns folders around them.
func fixtureEnv(t *testing.T) nodes.Env {
	t.Helper()
	dir := t.TempDir()
	if _, err := fixture.Write(filepath.Join(dir, "models"), fixture.Options{}); err != nil {
		t.Fatal(err)
	}
	env := nodes.Env{ModelsDir: filepath.Join(dir, "models"), InputDir: filepath.Join(dir, "input"),
		OutputDir: filepath.Join(dir, "output"), TempDir: filepath.Join(dir, "temp")}
	for _, d := range []string{env.InputDir, env.OutputDir, env.TempDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// zimageExamples are the bundled Z-Image workflows and the size each runs at in the test.
var zimageExamples = []struct {
	file       string
	final      int // size in the file
	testFinal  int // size the test runs
	samplers   int
	dypeNodes  int
	tiledNodes int
}{
	{"z_image_turbo_txt2img.json", 1024, 256, 1, 0, 0},
	{"z_image_turbo_dype_2k.json", 2048, 384, 1, 1, 1},
	{"z_image_turbo_dype_4k.json", 4096, 384, 1, 1, 1},
	{"z_image_turbo_dype_twopass.json", 2048, 384, 2, 1, 3},
	{"z_image_turbo_dype_threepass.json", 4096, 384, 3, 2, 5},
}

func classCount(wf *graph.Workflow, classes ...string) int {
	n := 0
	for _, node := range wf.Nodes {
		for _, c := range classes {
			if node.ClassType == c {
				n++
			}
		}
	}
	return n
}

// TestZImageExamplesValidate checks every bundled Z-Image example against a fixture models
// folder as it is (full size, official file names), and its shape.
func TestZImageExamplesValidate(t *testing.T) {
	env := fixtureEnv(t)
	for _, ex := range zimageExamples {
		t.Run(ex.file, func(t *testing.T) {
			data, err := workflows.Read(ex.file)
			if err != nil {
				t.Fatal(err)
			}
			wf, err := graph.Parse(data, nodes.Default(), env)
			if err != nil {
				t.Fatal(err)
			}
			res := graph.Validate(wf, nodes.Default(), env, nil)
			if !res.OK() || len(res.NodeErrors) > 0 {
				b, _ := ojson.Marshal(res.ErrorResponse(wf.Order))
				t.Fatalf("does not validate: %s", b)
			}
			if got := classCount(wf, "KSampler"); got != ex.samplers {
				t.Errorf("%d KSamplers, want %d", got, ex.samplers)
			}
			if got := classCount(wf, "DyPE_FLUX"); got != ex.dypeNodes {
				t.Errorf("%d DyPE_FLUX nodes, want %d", got, ex.dypeNodes)
			}
			if got := classCount(wf, "VAEDecodeTiled", "VAEEncodeTiled"); got != ex.tiledNodes {
				t.Errorf("%d tiled VAE nodes, want %d", got, ex.tiledNodes)
			}
			if got := classCount(wf, "SaveImage"); got != 1 {
				t.Errorf("%d SaveImage nodes, want 1", got)
			}
		})
	}
	// Every bundled file is covered above or is one of the image examples.
	listed := map[string]bool{"image_invert.json": true, "image_invert.ui.json": true}
	for _, ex := range zimageExamples {
		listed[ex.file] = true
	}
	for _, name := range workflows.Names() {
		if !listed[name] {
			t.Errorf("bundled example %s has no test", name)
		}
	}
}

// rewriteForTest shrinks a workflow from final to testFinal pixels: every pixel size (latents,
// DyPE, image scaling) is scaled by testFinal/final, samplers take 2 steps and DyPE's base
// resolution becomes 256 so that it still extrapolates. VAE tiles stay as in the file (512 px,
// 64 px overlap), which still tiles: ComfyUI's tiled decode also runs 2:1 and 1:2 tiles.
func rewriteForTest(t *testing.T, prompt *ojson.Object, final, testFinal int) {
	t.Helper()
	set := func(in *ojson.Object, key string, f func(int) int) {
		v, ok := in.Get(key)
		if !ok {
			return
		}
		n, err := strconv.Atoi(string(v.(json.Number)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		in.Set(key, json.Number(strconv.Itoa(f(n))))
	}
	div := func(n int) int {
		if n*testFinal%final != 0 || n*testFinal/final%16 != 0 {
			t.Fatalf("size %d does not scale by %d/%d to a multiple of 16", n, testFinal, final)
		}
		return n * testFinal / final
	}
	for _, id := range prompt.Keys() {
		v, _ := prompt.Get(id)
		node := v.(*ojson.Object)
		cv, _ := node.Get("class_type")
		iv, _ := node.Get("inputs")
		in := iv.(*ojson.Object)
		switch cv {
		case "EmptySD3LatentImage", "DyPE_FLUX", "ImageScale":
			set(in, "width", div)
			set(in, "height", div)
			if cv == "DyPE_FLUX" {
				set(in, "base_resolution", func(int) int { return 512 })
			}
		case "KSampler":
			set(in, "steps", func(int) int { return 2 })
		}
	}
}

// TestZImageExamplesRun runs every bundled Z-Image example end to end on the fixture models at
// a reduced size with 2 steps and checks the saved PNG: its size and its prompt and workflow
// text chunks (the prompt chunk is the API workflow that ran, the workflow chunk its editor
// form, which converts back to the same nodes).
func TestZImageExamplesRun(t *testing.T) {
	env := fixtureEnv(t)
	runner := experiments.NewRunner(env)
	defer runner.Close()
	for _, ex := range zimageExamples {
		t.Run(ex.file, func(t *testing.T) {
			data, err := workflows.Read(ex.file)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ojson.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			prompt := v.(*ojson.Object)
			testFinal := ex.testFinal
			if raceEnabled {
				testFinal /= 2
			}
			rewriteForTest(t, prompt, ex.final, testFinal)
			start := time.Now()
			res, err := runner.Run(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s at %d²: %.2fs (model loading %.2fs)", ex.file, testFinal, time.Since(start).Seconds(), res.Loading.Seconds())
			if len(res.Images) != 1 {
				t.Fatalf("saved %v, want one image", res.Images)
			}
			f, err := os.Open(res.Images[0])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, _, err := nodes.LoadImageFile(res.Images[0])
			if err != nil {
				t.Fatal(err)
			}
			if img.W != testFinal || img.H != testFinal {
				t.Fatalf("image %dx%d, want %dx%d", img.W, img.H, testFinal, testFinal)
			}
			texts, err := nodes.ReadPNGText(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(texts["prompt"], "red fox") || !strings.Contains(texts["prompt"], `"class_type": "KSampler"`) {
				t.Fatalf("prompt chunk lacks the workflow: %.200s", texts["prompt"])
			}
			ui, ok := texts["workflow"]
			if !ok {
				t.Fatal("no workflow chunk")
			}
			back, err := graph.Parse([]byte(ui), nodes.Default(), env)
			if err != nil {
				t.Fatalf("workflow chunk does not convert: %v", err)
			}
			orig, err := graph.FromPrompt(prompt)
			if err != nil {
				t.Fatal(err)
			}
			if len(back.Nodes) != len(orig.Nodes) {
				t.Fatalf("workflow chunk has %d nodes, the prompt %d", len(back.Nodes), len(orig.Nodes))
			}
			for id, n := range orig.Nodes {
				if b, ok := back.Nodes[id]; !ok || b.ClassType != n.ClassType {
					t.Fatalf("workflow chunk node %s differs", id)
				}
			}
			// The image is not flat: the fixture models make noise, never a constant.
			var lo, hi float32 = 1, 0
			for _, p := range img.Pix {
				lo, hi = min(lo, p), max(hi, p)
			}
			if hi-lo < 0.1 {
				t.Fatalf("image is flat (%v..%v)", lo, hi)
			}
		})
	}
}
