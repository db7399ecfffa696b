package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

func outPrompt(v int) string {
	return fmt.Sprintf(`{"1": {"class_type": "TestOut", "inputs": {"value": %d}}}`, v)
}

// Prompts accepted by a server that never ran its queue all run, in queue order, after a restart
// on the same data dir.
func TestRestartDurability(t *testing.T) {
	reg := testRegistry(newBlockNode())
	f := newFixture(t, withRegistry(reg), paused())
	type accepted struct {
		id     string
		number float64
	}
	var all []accepted
	counted := 0
	for i := 0; i < 12; i++ {
		extra := []string{}
		switch {
		case i%5 == 3:
			extra = append(extra, `"front": true`)
		case i%5 == 4:
			extra = append(extra, fmt.Sprintf(`"number": %d.5`, i))
		}
		if i%5 != 4 {
			counted++ // the server's counter advances only when no number is given
		}
		body := `{"prompt": ` + outPrompt(i)
		for _, e := range extra {
			body += ", " + e
		}
		r := f.post("/prompt", body+"}")
		if r.status != http.StatusOK {
			t.Fatalf("POST /prompt = %d %s", r.status, r.body)
		}
		obj := r.json(t)
		n, _ := obj.Get("number")
		num, _ := n.(json.Number).Float64()
		all = append(all, accepted{id: str(obj, "prompt_id"), number: num})
	}
	// A pending prompt survives a restart and an outright deletion is kept too.
	deleted := all[1].id
	if r := f.post("/queue", `{"delete": ["`+deleted+`"]}`); r.status != http.StatusOK {
		t.Fatalf("delete = %d", r.status)
	}
	q := f.get("/queue").json(t)
	pv, _ := q.Get("queue_pending")
	if len(pv.([]any)) != 11 {
		t.Fatalf("pending before restart: %d", len(pv.([]any)))
	}

	g := f.reopen(withRegistry(reg))
	for _, a := range all {
		if a.id == deleted {
			continue
		}
		e := g.waitHistory(a.id, 10*time.Second)
		if statusStr(t, e) != "success" {
			t.Fatalf("prompt %s: %s", a.id, mustJSON(t, e))
		}
	}
	if h := g.get("/history/" + deleted).json(t); h.Len() != 0 {
		t.Fatalf("a deleted prompt ran after the restart")
	}
	// History order is run order: by number, then insertion.
	hist := g.get("/history").json(t)
	var order []string
	for _, id := range hist.Keys() {
		order = append(order, id)
	}
	var want []string
	rest := append([]accepted(nil), all...)
	for len(rest) > 0 {
		best := 0
		for i := range rest {
			if rest[i].number < rest[best].number {
				best = i
			}
		}
		if rest[best].id != deleted {
			want = append(want, rest[best].id)
		}
		rest = append(rest[:best], rest[best+1:]...)
	}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("run order after restart\n got %v\nwant %v", order, want)
	}
	// The number counter continues after the restart.
	r := g.post("/prompt", `{"prompt": `+outPrompt(99)+`}`)
	if n, _ := r.json(t).Get("number"); mustJSON(t, n) != fmt.Sprint(counted) {
		t.Fatalf("number after restart = %v, want %d", n, counted)
	}
}

// simulateCrash marks the prompt as running in the store as the worker does, then drops the
// server without the graceful requeue: the state a kill -9 leaves.
func simulateCrash(t *testing.T, f *fixture, promptID string) {
	t.Helper()
	f.close()
	st, err := openStore(context.Background(), f.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	items, err := st.loadQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.PromptID == promptID {
			if err := st.markRunning(context.Background(), it.Seq); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("prompt %s is not in the stored queue", promptID)
}

func messageTypes(t *testing.T, entry *ojson.Object) []string {
	t.Helper()
	sv, _ := entry.Get("status")
	mv, _ := sv.(*ojson.Object).Get("messages")
	var out []string
	for _, m := range mv.([]any) {
		out = append(out, m.([]any)[0].(string))
	}
	return out
}

// The crash rule: running at crash → history "interrupted" and re-queued once; running at a
// second crash → history "failed", not re-queued.
func TestCrashRecoveryRule(t *testing.T) {
	reg := testRegistry(newBlockNode())
	f := newFixture(t, withRegistry(reg), paused())
	a := f.queuePrompt(outPrompt(1))
	b := f.queuePrompt(outPrompt(2))
	simulateCrash(t, f, a)

	g := f.reopen(withRegistry(reg), paused())
	e := g.waitHistory(a, time.Second)
	if statusStr(t, e) != "error" || strings.Join(messageTypes(t, e), ",") != "execution_interrupted" {
		t.Fatalf("after the first crash: %s", mustJSON(t, e))
	}
	job := g.get("/api/jobs/" + a).json(t)
	if str(job, "status") != "pending" {
		t.Fatalf("re-queued prompt's job status = %s", mustJSON(t, job))
	}
	q := g.get("/queue").json(t)
	pv, _ := q.Get("queue_pending")
	if got := len(pv.([]any)); got != 2 {
		t.Fatalf("queue after the first crash has %d pending, want 2 (a re-queued, b)", got)
	}
	simulateCrash(t, g, a)

	h := g.reopen(withRegistry(reg), paused())
	e = h.waitHistory(a, time.Second)
	if statusStr(t, e) != "error" || strings.Join(messageTypes(t, e), ",") != "execution_error" {
		t.Fatalf("after the second crash: %s", mustJSON(t, e))
	}
	if !strings.Contains(mustJSON(t, e), `"exception_type":"ServerCrash"`) {
		t.Fatalf("failed entry lacks ServerCrash: %s", mustJSON(t, e))
	}
	if job := h.get("/api/jobs/" + a).json(t); str(job, "status") != "failed" {
		t.Fatalf("job after the second crash = %s", mustJSON(t, job))
	}
	q = h.get("/queue").json(t)
	pv, _ = q.Get("queue_pending")
	if got := mustJSON(t, pv); !strings.Contains(got, b) || strings.Contains(got, a) {
		t.Fatalf("queue after the second crash = %s", got)
	}
	h.srv.Resume()
	if e := h.waitHistory(b, 10*time.Second); statusStr(t, e) != "success" {
		t.Fatalf("b = %s", mustJSON(t, e))
	}
}

// A graceful shutdown interrupts the running prompt and puts it back: it runs on the next start
// without an "interrupted" history entry.
func TestGracefulShutdownRequeuesRunningPrompt(t *testing.T) {
	block := newBlockNode()
	reg := testRegistry(block)
	f := newFixture(t, withRegistry(reg))
	id := f.queuePrompt(`{"1": {"class_type": "TestBlock", "inputs": {"key": "g"}}}`)
	select {
	case <-block.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not start")
	}
	g := f.reopen(withRegistry(reg))
	select {
	case <-block.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not start again after the restart")
	}
	if h := g.get("/history/" + id).json(t); h.Len() != 0 {
		t.Fatalf("a gracefully stopped prompt got a history entry: %s", mustJSON(t, h))
	}
	block.release("g")
	if e := g.waitHistory(id, 10*time.Second); statusStr(t, e) != "success" {
		t.Fatalf("after release: %s", mustJSON(t, e))
	}
}

func TestSecondServerOnSameDataDirRefused(t *testing.T) {
	f := newFixture(t)
	cfg := f.cfg
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on the same data dir: err = %v", err)
	}
}

func TestHistoryCapAndParams(t *testing.T) {
	reg := testRegistry(newBlockNode())
	f := newFixture(t, withRegistry(reg), func(c *Config) { c.MaxHistory = 4 })
	var ids []string
	for i := 0; i < 6; i++ {
		id := f.queuePrompt(outPrompt(i))
		f.waitHistory(id, 10*time.Second)
		ids = append(ids, id)
	}
	keys := func(path string) string {
		return strings.Join(f.get(path).json(t).Keys(), ",")
	}
	kept := ids[2:]
	if got := keys("/history"); got != strings.Join(kept, ",") {
		t.Fatalf("capped history = %s, want %v", got, kept)
	}
	cases := map[string][]string{
		"/history?max_items=2":          kept[2:],
		"/history?max_items=2&offset=1": kept[1:3],
		"/history?offset=3":             kept[3:],
		"/history?max_items=0":          nil,
		"/history?max_items=10":         kept,
		"/history?offset=-1":            kept,
	}
	for path, want := range cases {
		if got := keys(path); got != strings.Join(want, ",") {
			t.Errorf("%s = %s, want %v", path, got, want)
		}
	}
	if r := f.get("/history?max_items=abc"); r.status != http.StatusBadRequest {
		t.Errorf("bad max_items = %d", r.status)
	}
	if r := f.post("/history", `{"delete": ["`+kept[0]+`"]}`); r.status != http.StatusOK {
		t.Fatalf("history delete = %d", r.status)
	}
	if got := keys("/history"); got != strings.Join(kept[1:], ",") {
		t.Fatalf("after delete = %s", got)
	}
	if r := f.post("/history", `{"clear": true}`); r.status != http.StatusOK {
		t.Fatalf("history clear = %d", r.status)
	}
	if got := keys("/history"); got != "" {
		t.Fatalf("after clear = %s", got)
	}
}
