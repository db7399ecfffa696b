// Package ui embeds dypegraph's web UI — a node-graph editor for ComfyUI workflows built from
// the sources in this folder (npm ci && npm run build writes dist/) — and serves it over HTTP.
//
// It owns: the embedded build output (dist/, not committed; a placeholder dist/.keep keeps the
// go:embed pattern valid on a fresh checkout), the static file handler with its content types
// and cache headers, and the fallback page that says how to build the UI when dist/index.html
// is absent. It must not implement API routes or know about the server's state: the front end
// talks to the server's ComfyUI-compatible API on the same origin, and the server mounts
// Handler at "/".
package ui

import (
	"bytes"
	"embed"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var embedded embed.FS

// BuildCommand is how the UI build output is produced (from the repository root).
const BuildCommand = "make ui   (or: cd ui && npm ci && npm run build)"

func dist() fs.FS {
	sub, err := fs.Sub(embedded, "dist")
	if err != nil { // cannot happen: "dist" is a valid path
		panic(err)
	}
	return sub
}

// Built reports whether the binary holds a UI build (dist/index.html).
func Built() bool { return hasIndex(dist()) }

// Handler serves the embedded UI at "/", or the fallback page when the UI was not built.
func Handler() http.Handler { return newHandler(dist()) }

func hasIndex(fsys fs.FS) bool {
	st, err := fs.Stat(fsys, "index.html")
	return err == nil && !st.IsDir()
}

// contentTypes fixes the types of the files a build holds, independent of the system's MIME
// tables.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".jpg":   "image/jpeg",
	".webp":  "image/webp",
	".ico":   "image/x-icon",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// securityHeaders: the page only talks to its own origin and may not be framed.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

const indexCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; " +
	"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

func noCache(h http.Header) {
	h.Set("Cache-Control", "no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
}

func newHandler(fsys fs.FS) http.Handler {
	built := hasIndex(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if !built {
			if name != "index.html" {
				http.NotFound(w, r)
				return
			}
			serveFallback(w, r)
			return
		}
		// Hidden files (the dist/.keep placeholder) are not part of the UI.
		for _, part := range strings.Split(name, "/") {
			if strings.HasPrefix(part, ".") {
				http.NotFound(w, r)
				return
			}
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		securityHeaders(h)
		h.Set("Content-Type", contentType(name))
		switch {
		case name == "index.html":
			noCache(h)
			h.Set("Content-Security-Policy", indexCSP)
		case strings.HasPrefix(name, "assets/"):
			// Vite puts a content hash in every asset name.
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		default:
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	})
}

// serveFallback is the page of a binary built without the UI: it says how to build it.
func serveFallback(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	securityHeaders(h)
	noCache(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dypegraph — web UI not built</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em;color:#ddd;background:#202020}
code,pre{background:#333;padding:.1em .3em;border-radius:3px}pre{padding:.6em}a{color:#8cf}</style></head><body>
<h1>dypegraph</h1>
<p>The server is running, but this binary was built without the web UI.</p>
<p>Build the UI, then rebuild the binary (it embeds <code>ui/dist/</code>):</p>
<pre>`)
	b.WriteString(html.EscapeString(BuildCommand))
	b.WriteString(`
make build</pre>
<p>The build needs Node.js 20 or newer and npm. Alternatively start the server with
<code>--front-end-root DIR</code> to serve a web UI built elsewhere.</p>
<p>The ComfyUI-compatible API works without the UI: <code>POST /prompt</code>, <code>GET /queue</code>,
<code>GET /history</code>, <code>GET /object_info</code>, websocket <code>/ws</code>.</p>
</body></html>
`)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write([]byte(b.String()))
}
