package server

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/models/safetensors"
)

func TestFrontendStartupRoutes(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		path   string
		status int
		want   string // compact JSON
	}{
		{"/i18n", 200, `{}`},
		{"/api/i18n", 200, `{}`},
		{"/global_subgraphs", 200, `{}`},
		{"/api/global_subgraphs/abc", 200, `null`},
		{"/node_replacements", 200, `{}`},
		{"/api/node_replacements", 200, `{}`},
		{"/workflow_templates", 200, `{"dypegraph":["image_invert.ui"]}`},
		{"/api/workflow_templates/dypegraph/image_invert.ui.json", 200, ""},
		{"/api/workflow_templates/dypegraph/image_invert.json", 404, ""}, // an API prompt, not a template
		{"/api/workflow_templates/dypegraph/missing.json", 404, ""},
		{"/internal/files/bogus", 400, `{"error":"Invalid directory type"}`},
		{"/api/internal/logs", 404, ""}, // ComfyUI has no /api twin of /internal
	}
	for _, tc := range cases {
		r := f.get(tc.path)
		if r.status != tc.status {
			t.Fatalf("%s = %d %s, want %d", tc.path, r.status, r.body, tc.status)
		}
		if tc.want != "" && compactJSON(t, r.body) != tc.want {
			t.Fatalf("%s = %s, want %s", tc.path, r.body, tc.want)
		}
	}
	tpl := f.get("/api/workflow_templates/dypegraph/image_invert.ui.json").json(t)
	if _, ok := tpl.Get("nodes"); !ok {
		t.Fatal("the template is not an editor workflow")
	}
}

func TestModelRoutes(t *testing.T) {
	f := newFixture(t)
	models := f.cfg.ModelsDir
	// Two loras (one in a sub-folder), a hidden one, a config and a non-model file.
	md := map[string]string{"ss_network_dim": "16", "modelspec.title": "tiny"}
	entry := map[string]safetensors.Entry{"w": {DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}}
	for _, p := range []string{"loras/a.safetensors", "loras/sub/b.safetensors", "loras/.hidden/c.safetensors", "unet/d.safetensors", "clip/e.safetensors"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(models, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := safetensors.WriteFile(filepath.Join(models, p), entry, md); err != nil {
			t.Fatal(err)
		}
	}
	if err := safetensors.WriteFile(filepath.Join(models, "loras", "plain.safetensors"), entry, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(models, "loras", "notes.txt"), []byte("x"))
	writeFile(t, filepath.Join(models, "loras", "bad.safetensors"), []byte("not a safetensors file"))
	outside := filepath.Join(t.TempDir(), "outside.safetensors")
	if err := safetensors.WriteFile(outside, entry, md); err != nil {
		t.Fatal(err)
	}
	symlinked := os.Symlink(outside, filepath.Join(models, "loras", "link.safetensors")) == nil

	// /experiment/models: every folder but configs, with absolute folders and sorted extensions.
	r := f.get("/experiment/models")
	v, _ := ojson.Decode(r.body)
	var loras *ojson.Object
	for _, it := range v.([]any) {
		o := it.(*ojson.Object)
		if str(o, "name") == "configs" {
			t.Fatal("configs listed")
		}
		if str(o, "name") == "loras" {
			loras = o
		}
	}
	if loras == nil || mustJSON(t, mustGetObj(loras, "folders")) != mustJSON(t, []any{filepath.Join(models, "loras")}) ||
		mustJSON(t, mustGetObj(loras, "extensions")) != `[".bin",".ckpt",".pkl",".pt",".pt2",".pth",".safetensors",".sft"]` {
		t.Fatalf("loras entry = %s", mustJSON(t, loras))
	}
	if r := f.get("/api/experiment/models"); compactJSON(t, r.body) != compactJSON(t, f.get("/experiment/models").body) {
		t.Fatal("/api/experiment/models differs")
	}

	// /experiment/models/{folder}: model files with their index, times and size.
	r = f.get("/api/experiment/models/loras")
	v, _ = ojson.Decode(r.body)
	var names []string
	for _, it := range v.([]any) {
		o := it.(*ojson.Object)
		names = append(names, str(o, "name"))
		if mustJSON(t, mustGetObj(o, "pathIndex")) != "0" {
			t.Fatalf("pathIndex: %s", mustJSON(t, o))
		}
		for _, k := range []string{"modified", "created", "size"} {
			if _, ok := o.Get(k); !ok {
				t.Fatalf("no %s: %s", k, mustJSON(t, o))
			}
		}
	}
	want := "a.safetensors,bad.safetensors,plain.safetensors,sub/b.safetensors"
	if symlinked {
		want = "a.safetensors,bad.safetensors,link.safetensors,plain.safetensors,sub/b.safetensors"
	}
	if strings.Join(sortedCopy(names), ",") != want {
		t.Fatalf("loras files = %v", names)
	}
	if r := f.get("/experiment/models/nope"); r.status != http.StatusNotFound {
		t.Fatalf("unknown folder = %d", r.status)
	}

	// /view_metadata/{folder}?filename=
	cases := []struct {
		path   string
		status int
		want   string
	}{
		{"/view_metadata/loras?filename=a.safetensors", 200, `{"modelspec.title":"tiny","ss_network_dim":"16"}`},
		{"/api/view_metadata/loras?filename=sub/b.safetensors", 200, `{"modelspec.title":"tiny","ss_network_dim":"16"}`},
		{"/view_metadata/loras?filename=plain.safetensors", 404, ""},
		{"/view_metadata/loras?filename=bad.safetensors", 404, ""},
		{"/view_metadata/loras?filename=notes.txt", 404, ""},
		{"/view_metadata/loras?filename=missing.safetensors", 404, ""},
		{"/view_metadata/loras", 404, ""},
		{"/view_metadata/nope?filename=a.safetensors", 404, ""},
		{"/view_metadata/loras?filename=../loras/a.safetensors", 404, ""},
		{"/view_metadata/loras?filename=" + outside, 404, ""},
		{"/view_metadata/loras?filename=link.safetensors", 404, ""}, // a symlink out of the folder
		// ComfyUI's legacy folder names, and the folders' other directories.
		{"/view_metadata/unet?filename=d.safetensors", 200, `{"modelspec.title":"tiny","ss_network_dim":"16"}`},
		{"/view_metadata/diffusion_models?filename=d.safetensors", 200, `{"modelspec.title":"tiny","ss_network_dim":"16"}`},
		{"/view_metadata/clip?filename=e.safetensors", 200, `{"modelspec.title":"tiny","ss_network_dim":"16"}`},
		{"/view_metadata/text_encoders?filename=e.safetensors", 200, `{"modelspec.title":"tiny","ss_network_dim":"16"}`},
		{"/view_metadata/unet?filename=e.safetensors", 404, ""},
	}
	for _, tc := range cases {
		r := f.get(tc.path)
		if r.status != tc.status || (tc.want != "" && compactJSON(t, r.body) != tc.want) {
			t.Fatalf("%s = %d %s, want %d %s", tc.path, r.status, r.body, tc.status, tc.want)
		}
	}

	// /internal/folder_paths: absolute folders by name.
	fp := f.get("/internal/folder_paths").json(t)
	if got := mustJSON(t, mustGetObj(fp, "diffusion_models")); got != mustJSON(t, []any{filepath.Join(models, "unet"), filepath.Join(models, "diffusion_models")}) {
		t.Fatalf("diffusion_models paths = %s", got)
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestInternalFiles(t *testing.T) {
	f := newFixture(t)
	old := time.Now().Add(-time.Hour)
	for i, name := range []string{"old.png", "new.png", ".DS_Store"} {
		p := filepath.Join(f.cfg.OutputDir, name)
		writeFile(t, p, []byte("x"))
		if i == 0 {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(f.cfg.OutputDir, "folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := f.get("/internal/files/output"); compactJSON(t, r.body) != `["new.png [output]","old.png [output]"]` {
		t.Fatalf("/internal/files/output = %d %s", r.status, r.body)
	}
	if r := f.get("/internal/files/input"); compactJSON(t, r.body) != `[]` {
		t.Fatalf("/internal/files/input = %d %s", r.status, r.body)
	}
}

func TestInternalLogs(t *testing.T) {
	f := newFixture(t)
	f.srv.log.Info("first line", "k", "v")
	f.srv.log.Debug("not kept")
	raw := f.get("/internal/logs/raw").json(t)
	if got := mustJSON(t, mustGetObj(raw, "size")); got != `{"cols":80,"rows":24}` {
		t.Fatalf("size = %s", got)
	}
	entries := mustGetObj(raw, "entries").([]any)
	last := entries[len(entries)-1].(*ojson.Object)
	if m := str(last, "m"); !strings.Contains(m, "first line") || !strings.Contains(m, "k=v") || !strings.HasSuffix(m, "\n") {
		t.Fatalf("last entry = %s", mustJSON(t, last))
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000", str(last, "t")); err != nil {
		t.Fatalf("entry time %q: %v", str(last, "t"), err)
	}
	logs := f.get("/internal/logs")
	var text string
	if v, err := ojson.Decode(logs.body); err == nil {
		text, _ = v.(string)
	}
	if !strings.Contains(text, str(last, "t")+" - ") || strings.Contains(text, "not kept") {
		t.Fatalf("/internal/logs = %s", logs.body)
	}

	// Subscribed websocket clients get new lines as "logs" events; others do not.
	sub := f.dial("?clientId=term")
	sub.mustRead(5 * time.Second)
	other := f.dial("?clientId=other")
	other.mustRead(5 * time.Second)
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"clientId": "term", "enabled": true}`, 200},
		{`{"clientId": "term"}`, 400},
		{`{"enabled": true}`, 400},
		{`[]`, 400},
	} {
		if r := f.do(http.MethodPatch, "/internal/logs/subscribe", strings.NewReader(tc.body)); r.status != tc.status {
			t.Fatalf("subscribe %s = %d %s", tc.body, r.status, r.body)
		}
	}
	f.srv.log.Warn("for the terminal")
	msgs := sub.until(5*time.Second, func(m *wsMsg) bool {
		return m.typ == "logs" && strings.Contains(mustJSON(t, m.data), "for the terminal")
	})
	lm := msgs[len(msgs)-1]
	if v, ok := lm.data.Get("size"); !ok || v != nil {
		t.Fatalf("logs event = %s", lm.raw)
	}
	if r := f.do(http.MethodPatch, "/internal/logs/subscribe", strings.NewReader(`{"clientId": "term", "enabled": false}`)); r.status != 200 {
		t.Fatalf("unsubscribe = %d", r.status)
	}
	f.srv.log.Warn("after unsubscribe")
	// A status broadcast marks the end: no logs event may come before it.
	f.srv.hub.broadcast(jsonMsg("status", ojson.NewObject(), true))
	for _, c := range []*wsConn{sub, other} {
		for _, m := range c.until(5*time.Second, func(m *wsMsg) bool { return m.typ == "status" }) {
			if m.typ == "logs" && (c == other || strings.Contains(mustJSON(t, m.data), "after unsubscribe")) {
				t.Fatalf("unexpected logs event: %s", m.raw)
			}
		}
	}
}

// TestPromptLogLines: a queued prompt leaves ComfyUI's console lines ("got prompt", "prompt
// executed in …") in /internal/logs.
func TestPromptLogLines(t *testing.T) {
	f := newFixture(t)
	id := f.queuePrompt(imagePrompt)
	f.waitHistory(id, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := f.get("/internal/logs")
		var text string
		if v, err := ojson.Decode(logs.body); err == nil {
			text, _ = v.(string)
		}
		if strings.Contains(text, `msg="got prompt" prompt_id=`+id) && strings.Contains(text, `msg="prompt executed" prompt_id=`+id) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/internal/logs lacks the prompt's lines: %s", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
