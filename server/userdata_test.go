package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

func TestUsersSingleUser(t *testing.T) {
	f := newFixture(t)
	for _, prefix := range []string{"", "/api"} {
		if r := f.get(prefix + "/users"); r.status != http.StatusOK || compactJSON(t, r.body) != `{"storage":"server","migrated":false}` {
			t.Fatalf("%s/users = %d %s", prefix, r.status, r.body)
		}
	}
	cases := []struct{ body, wantErr string }{
		{`{"username": "default"}`, "Duplicate username."},
		{`{"username": "  "}`, "username not provided"},
		{`{"username": "alice"}`, "single-user"},
		{`{}`, "username not provided"},
	}
	for _, tc := range cases {
		r := f.post("/users", tc.body)
		if msg := str(r.json(t), "error"); r.status != http.StatusBadRequest || !strings.Contains(msg, tc.wantErr) {
			t.Errorf("POST /users %s = %d %s", tc.body, r.status, r.body)
		}
	}
	// Saving anything creates the user folder: the frontend then reads "migrated".
	if r := f.post("/settings/Comfy.Locale", `"en"`); r.status != http.StatusOK {
		t.Fatalf("POST setting = %d %s", r.status, r.body)
	}
	if r := f.get("/users"); compactJSON(t, r.body) != `{"storage":"server","migrated":true}` {
		t.Fatalf("/users after a save = %s", r.body)
	}
}

func TestSettings(t *testing.T) {
	f := newFixture(t)
	// The Comfy-User header is ignored: single-user.
	steps := []struct {
		method, path, body string
		status             int
		want               string // compact JSON; "" for an empty body
	}{
		{"GET", "/settings", "", 200, `{}`},
		{"GET", "/settings/Comfy.Locale", "", 200, `null`},
		{"POST", "/settings", `{"Comfy.Locale": "en", "Comfy.Graph.ZoomSpeed": 1.1}`, 200, ""},
		{"POST", "/api/settings/Comfy.Keybinding", `[{"key": "r"}]`, 200, ""},
		{"POST", "/settings", `{"Comfy.Locale": "fr"}`, 200, ""},
		{"GET", "/api/settings", "", 200, `{"Comfy.Locale":"fr","Comfy.Graph.ZoomSpeed":1.1,"Comfy.Keybinding":[{"key":"r"}]}`},
		{"GET", "/settings/Comfy.Keybinding", "", 200, `[{"key":"r"}]`},
		{"POST", "/settings", `[1]`, 400, ""},
		{"POST", "/settings/x", `not json`, 400, ""},
	}
	for _, st := range steps {
		r := f.do(st.method, st.path, strings.NewReader(st.body), "Comfy-User", "someone")
		if r.status != st.status {
			t.Fatalf("%s %s = %d %s, want %d", st.method, st.path, r.status, r.body, st.status)
		}
		if st.status == 200 && st.want != "" && compactJSON(t, r.body) != st.want {
			t.Fatalf("%s %s = %s, want %s", st.method, st.path, r.body, st.want)
		}
	}
	// Stored where ComfyUI keeps it, indented, and read again after a restart.
	file := filepath.Join(f.cfg.DataDir, "user", "default", "comfy.settings.json")
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), "\n    \"Comfy.Locale\": \"fr\"") {
		t.Fatalf("settings file: %v\n%s", err, b)
	}
	g := f.reopen()
	if r := g.get("/settings/Comfy.Locale"); compactJSON(t, r.body) != `"fr"` {
		t.Fatalf("after restart: %s", r.body)
	}
	// A corrupted file reads as {} and is replaced by the next save.
	if err := os.WriteFile(file, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := g.get("/settings"); compactJSON(t, r.body) != `{}` {
		t.Fatalf("corrupted settings = %s", r.body)
	}
	g.post("/settings/a", `1`)
	if r := g.get("/settings"); compactJSON(t, r.body) != `{"a":1}` {
		t.Fatalf("after repair = %s", r.body)
	}
}

func TestUserdataFiles(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxUploadSize = 1 << 10 })
	type step struct {
		method, path, body string
		status             int
		want               string // compact JSON, or the exact body for GET of a file
	}
	steps := []step{
		// Nothing saved yet.
		{"GET", "/userdata?dir=workflows", "", 404, ""},
		{"GET", "/v2/userdata", "", 200, `[]`},
		{"GET", "/v2/userdata?path=workflows", "", 404, ""},
		{"GET", "/userdata/workflows%2Fa.json", "", 404, ""},
		// Writes: %2F separates folders; parents are created.
		{"POST", "/userdata/workflows%2Fa.json", `{"a":1}`, 200, `"workflows/a.json"`},
		{"POST", "/api/userdata/workflows%2Fsub%2Fb.json", `{"b":2}`, 200, `"workflows/sub/b.json"`},
		{"POST", "/userdata/workflows%2F.hidden.json", `{}`, 200, `"workflows/.hidden.json"`},
		{"POST", "/userdata/workflows%2Fa.json?overwrite=false", `{"a":2}`, 409, ""},
		{"POST", "/userdata/workflows%2Fa.json?overwrite=true", `{"a":3}`, 200, `"workflows/a.json"`},
		{"GET", "/userdata/workflows%2Fa.json", "", 200, `{"a":3}`},
		// Double-encoded names are decoded once more, like ComfyUI.
		{"GET", "/userdata/workflows%252Fsub%252Fb.json", "", 200, `{"b":2}`},
		// Listings.
		{"GET", "/userdata", "", 400, ""},
		{"GET", "/userdata?dir=workflows", "", 200, `["a.json"]`},
		{"GET", "/userdata?dir=workflows&recurse=true", "", 200, `["a.json","sub/b.json"]`},
		{"GET", "/userdata?dir=workflows&recurse=true&split=true", "", 200, `[["a.json","a.json"],["sub/b.json","sub","b.json"]]`},
		{"GET", "/v2/userdata?path=workflows", "", 200, ""},
		// Move and delete.
		{"POST", "/userdata/workflows%2Fa.json/move/workflows%2Fsub%2Fb.json?overwrite=false", "", 409, ""},
		{"POST", "/userdata/workflows%2Fmissing.json/move/workflows%2Fc.json", "", 404, ""},
		{"POST", "/userdata/workflows%2Fa.json/move/archive%2Fc.json", "", 200, `"archive/c.json"`},
		{"GET", "/userdata/workflows%2Fa.json", "", 404, ""},
		{"GET", "/userdata/archive%2Fc.json", "", 200, `{"a":3}`},
		{"DELETE", "/userdata/archive%2Fc.json", "", 204, ""},
		{"DELETE", "/userdata/archive%2Fc.json", "", 404, ""},
		// Escapes are refused.
		{"GET", "/userdata/..%2F..%2Fdypegraph.db", "", 403, ""},
		{"POST", "/userdata/%2E%2E%2Fx.json", `{}`, 403, ""},
		{"POST", "/userdata/workflows%2Fsub%2Fb.json/move/..%2Fx.json", "", 403, ""},
		{"GET", "/userdata?dir=..", "", 403, ""},
		{"GET", "/v2/userdata?path=..%2F..", "", 400, ""},
		{"DELETE", "/userdata/%2Fetc%2Fpasswd", "", 403, ""},
		// Bodies are limited like every request.
		{"POST", "/userdata/big.json", strings.Repeat("x", 2<<10), 413, ""},
	}
	for _, st := range steps {
		r := f.do(st.method, st.path, strings.NewReader(st.body))
		if r.status != st.status {
			t.Fatalf("%s %s = %d %s, want %d", st.method, st.path, r.status, r.body, st.status)
		}
		if st.want == "" {
			continue
		}
		got := string(r.body)
		if r.header.Get("Content-Type") != "application/octet-stream" && !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") {
			got = compactJSON(t, r.body)
		}
		if got != st.want {
			t.Fatalf("%s %s = %s, want %s", st.method, st.path, got, st.want)
		}
	}
	// Nothing escaped the user folder.
	if _, err := os.Stat(filepath.Join(f.cfg.DataDir, "user", "x.json")); err == nil {
		t.Fatal("a write escaped the user folder")
	}
}

func TestUserdataShapes(t *testing.T) {
	f := newFixture(t)
	f.post("/userdata/workflows%2Fz.json", `{}`)
	f.post("/userdata/workflows%2FB%2Fx.json", `12345`)
	f.post("/userdata/page.html", `<script>alert(1)</script>`)
	f.post("/userdata/user.css", `body{}`)

	// full_info on write and on list.
	r := f.post("/userdata/workflows%2Fy.json?full_info=true", `{"y":1}`)
	info := r.json(t)
	if str(info, "path") != "workflows/y.json" || mustJSON(t, mustGetObj(info, "size")) != "7" {
		t.Fatalf("full_info write = %s", r.body)
	}
	for _, k := range []string{"modified", "created"} {
		if v, ok := info.Get(k); !ok || strings.ContainsAny(mustJSON(t, v), ".e") {
			t.Fatalf("%s must be integer milliseconds: %s", k, r.body)
		}
	}
	list := f.get("/userdata?dir=workflows&recurse=true&full_info=true")
	v, _ := ojson.Decode(list.body)
	items := v.([]any)
	if len(items) != 3 {
		t.Fatalf("full_info list = %s", list.body)
	}
	if p := str(items[0].(*ojson.Object), "path"); p != "B/x.json" {
		t.Fatalf("first listed = %q in %s", p, list.body)
	}

	// v2: folders first, then by name, case-insensitively; paths from the user folder.
	r = f.get("/v2/userdata?path=workflows")
	v, _ = ojson.Decode(r.body)
	var got []string
	for _, it := range v.([]any) {
		o := it.(*ojson.Object)
		got = append(got, str(o, "type")+":"+str(o, "path"))
		if str(o, "type") == "file" {
			if _, ok := o.Get("size"); !ok {
				t.Fatalf("file without size: %s", r.body)
			}
		}
	}
	if strings.Join(got, ",") != "directory:workflows/B,file:workflows/B/x.json,file:workflows/y.json,file:workflows/z.json" {
		t.Fatalf("v2 listing = %v", got)
	}

	// Files are downloads; markup is not served as markup; user.css is the exception.
	page := f.get("/userdata/page.html")
	if page.header.Get("Content-Type") != "application/octet-stream" || page.header.Get("Content-Disposition") != "attachment" ||
		page.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("html user file headers = %v", page.header)
	}
	css := f.get("/userdata/user.css")
	if css.header.Get("Content-Type") != "text/css" || css.header.Get("Content-Disposition") != "inline" || string(css.body) != "body{}" {
		t.Fatalf("user.css = %v %s", css.header, css.body)
	}

	// A symlink out of the user folder is not followed.
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(f.cfg.DataDir, "user", "default", "link.txt")); err != nil {
		t.Fatal("symlink:", err)
	}
	if r := f.get("/userdata/link.txt"); r.status != http.StatusNotFound || strings.Contains(string(r.body), "secret") {
		t.Fatalf("symlink escape = %d %s", r.status, r.body)
	}
}

func mustGetObj(o *ojson.Object, k string) any { v, _ := o.Get(k); return v }
