package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image/jpeg"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

func TestAPIPrefixDuplicates(t *testing.T) {
	f := newFixture(t)
	writeFile(t, filepath.Join(f.cfg.ModelsDir, "checkpoints", "a.safetensors"), []byte("x"))
	writeFile(t, filepath.Join(f.cfg.ModelsDir, "embeddings", "e.pt"), []byte("x"))
	f.waitHistory(f.queuePrompt(imagePrompt), 10*time.Second)
	paths := []string{"/prompt", "/queue", "/object_info", "/object_info/EmptyImage", "/object_info/Nope",
		"/features", "/models", "/models/checkpoints", "/models/nope", "/embeddings", "/extensions", "/history?max_items=5"}
	for _, p := range paths {
		a, b := f.get(p), f.get("/api"+p)
		if a.status != b.status || !bytes.Equal(a.body, b.body) {
			t.Errorf("%s = %d %q but /api%s = %d %q", p, a.status, a.body, p, b.status, b.body)
		}
	}
	// Routes declared under /api/ also answer under /api/api/.
	for _, p := range []string{"/api/jobs", "/api/jobs/00000000-0000-4000-8000-000000000000"} {
		a, b := f.get(p), f.get("/api"+p)
		if a.status != b.status {
			t.Errorf("%s = %d but /api%s = %d", p, a.status, p, b.status)
		}
	}
	if r := f.get("/system_stats"); r.status != 200 || !strings.Contains(string(r.body), `"devices":[`) {
		t.Errorf("system_stats = %d %s", r.status, r.body)
	}
	if r := f.get("/api/system_stats"); r.status != 200 {
		t.Errorf("/api/system_stats = %d", r.status)
	}
	if r := f.get("/models/checkpoints"); compactJSON(t, r.body) != `["a.safetensors"]` {
		t.Errorf("models/checkpoints = %s", r.body)
	}
	if r := f.get("/embeddings"); compactJSON(t, r.body) != `["e"]` {
		t.Errorf("embeddings = %s", r.body)
	}
	if r := f.get("/models/nope"); r.status != http.StatusNotFound {
		t.Errorf("unknown model folder = %d", r.status)
	}
	if r := f.get("/object_info/Nope"); compactJSON(t, r.body) != `{}` {
		t.Errorf("unknown class = %s", r.body)
	}
	if r := f.get("/object_info"); !bytes.Contains(r.body, []byte(`"SaveImage":{`)) {
		t.Errorf("object_info lacks SaveImage")
	}
	if r := f.post("/view", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /view = %d", r.status)
	}
}

func TestMalformedRequests(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		body    string
		errType string
	}{
		{`{`, "invalid_json"},
		{``, "invalid_json"},
		{`[]`, "invalid_prompt"},
		{`"x"`, "invalid_prompt"},
		{`{"client_id": "x"}`, "no_prompt"},
		{`{"prompt": []}`, "invalid_prompt"},
		{`{"prompt": {"1": 5}}`, "invalid_prompt"},
		{`{"prompt": {"1": {"class_type": 5}}}`, "invalid_prompt"},
		{`{"prompt": {"1": {"class_type": "SaveImage", "inputs": 3}}}`, "invalid_prompt"},
		{`{"prompt": {}, "prompt_id": "ABC"}`, "invalid_prompt_id"},
		{`{"prompt": {}, "prompt_id": "E2B1C7D4-5F7A-4B7E-9A51-0D2B8F5C1A33"}`, "invalid_prompt_id"},
		{`{"prompt": {}, "prompt_id": 7}`, "invalid_prompt_id"},
		{`{"prompt": {}, "number": "abc"}`, "invalid_prompt"},
		{`{"prompt": {}, "number": {}}`, "invalid_prompt"},
		{`{"prompt": {}, "client_id": 5}`, "invalid_prompt"},
		{`{"prompt": {}, "extra_data": []}`, "invalid_prompt"},
		{`{"prompt": {}, "partial_execution_targets": "9"}`, "invalid_prompt"},
		{`{"prompt": {}, "partial_execution_targets": [9]}`, "invalid_prompt"},
		{`{"prompt": {}}`, "prompt_no_outputs"},
		{`{"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}`, "missing_node_type"},
		{strings.Repeat("[", 100000), "invalid_json"},
	}
	for _, c := range cases {
		r := f.post("/prompt", c.body)
		if r.status != http.StatusBadRequest {
			t.Errorf("POST /prompt %.60q = %d %s", c.body, r.status, r.body)
			continue
		}
		obj := r.json(t)
		ev, _ := obj.Get("error")
		eo, ok := ev.(*ojson.Object)
		if !ok || str(eo, "type") != c.errType {
			t.Errorf("POST /prompt %.60q error = %s, want type %s", c.body, r.body, c.errType)
		}
		if ne, ok := obj.Get("node_errors"); !ok || ne == nil {
			t.Errorf("POST /prompt %.60q: no node_errors", c.body)
		}
	}
	// Validation failure: ComfyUI's body with node_errors.
	r := f.post("/prompt", `{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}},
		"2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}}`)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"type":"prompt_outputs_failed_validation"`) ||
		!strings.Contains(string(r.body), `"value_smaller_than_min"`) || !strings.Contains(string(r.body), `"dependent_outputs":["2"]`) {
		t.Errorf("validation failure = %d %s", r.status, r.body)
	}
	for _, c := range []struct{ path, body string }{
		{"/queue", `{`}, {"/queue", `[]`}, {"/queue", `{"delete": "x"}`},
		{"/history", `nope`}, {"/history", `{"delete": 5}`},
		{"/free", `{`},
	} {
		if r := f.post(c.path, c.body); r.status != http.StatusBadRequest {
			t.Errorf("POST %s %q = %d", c.path, c.body, r.status)
		}
	}
	// /interrupt tolerates anything.
	for _, b := range []string{``, `{`, `[]`, `{"prompt_id": 5}`} {
		if r := f.post("/interrupt", b); r.status != http.StatusOK {
			t.Errorf("POST /interrupt %q = %d", b, r.status)
		}
	}
	if r := f.post("/api/jobs/cancel", `{`); r.status != http.StatusBadRequest || compactJSON(t, r.body) != `{"error":"Request body must be valid JSON"}` {
		t.Errorf("jobs/cancel bad JSON = %d %s", r.status, r.body)
	}
	if r := f.post("/api/jobs/cancel", `{"job_ids": "x"}`); r.status != http.StatusBadRequest {
		t.Errorf("jobs/cancel non-list = %d", r.status)
	}
	if r := f.post("/api/jobs/cancel", `{"job_ids": ["nope", 5]}`); r.status != http.StatusBadRequest ||
		compactJSON(t, r.body) != `{"error":"job_ids contains invalid id(s)","invalid_ids":["nope","5"]}` {
		t.Errorf("jobs/cancel invalid ids = %d %s", r.status, r.body)
	}
	for _, q := range []string{"status=bogus", "sort_by=x", "sort_order=up", "limit=0", "limit=x", "offset=x"} {
		if r := f.get("/api/jobs?" + q); r.status != http.StatusBadRequest {
			t.Errorf("/api/jobs?%s = %d", q, r.status)
		}
	}
	// Nothing was queued by any of it.
	if r := f.get("/prompt"); compactJSON(t, r.body) != `{"exec_info":{"queue_remaining":0}}` {
		t.Errorf("queue after malformed requests: %s", r.body)
	}
}

func TestQueueNumbersAndOrder(t *testing.T) {
	f := newFixture(t, withRegistry(testRegistry(newBlockNode())), paused())
	post := func(extra string) (string, string) {
		r := f.post("/prompt", `{"prompt": `+outPrompt(1)+extra+`}`)
		if r.status != http.StatusOK {
			t.Fatalf("POST = %d %s", r.status, r.body)
		}
		obj := r.json(t)
		n, _ := obj.Get("number")
		return str(obj, "prompt_id"), mustJSON(t, n)
	}
	a, na := post("")
	b, nb := post(`, "front": true`)
	c, nc := post(`, "number": 5`)
	d, nd := post(`, "number": -0.5`)
	e, ne := post(`, "prompt_id": "e2b1c7d4-5f7a-4b7e-9a51-0d2b8f5c1a33"`)
	if na != "0" || nb != "-1" || nc != "5.0" || nd != "-0.5" || ne != "2" {
		t.Fatalf("numbers = %s %s %s %s %s", na, nb, nc, nd, ne)
	}
	if e != "e2b1c7d4-5f7a-4b7e-9a51-0d2b8f5c1a33" {
		t.Fatalf("client prompt_id not kept: %s", e)
	}
	if r := f.post("/prompt", `{"prompt": `+outPrompt(1)+`, "prompt_id": "`+e+`"}`); r.status != http.StatusBadRequest {
		t.Fatalf("duplicate queued prompt_id = %d", r.status)
	}
	q := f.get("/queue").json(t)
	pv, _ := q.Get("queue_pending")
	var order []string
	for _, it := range pv.([]any) {
		tuple := it.([]any)
		if len(tuple) != 5 {
			t.Fatalf("queue item has %d elements", len(tuple))
		}
		order = append(order, tuple[1].(string))
	}
	if strings.Join(order, ",") != strings.Join([]string{b, d, a, e, c}, ",") {
		t.Fatalf("pending order %v", order)
	}
	// Secrets never show; client_id and usage source do.
	f.post("/prompt", `{"prompt": `+outPrompt(2)+`, "client_id": "me", "extra_data": {"api_key_comfy_org": "SECRET", "auth_token_comfy_org": "SECRET2"}}`, "Comfy-Usage-Source", "test")
	for _, p := range []string{"/queue", "/api/jobs"} {
		body := f.get(p).body
		if bytes.Contains(body, []byte("SECRET")) {
			t.Fatalf("%s shows a secret: %s", p, body)
		}
	}
	if !bytes.Contains(f.get("/queue").body, []byte(`"client_id":"me","comfy_usage_source":"test"`)) {
		t.Fatalf("extra_data lacks client_id/usage source: %s", f.get("/queue").body)
	}
	// Deleting and clearing.
	f.post("/queue", `{"delete": ["`+a+`", "nope"]}`)
	if bytes.Contains(f.get("/queue").body, []byte(a)) {
		t.Fatalf("deleted prompt still queued")
	}
	if r := f.post("/api/jobs/"+b+"/cancel", ""); compactJSON(t, r.body) != `{"cancelled":true}` {
		t.Fatalf("cancel pending = %s", r.body)
	}
	if r := f.post("/api/jobs/"+b+"/cancel", ""); compactJSON(t, r.body) != `{"cancelled":false}` {
		t.Fatalf("cancel again = %s", r.body)
	}
	jobs := f.get("/api/jobs?status=pending&sort_order=asc&limit=2").json(t)
	pg, _ := jobs.Get("pagination")
	if mustJSON(t, pg) != `{"offset":0,"limit":2,"total":4,"has_more":true}` {
		t.Fatalf("pagination = %s", mustJSON(t, pg))
	}
	f.post("/queue", `{"clear": true}`)
	if r := f.get("/queue"); compactJSON(t, r.body) != `{"queue_running":[],"queue_pending":[]}` {
		t.Fatalf("queue after clear = %s", r.body)
	}
	// Nothing comes back after a restart either.
	g := f.reopen(withRegistry(testRegistry(newBlockNode())), paused())
	if r := g.get("/queue"); compactJSON(t, r.body) != `{"queue_running":[],"queue_pending":[]}` {
		t.Fatalf("queue after clear and restart = %s", r.body)
	}
}

func TestInterruptAndCancelRunning(t *testing.T) {
	block := newBlockNode()
	f := newFixture(t, withRegistry(testRegistry(block)))
	ws := f.dial("?clientId=me")
	ws.mustRead(5 * time.Second)
	a := f.queuePrompt(`{"1": {"class_type": "TestBlock", "inputs": {"key": "a"}}}`, `"client_id": "me"`)
	<-block.started
	b := f.queuePrompt(`{"1": {"class_type": "TestBlock", "inputs": {"key": "b"}}}`, `"client_id": "me"`)
	q := f.get("/queue").json(t)
	rv, _ := q.Get("queue_running")
	if !strings.Contains(mustJSON(t, rv), a) {
		t.Fatalf("running = %s", mustJSON(t, rv))
	}
	if j := f.get("/api/jobs/" + a).json(t); str(j, "status") != "in_progress" {
		t.Fatalf("job a = %s", mustJSON(t, j))
	}
	// Interrupting another id does nothing.
	f.post("/interrupt", `{"prompt_id": "`+b+`"}`)
	time.Sleep(20 * time.Millisecond)
	if h := f.get("/history/" + a).json(t); h.Len() != 0 {
		t.Fatalf("a targeted interrupt of a pending prompt stopped the running one")
	}
	f.post("/api/interrupt", `{"prompt_id": "`+a+`"}`)
	msgs := ws.until(10*time.Second, isDone(a))
	found := false
	for _, m := range msgs {
		if m.typ == "execution_interrupted" && str(m.data, "prompt_id") == a && str(m.data, "node_id") == "1" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no execution_interrupted:\n%s", summary(msgs))
	}
	e := f.waitHistory(a, time.Second)
	if statusStr(t, e) != "error" {
		t.Fatalf("interrupted entry = %s", mustJSON(t, e))
	}
	if j := f.get("/api/jobs/" + a).json(t); str(j, "status") != "cancelled" {
		t.Fatalf("interrupted job = %s", mustJSON(t, j))
	}
	// b runs next; cancel it by id while it runs.
	if key := <-block.started; key != "b" {
		t.Fatalf("started %q", key)
	}
	if r := f.post("/api/jobs/cancel", `{"job_ids": ["`+b+`"]}`); compactJSON(t, r.body) != `{"cancelled":true}` {
		t.Fatalf("cancel running = %s", r.body)
	}
	ws.until(10*time.Second, isDone(b))
	if j := f.get("/api/jobs/" + b).json(t); str(j, "status") != "cancelled" {
		t.Fatalf("cancelled job = %s", mustJSON(t, j))
	}
	// A client that reconnects during a run is told the running node.
	c := f.queuePrompt(`{"7": {"class_type": "TestBlock", "inputs": {"key": "c"}}}`, `"client_id": "me"`)
	<-block.started
	ws2 := f.dial("?clientId=me")
	ws2.mustRead(5 * time.Second)
	if m := ws2.mustRead(5 * time.Second); m.typ != "executing" || str(m.data, "node") != "7" {
		t.Fatalf("reconnect during a run: %s", m.raw)
	}
	block.release("c")
	f.waitHistory(c, 10*time.Second)
}

func TestReconnectSameClientIDCompareAndRemove(t *testing.T) {
	f := newFixture(t, withRegistry(testRegistry(newBlockNode())))
	old := f.dial("?clientId=same")
	old.mustRead(5 * time.Second)
	fresh := f.dial("?clientId=same")
	fresh.mustRead(5 * time.Second)
	old.conn.Close()
	// Wait until the server has processed the old connection's end.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.srv.hub.mu.Lock()
		n := len(f.srv.hub.conns)
		f.srv.hub.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old connection still tracked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	id := f.queuePrompt(outPrompt(3), `"client_id": "same"`)
	msgs := fresh.until(10*time.Second, isDone(id))
	if len(msgs) < 3 {
		t.Fatalf("the new connection got %s", summary(msgs))
	}
}

func TestAuthToken(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuthToken = "s3cret" })
	if r := f.get("/prompt"); r.status != http.StatusUnauthorized {
		t.Fatalf("no token = %d", r.status)
	}
	if r := f.get("/prompt", "Authorization", "Bearer wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong token = %d", r.status)
	}
	if r := f.get("/prompt", "Authorization", "Basic s3cret"); r.status != http.StatusUnauthorized {
		t.Fatalf("basic scheme = %d", r.status)
	}
	if r := f.get("/prompt?token=wrong"); r.status != http.StatusUnauthorized || r.header.Get("Set-Cookie") != "" {
		t.Fatalf("wrong query token = %d, Set-Cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
	if r := f.get("/prompt?token=s3cret"); r.status != http.StatusOK {
		t.Fatalf("query token on a plain route = %d", r.status)
	}
	// The web UI: /?token= serves the page and sets the cookie that later requests (fetches,
	// the websocket) carry instead of a header.
	page := f.get("/?token=s3cret")
	// The UI handler may narrow the referrer policy to same-origin; the URL never leaves the site.
	if rp := page.header.Get("Referrer-Policy"); page.status != http.StatusOK || (rp != "no-referrer" && rp != "same-origin") {
		t.Fatalf("/?token= = %d %v", page.status, page.header)
	}
	cookies := (&http.Response{Header: page.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != authCookie || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode ||
		cookies[0].Path != "/" || strings.Contains(cookies[0].Value, "s3cret") {
		t.Fatalf("auth cookie = %+v", cookies)
	}
	cookie := authCookie + "=" + cookies[0].Value
	for _, tc := range []struct {
		cookie string
		want   int
	}{
		{cookie, http.StatusOK},
		{authCookie + "=" + strings.Repeat("0", len(cookies[0].Value)), http.StatusUnauthorized},
		{authCookie + "=s3cret", http.StatusUnauthorized},
		{"other=" + cookies[0].Value, http.StatusUnauthorized},
	} {
		if r := f.get("/api/queue", "Cookie", tc.cookie); r.status != tc.want {
			t.Errorf("cookie %q: /api/queue = %d, want %d", tc.cookie, r.status, tc.want)
		}
	}
	wsc := f.dial("?clientId=c", "Cookie", cookie)
	if m := wsc.mustRead(5 * time.Second); m.typ != "status" {
		t.Fatalf("ws with the cookie: %s", m.raw)
	}
	// Another server's token gives another cookie.
	g := newFixture(t, func(c *Config) { c.AuthToken = "other" })
	if r := g.get("/api/queue", "Cookie", cookie); r.status != http.StatusUnauthorized {
		t.Fatalf("a cookie of another token = %d", r.status)
	}
	if r := f.get("/", "Authorization", "Bearer s3cret"); r.status != http.StatusOK {
		t.Fatalf("/ with token = %d", r.status)
	}
	for _, p := range []string{"/prompt", "/api/queue", "/view?filename=x.png", "/api/jobs"} {
		if r := f.get(p); r.status != http.StatusUnauthorized {
			t.Errorf("%s without token = %d", p, r.status)
		}
		if r := f.get(p, "Authorization", "bearer s3cret"); r.status == http.StatusUnauthorized {
			t.Errorf("%s with token = %d", p, r.status)
		}
	}
	if _, resp, err := f.dialErr("?clientId=x"); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket without token: err=%v", err)
	}
	ws := f.dial("?clientId=x&token=s3cret")
	if m := ws.mustRead(5 * time.Second); m.typ != "status" {
		t.Fatalf("ws with ?token: %s", m.raw)
	}
	ws2 := f.dial("?clientId=y", "Authorization", "Bearer s3cret")
	ws2.mustRead(5 * time.Second)
}

func TestOriginGuardAndCORS(t *testing.T) {
	f := newFixture(t)
	host := strings.TrimPrefix(f.ts.URL, "http://")
	port := host[strings.LastIndex(host, ":"):]
	cases := []struct {
		headers []string
		want    int
	}{
		{nil, 200},
		{[]string{"Origin", "http://" + host}, 200},
		{[]string{"Origin", "http://127.0.0.1"}, 200},
		{[]string{"Origin", "http://evil.example" + port}, 403},
		{[]string{"Origin", "http://evil.example"}, 403},
		{[]string{"Origin", "null"}, 403},
		{[]string{"Sec-Fetch-Site", "cross-site"}, 403},
		{[]string{"Sec-Fetch-Site", "same-origin", "Origin", "http://" + host}, 200},
	}
	for _, c := range cases {
		if r := f.get("/prompt", c.headers...); r.status != c.want {
			t.Errorf("headers %v = %d, want %d", c.headers, r.status, c.want)
		}
	}
	// A non-loopback Host is not guarded (ComfyUI's rule).
	if r := f.get("/prompt", "Host", "myserver.lan:8188", "Origin", "http://other.lan"); r.status != 200 {
		t.Errorf("non-loopback host = %d", r.status)
	}
	if _, resp, err := f.dialErr("?clientId=x", "Origin", "http://evil.example"); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("cross-origin websocket: err=%v", err)
	}
	g := newFixture(t, func(c *Config) { c.CORSOrigin = "*" })
	r := g.do(http.MethodOptions, "/prompt", nil, "Origin", "http://evil.example", "Access-Control-Request-Method", "POST")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("CORS preflight = %d %v", r.status, r.header)
	}
	if r := g.get("/prompt", "Origin", "http://evil.example"); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS request = %d %v", r.status, r.header)
	}
}

func TestPreviewFrames(t *testing.T) {
	f := newFixture(t, withRegistry(testRegistry(newBlockNode())), func(c *Config) { c.PreviewSize = 32 })
	meta := f.dial("?clientId=meta")
	meta.mustRead(5 * time.Second)
	meta.send(`{"type": "feature_flags", "data": {"supports_preview_metadata": true}}`)
	meta.mustRead(5 * time.Second)
	legacy := f.dial("?clientId=legacy")
	legacy.mustRead(5 * time.Second)
	legacy.send(`{"type": "hello"}`)
	legacy.send(`{"type": "feature_flags", "data": {"supports_preview_metadata": true}}`) // not the first message: ignored

	prompt := `{"5": {"class_type": "TestSpam", "inputs": {"steps": 2, "previews": true}}}`
	idm := f.queuePrompt(prompt, `"client_id": "meta"`)
	msgs := meta.until(10*time.Second, isDone(idm))
	var kinds []string
	for _, m := range msgs {
		if !m.binary {
			kinds = append(kinds, m.typ)
			continue
		}
		kinds = append(kinds, "preview")
		if binary.BigEndian.Uint32(m.raw[0:4]) != 4 {
			t.Fatalf("metadata client got frame type %d", binary.BigEndian.Uint32(m.raw[0:4]))
		}
		n := binary.BigEndian.Uint32(m.raw[4:8])
		var md map[string]any
		if err := json.Unmarshal(m.raw[8:8+n], &md); err != nil {
			t.Fatalf("metadata: %v", err)
		}
		if md["node_id"] != "5" || md["prompt_id"] != idm || md["image_type"] != "image/jpeg" || md["real_node_id"] != "5" {
			t.Fatalf("metadata = %v", md)
		}
		img, err := jpeg.Decode(bytes.NewReader(m.raw[8+n:]))
		if err != nil {
			t.Fatalf("preview image: %v", err)
		}
		if img.Bounds().Dx() != 32 || img.Bounds().Dy() != 24 {
			t.Fatalf("preview not fitted to 32: %v", img.Bounds())
		}
	}
	got := strings.Join(kinds, ",")
	if !strings.Contains(got, "executing,progress_state,preview,progress,progress_state,preview,progress,executed,progress_state") {
		t.Fatalf("preview order: %s", got)
	}
	idl := f.queuePrompt(prompt, `"client_id": "legacy"`)
	msgs = legacy.until(10*time.Second, isDone(idl))
	previews := 0
	kinds = kinds[:0]
	for _, m := range msgs {
		if !m.binary {
			kinds = append(kinds, m.typ)
		}
		if m.binary {
			kinds = append(kinds, "preview")
			previews++
			if binary.BigEndian.Uint32(m.raw[0:4]) != 1 || binary.BigEndian.Uint32(m.raw[4:8]) != 1 {
				t.Fatalf("legacy client got header % x", m.raw[:8])
			}
			if _, err := jpeg.Decode(bytes.NewReader(m.raw[8:])); err != nil {
				t.Fatalf("legacy preview: %v", err)
			}
		}
		if m.typ == "feature_flags" {
			t.Fatalf("a late feature_flags message was answered")
		}
	}
	if previews != 2 {
		t.Fatalf("legacy client got %d previews", previews)
	}
	// ComfyUI sends the legacy frame after the step's progress (the type 4 frame before it).
	if got := strings.Join(kinds, ","); !strings.Contains(got, "executing,progress_state,progress,preview,progress_state,progress,preview,executed,progress_state") {
		t.Fatalf("legacy preview order: %s", got)
	}
	// preview_method none in extra_data: no previews.
	idn := f.queuePrompt(prompt, `"client_id": "legacy"`, `"extra_data": {"preview_method": "none"}`)
	for _, m := range legacy.until(10*time.Second, isDone(idn)) {
		if m.binary {
			t.Fatalf("preview sent with preview_method none")
		}
	}
}

func TestFree(t *testing.T) {
	f := newFixture(t)
	if r := f.post("/free", `{"unload_models": true, "free_memory": true}`); r.status != http.StatusOK {
		t.Fatalf("free = %d", r.status)
	}
	id := f.queuePrompt(imagePrompt)
	f.waitHistory(id, 10*time.Second)
	f.post("/free", `{"free_memory": true}`)
	// After freeing, a rerun is not answered from the cache.
	ws := f.dial("?clientId=z")
	ws.mustRead(5 * time.Second)
	id2 := f.queuePrompt(imagePrompt, `"client_id": "z"`)
	for _, m := range ws.until(10*time.Second, isDone(id2)) {
		if m.typ == "execution_cached" {
			if n, _ := m.data.Get("nodes"); mustJSON(t, n) != `[]` {
				t.Fatalf("cache survived /free: %s", m.raw)
			}
		}
	}
}
