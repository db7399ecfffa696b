package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A fresh checkout holds only the placeholder: the handler serves a page that says how to build.
func TestFallbackWithoutBuild(t *testing.T) {
	h := newHandler(fstest.MapFS{".keep": {Data: []byte{}}})
	for _, p := range []string{"/", "/index.html"} {
		r := get(t, h, http.MethodGet, p)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", p, r.StatusCode)
		}
		if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s Content-Type %q", p, ct)
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("GET %s Cache-Control %q", p, cc)
		}
		b := body(t, r)
		for _, want := range []string{"built without the web UI", "npm ci &amp;&amp; npm run build", "make ui", "--front-end-root"} {
			if !strings.Contains(b, want) {
				t.Errorf("fallback page lacks %q:\n%s", want, b)
			}
		}
	}
	for _, p := range []string{"/.keep", "/assets/index.js", "/favicon.ico"} {
		if r := get(t, h, http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without a build = %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodHead, "/"); r.StatusCode != http.StatusOK || body(t, r) != "" {
		t.Errorf("HEAD / = %d", r.StatusCode)
	}
	if r := get(t, h, http.MethodPost, "/"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d", r.StatusCode)
	}
}

func TestServesBuild(t *testing.T) {
	fsys := fstest.MapFS{
		".keep":                   {Data: []byte{}},
		"index.html":              {Data: []byte(`<!doctype html><script type="module" src="./assets/index-abc123.js"></script>`)},
		"assets/index-abc123.js":  {Data: []byte(`console.log("ui")`)},
		"assets/index-abc123.css": {Data: []byte(`body{}`)},
		"favicon.svg":             {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	}
	h := newHandler(fsys)
	cases := []struct {
		path, ctype, cache, body string
	}{
		{"/", "text/html; charset=utf-8", "no-store, must-revalidate", "assets/index-abc123.js"},
		{"/index.html", "text/html; charset=utf-8", "no-store, must-revalidate", "<!doctype html>"},
		{"/assets/index-abc123.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", `console.log("ui")`},
		{"/assets/index-abc123.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable", "body{}"},
		{"/favicon.svg", "image/svg+xml", "no-cache", "<svg"},
	}
	for _, c := range cases {
		r := get(t, h, http.MethodGet, c.path)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", c.path, r.StatusCode)
		}
		if got := r.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := r.Header.Get("Cache-Control"); got != c.cache {
			t.Errorf("GET %s Cache-Control %q, want %q", c.path, got, c.cache)
		}
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s X-Content-Type-Options %q", c.path, got)
		}
		if b := body(t, r); !strings.Contains(b, c.body) {
			t.Errorf("GET %s body %q lacks %q", c.path, b, c.body)
		}
	}
	r := get(t, h, http.MethodGet, "/")
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("index CSP %q", csp)
	}
	if r.Header.Get("Pragma") != "no-cache" || r.Header.Get("Expires") != "0" {
		t.Errorf("index cache headers %v", r.Header)
	}
	for _, p := range []string{"/.keep", "/missing.js", "/assets/", "/../index.html/x"} {
		if r := get(t, h, http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, r.StatusCode)
		}
	}
}

// The embedded FS agrees with Built: a binary built from a checkout with ui/dist/index.html
// serves it, one without serves the fallback page.
func TestEmbedded(t *testing.T) {
	if _, err := fs.Stat(embedded, "dist/.keep"); err != nil {
		t.Fatalf("placeholder dist/.keep is not embedded: %v", err)
	}
	r := get(t, Handler(), http.MethodGet, "/")
	b := body(t, r)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", r.StatusCode)
	}
	if fallback := strings.Contains(b, "built without the web UI"); fallback == Built() {
		t.Fatalf("Built() = %v but the page is the fallback = %v", Built(), fallback)
	}
}
