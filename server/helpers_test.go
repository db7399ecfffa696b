package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// ---- test nodes

// blockNode is an output node that runs until its gate is released or the prompt is
// interrupted, reporting progress while it waits.
type blockNode struct {
	mu      sync.Mutex
	gates   map[string]chan struct{}
	started chan string
}

func newBlockNode() *blockNode {
	return &blockNode{gates: map[string]chan struct{}{}, started: make(chan string, 64)}
}

func (b *blockNode) gate(key string) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.gates[key]
	if !ok {
		g = make(chan struct{})
		b.gates[key] = g
	}
	return g
}

func (b *blockNode) release(key string) { close(b.gate(key)) }

func (b *blockNode) Schema() *nodes.Schema {
	return &nodes.Schema{Name: "TestBlock", OutputNode: true, NotIdempotent: true,
		Inputs: []nodes.InputSpec{{Name: "key", Type: nodes.TypeString}}}
}

func (b *blockNode) Execute(ctx context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
	key := in.String("key")
	b.started <- key
	g := b.gate(key)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for step := 1; ; step++ {
		select {
		case <-g:
			return &nodes.Outputs{UI: ojson.NewObject().Set("done", []any{key})}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			if err := rt.Progress(step%100, 100); err != nil {
				return nil, err
			}
		}
	}
}

// outNode is a trivial output node.
type outNode struct{}

func (outNode) Schema() *nodes.Schema {
	return &nodes.Schema{Name: "TestOut", OutputNode: true, NotIdempotent: true,
		Inputs: []nodes.InputSpec{{Name: "value", Type: nodes.TypeInt}, {Name: "pad", Type: nodes.TypeInt, Optional: true}}}
}

func (outNode) Execute(_ context.Context, in *nodes.Inputs, _ nodes.Runtime) (*nodes.Outputs, error) {
	ui := ojson.NewObject().Set("value", []any{in.Int("value")})
	if in.Has("pad") { // a large UI output: pad bytes
		ui.Set("pad", []any{strings.Repeat("x", int(in.Int("pad")))})
	}
	return &nodes.Outputs{UI: ui}, nil
}

// spamNode sends many progress events and previews, like a long sampler.
type spamNode struct{}

func (spamNode) Schema() *nodes.Schema {
	return &nodes.Schema{Name: "TestSpam", OutputNode: true, NotIdempotent: true,
		Inputs: []nodes.InputSpec{{Name: "steps", Type: nodes.TypeInt}, {Name: "previews", Type: nodes.TypeBoolean},
			{Name: "size", Type: nodes.TypeInt, Optional: true}}}
}

// Fingerprint makes every run execute (ComfyUI's IS_CHANGED returning NaN).
func (spamNode) Fingerprint(*nodes.Inputs, nodes.Env) (string, error) {
	return fmt.Sprint(time.Now().UnixNano()), nil
}

func (spamNode) Execute(_ context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
	type previewer interface {
		PreviewMethod() string
		Preview(format string, img image.Image, fullSize bool) error
	}
	p, _ := rt.(previewer)
	steps := int(in.Int("steps"))
	w, h := 64, 48
	if in.Has("size") {
		w, h = int(in.Int("size")), int(in.Int("size"))
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*7 + i*i/13)
	}
	for i := 0; i < steps; i++ {
		if in.Bool("previews") && p != nil && p.PreviewMethod() != "none" {
			img.Set(0, 0, color.RGBA{R: uint8(i), A: 255})
			if err := p.Preview("JPEG", img, false); err != nil {
				return nil, err
			}
		}
		if err := rt.Progress(i+1, steps); err != nil {
			return nil, err
		}
	}
	return &nodes.Outputs{UI: ojson.NewObject().Set("steps", []any{steps})}, nil
}

func testRegistry(block *blockNode) *nodes.Registry {
	reg := nodes.NewRegistry()
	reg.Register(block)
	reg.Register(outNode{})
	reg.Register(spamNode{})
	return reg
}

// ---- server fixture

type fixture struct {
	t      testing.TB
	cfg    Config
	srv    *Server
	ts     *httptest.Server
	client *http.Client
	block  *blockNode
	closed bool
}

type option func(*Config)

func withRegistry(reg *nodes.Registry) option { return func(c *Config) { c.Registry = reg } }
func paused() option                          { return func(c *Config) { c.Paused = true } }

// newFixture starts a server on fresh folders (or the folders of base, to reopen them).
func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{DataDir: filepath.Join(dir, "data"), ModelsDir: filepath.Join(dir, "models"),
		InputDir: filepath.Join(dir, "input"), OutputDir: filepath.Join(dir, "output"), TempDir: filepath.Join(dir, "temp")}
	for _, o := range opts {
		o(&cfg)
	}
	return startFixture(t, cfg)
}

func startFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	f := &fixture{t: t, cfg: cfg, srv: srv, ts: ts, client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
	t.Cleanup(f.close)
	return f
}

func (f *fixture) close() {
	if f.closed {
		return
	}
	f.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		f.t.Errorf("Shutdown: %v", err)
	}
	f.ts.Close()
	f.client.CloseIdleConnections()
}

// reopen shuts the server down and starts a new one on the same folders.
func (f *fixture) reopen(opts ...option) *fixture {
	f.t.Helper()
	f.close()
	cfg := f.cfg
	cfg.Paused = false
	for _, o := range opts {
		o(&cfg)
	}
	return startFixture(f.t, cfg)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t testing.TB) *ojson.Object {
	t.Helper()
	v, err := ojson.Decode(r.body)
	if err != nil {
		t.Fatalf("response is not JSON (%d): %v: %s", r.status, err, r.body)
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		t.Fatalf("response is not a JSON object: %s", r.body)
	}
	return obj
}

func (f *fixture) do(method, path string, body io.Reader, headers ...string) *response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) get(path string, headers ...string) *response {
	f.t.Helper()
	return f.do(http.MethodGet, path, nil, headers...)
}

func (f *fixture) post(path, body string, headers ...string) *response {
	f.t.Helper()
	return f.do(http.MethodPost, path, strings.NewReader(body), headers...)
}

// queuePrompt posts {"prompt": prompt, ...extra} and returns the prompt id (fails on non-200).
func (f *fixture) queuePrompt(prompt string, extra ...string) string {
	f.t.Helper()
	body := `{"prompt": ` + prompt
	for _, e := range extra {
		body += ", " + e
	}
	body += "}"
	r := f.post("/prompt", body)
	if r.status != http.StatusOK {
		f.t.Fatalf("POST /prompt = %d: %s", r.status, r.body)
	}
	id, _ := r.json(f.t).Get("prompt_id")
	return id.(string)
}

// waitHistory polls /history/{id} until the entry exists.
func (f *fixture) waitHistory(id string, timeout time.Duration) *ojson.Object {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		obj := f.get("/history/" + id).json(f.t)
		if e, ok := obj.Get(id); ok {
			return e.(*ojson.Object)
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("prompt %s did not reach history within %v", id, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statusStr(t testing.TB, entry *ojson.Object) string {
	t.Helper()
	st, _ := entry.Get("status")
	s, _ := st.(*ojson.Object).Get("status_str")
	return s.(string)
}

// ---- websocket client

type wsConn struct {
	t    testing.TB
	conn *websocket.Conn
}

type wsMsg struct {
	binary bool
	typ    string
	data   *ojson.Object
	raw    []byte
}

func (f *fixture) dial(query string, headers ...string) *wsConn {
	f.t.Helper()
	c, resp, err := f.dialErr(query, headers...)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		f.t.Fatalf("websocket dial %s: %v (status %d)", query, err, status)
	}
	return c
}

func (f *fixture) dialErr(query string, headers ...string) (*wsConn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(f.ts.URL, "http") + "/ws" + query
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	conn, resp, err := websocket.DefaultDialer.Dial(u, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, resp, err
	}
	c := &wsConn{t: f.t, conn: conn}
	f.t.Cleanup(func() { conn.Close() })
	return c, resp, nil
}

func (c *wsConn) read(timeout time.Duration) (*wsMsg, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	typ, b, err := c.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ == websocket.BinaryMessage {
		return &wsMsg{binary: true, raw: b}, nil
	}
	v, err := ojson.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("server sent invalid JSON %q: %w", b, err)
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		return nil, fmt.Errorf("server sent a non-object %q", b)
	}
	t, _ := obj.Get("type")
	d, _ := obj.Get("data")
	ts, _ := t.(string)
	do, _ := d.(*ojson.Object)
	return &wsMsg{typ: ts, data: do, raw: b}, nil
}

func (c *wsConn) mustRead(timeout time.Duration) *wsMsg {
	c.t.Helper()
	m, err := c.read(timeout)
	if err != nil {
		c.t.Fatalf("websocket read: %v", err)
	}
	return m
}

// until reads messages until pred is true for one, returning every message read.
func (c *wsConn) until(timeout time.Duration, pred func(*wsMsg) bool) []*wsMsg {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var got []*wsMsg
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("websocket: condition not met within %v; got %d messages: %s", timeout, len(got), summary(got))
		}
		m, err := c.read(left)
		if err != nil {
			c.t.Fatalf("websocket read: %v; got so far: %s", err, summary(got))
		}
		got = append(got, m)
		if pred(m) {
			return got
		}
	}
}

func (c *wsConn) send(v string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(v)); err != nil {
		c.t.Fatalf("websocket write: %v", err)
	}
}

func summary(ms []*wsMsg) string {
	var parts []string
	for _, m := range ms {
		if m.binary {
			parts = append(parts, fmt.Sprintf("binary(%d)", len(m.raw)))
			continue
		}
		parts = append(parts, string(m.raw))
	}
	s := strings.Join(parts, "\n")
	if len(s) > 4000 {
		s = s[:4000] + "..."
	}
	return s
}

func str(o *ojson.Object, k string) string {
	if o == nil {
		return ""
	}
	v, _ := o.Get(k)
	s, _ := v.(string)
	return s
}

func isDone(promptID string) func(*wsMsg) bool {
	return func(m *wsMsg) bool {
		if m.typ != "executing" || str(m.data, "prompt_id") != promptID {
			return false
		}
		v, ok := m.data.Get("node")
		return ok && v == nil
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := ojson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compactJSON(t testing.TB, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return buf.String()
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
