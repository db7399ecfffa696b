package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/ui"
	"github.com/dypegraph/dypegraph/workflows"
)

func TestUIWorkflowRoutes(t *testing.T) {
	f := newFixture(t, paused())
	for _, prefix := range []string{"", "/api"} {
		r := f.get(prefix + "/dypegraph/workflows")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s/dypegraph/workflows = %d %s", prefix, r.status, r.body)
		}
		var list struct {
			Workflows []struct{ Name, Format string } `json:"workflows"`
		}
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatal(err)
		}
		names := workflows.Names()
		if len(list.Workflows) != len(names) || len(names) == 0 {
			t.Fatalf("listed %v, bundled %v", list.Workflows, names)
		}
		formats := map[string]string{}
		for i, w := range list.Workflows {
			if w.Name != names[i] {
				t.Errorf("workflow %d = %q, want %q", i, w.Name, names[i])
			}
			formats[w.Name] = w.Format
		}
		if formats["image_invert.json"] != "api" || formats["image_invert.ui.json"] != "ui" {
			t.Errorf("formats %v", formats)
		}
	}

	want, err := workflows.Read("image_invert.ui.json")
	if err != nil {
		t.Fatal(err)
	}
	r := f.get("/dypegraph/workflows/image_invert.ui.json")
	if r.status != http.StatusOK || string(r.body) != string(want) {
		t.Fatalf("GET example = %d, %d bytes (want %d)", r.status, len(r.body), len(want))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, p := range []string{"/dypegraph/workflows/nope.json", "/dypegraph/workflows/..%2Fworkflows.go", "/dypegraph/workflows/workflows.go"} {
		if r := f.get(p); r.status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, r.status)
		}
	}
}

func TestUIFoldersRoute(t *testing.T) {
	f := newFixture(t, paused())
	r := f.get("/api/dypegraph/folders")
	if r.status != http.StatusOK {
		t.Fatalf("GET folders = %d %s", r.status, r.body)
	}
	var got struct {
		ModelsDir    string              `json:"models_dir"`
		InputDir     string              `json:"input_dir"`
		ModelFolders map[string][]string `json:"model_folders"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.ModelsDir != f.cfg.ModelsDir || got.InputDir != f.cfg.InputDir {
		t.Errorf("dirs %q %q, want %q %q", got.ModelsDir, got.InputDir, f.cfg.ModelsDir, f.cfg.InputDir)
	}
	if d := got.ModelFolders["diffusion_models"]; strings.Join(d, ",") != "unet,diffusion_models" {
		t.Errorf("diffusion_models folders %v", d)
	}
	if d := got.ModelFolders["text_encoders"]; strings.Join(d, ",") != "text_encoders,clip" {
		t.Errorf("text_encoders folders %v", d)
	}
	if len(got.ModelFolders) != len(modelFolders) {
		t.Errorf("%d folders, want %d", len(got.ModelFolders), len(modelFolders))
	}
}

// Without --front-end-root the embedded UI (or its build instructions) is served at "/"; the
// API routes keep working beside it.
func TestEmbeddedUIAtRoot(t *testing.T) {
	f := newFixture(t, paused())
	r := f.get("/")
	if r.status != http.StatusOK {
		t.Fatalf("GET / = %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control %q", cc)
	}
	fallback := strings.Contains(string(r.body), "built without the web UI")
	if fallback == ui.Built() {
		t.Errorf("ui.Built() = %v, fallback page = %v", ui.Built(), fallback)
	}
	if r := f.get("/no-such-file.js"); r.status != http.StatusNotFound {
		t.Errorf("GET unknown file = %d", r.status)
	}
	if r := f.get("/object_info"); r.status != http.StatusOK || !strings.HasPrefix(string(r.body), "{") {
		t.Errorf("GET /object_info beside the UI = %d", r.status)
	}
	if r := f.post("/view", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /view = %d, want 405", r.status)
	}
	// The origin guard covers the UI too.
	if r := f.get("/", "Origin", "http://evil.example", "Host", "127.0.0.1:8188"); r.status != http.StatusForbidden {
		t.Errorf("cross-origin GET / = %d", r.status)
	}
}

// --front-end-root still replaces the embedded UI.
func TestFrontEndRootOverridesEmbeddedUI(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<html>external build</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, paused(), func(c *Config) { c.FrontEndRoot = root })
	r := f.get("/")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "external build") {
		t.Fatalf("GET / = %d %q", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control %q", cc)
	}
	if r := f.get("/dypegraph/workflows"); r.status != http.StatusOK {
		t.Errorf("workflow list with --front-end-root = %d", r.status)
	}
}
