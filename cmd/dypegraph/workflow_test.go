package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/nodes"
)

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := golden.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

// events decodes the JSON lines printed by `run`.
func events(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestRunExamplesProduceTheSameImages runs the bundled example in API and UI format and checks
// the saved PNGs: size, pixel values and the embedded prompt/workflow text chunks.
func TestRunExamplesProduceTheSameImages(t *testing.T) {
	var pixels [][]byte
	for _, file := range []string{"workflows/image_invert.json", "workflows/image_invert.ui.json"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "output")
			code, stdout, stderr := runCLI("run", "--output-dir", out, "--input-dir", filepath.Join(dir, "input"), "--temp-dir", filepath.Join(dir, "temp"), repoPath(t, file))
			if code != 0 {
				t.Fatalf("exit %d: %s %s", code, stdout, stderr)
			}
			evs := events(t, stdout)
			last := evs[len(evs)-1]
			if last["type"] != "executing" || last["data"].(map[string]any)["node"] != nil {
				t.Fatalf("last event %v", last)
			}
			data, err := os.ReadFile(filepath.Join(out, "examples", "inverted_00002_.png"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			// EmptyImage 64x48 colour 0xFF8000, inverted → (0, 1-128/255, 1), scaled to 128 wide.
			// In float32 255·(1−128/255) is 126.99999, which ComfyUI's truncation makes 126.
			if img.Bounds().Dx() != 128 || img.Bounds().Dy() != 96 {
				t.Fatalf("size %v", img.Bounds())
			}
			r, g, b, _ := img.At(77, 50).RGBA()
			if r>>8 != 0 || g>>8 != 126 || b>>8 != 255 {
				t.Fatalf("pixel = %d %d %d, want 0 126 255", r>>8, g>>8, b>>8)
			}
			texts, err := nodes.ReadPNGText(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(texts["prompt"], `"class_type": "ImageInvert"`) {
				t.Fatalf("prompt chunk %q", texts["prompt"])
			}
			if strings.HasSuffix(file, ".ui.json") != (texts["workflow"] != "") {
				t.Fatalf("workflow chunk presence wrong: %q", texts["workflow"])
			}
			rgba := make([]byte, 0, 128*96*3)
			for y := 0; y < 96; y++ {
				for x := 0; x < 128; x++ {
					r, g, b, _ := img.At(x, y).RGBA()
					rgba = append(rgba, byte(r>>8), byte(g>>8), byte(b>>8))
				}
			}
			pixels = append(pixels, rgba)
		})
	}
	if len(pixels) == 2 && !bytes.Equal(pixels[0], pixels[1]) {
		t.Fatal("UI and API formats produced different images")
	}
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}`), 0o644)
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(`{"1": `), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"valid api", []string{"validate", repoPath(t, "workflows/image_invert.json")}, 0, `{"ok":true,"outputs":["4"]}`},
		{"valid ui", []string{"validate", repoPath(t, "workflows/image_invert.ui.json")}, 0, `{"ok":true,"outputs":["4"]}`},
		{"invalid", []string{"validate", bad}, 1, `"value_smaller_than_min"`},
		{"unparsable", []string{"validate", broken}, 2, ""},
		{"missing file", []string{"validate", filepath.Join(dir, "nope.json")}, 2, ""},
		{"no file", []string{"validate"}, 2, ""},
		{"unknown command", []string{"frobnicate"}, 2, ""},
		{"run invalid", []string{"run", "--output-dir", filepath.Join(dir, "o"), bad}, 1, `"validation_error"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := runCLI(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (%s)", code, c.code, out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("output %s does not contain %s", out, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); err == nil {
		t.Fatal("an invalid workflow wrote output")
	}
}

func TestValidateSharedExamplePNG(t *testing.T) {
	shared, err := golden.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(shared, "workflows", "comfyui_examples_z_image_turbo.png")
	if _, err := os.Stat(png); err != nil {
		t.Fatalf("the shared example PNG is part of shared/workflows: %v", err)
	}
	code, out, stderr := runCLI("validate", png)
	// Until the model nodes exist the prompt names unknown classes: a ComfyUI error, not a crash.
	if code == 2 {
		t.Fatalf("could not read the PNG workflow: %s", stderr)
	}
	if code == 1 && !strings.Contains(out, `"missing_node_type"`) && !strings.Contains(out, "prompt_outputs_failed_validation") {
		t.Fatalf("unexpected output %s", out)
	}
}

func TestNodesCommand(t *testing.T) {
	code, out, _ := runCLI("nodes")
	if code != 0 {
		t.Fatal(code)
	}
	var info map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"SaveImage", "LoadImage", "PrimitiveInt", "ImageScale"} {
		if info[name]["name"] != name {
			t.Errorf("%s missing from nodes output", name)
		}
	}
}
