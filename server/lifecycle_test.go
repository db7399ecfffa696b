package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

const imagePrompt = `{"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 16711680}},
 "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "life/test"}, "_meta": {"title": "Save"}}}`

func queueRemainingOf(t testing.TB, m *wsMsg) int64 {
	t.Helper()
	st, _ := m.data.Get("status")
	ei, _ := st.(*ojson.Object).Get("exec_info")
	qr, _ := ei.(*ojson.Object).Get("queue_remaining")
	n, err := qr.(json.Number).Int64()
	if err != nil {
		t.Fatalf("queue_remaining %v: %v", qr, err)
	}
	return n
}

func TestLifecycleImageNodes(t *testing.T) {
	f := newFixture(t)
	ws := f.dial("?clientId=abc")
	hello := ws.mustRead(5 * time.Second)
	if hello.typ != "status" || str(hello.data, "sid") != "abc" || queueRemainingOf(t, hello) != 0 {
		t.Fatalf("first message = %s", hello.raw)
	}
	ws.send(`{"type": "feature_flags", "data": {"supports_preview_metadata": true, "supports_progress_text_metadata": true}}`)
	flags := ws.mustRead(5 * time.Second)
	if flags.typ != "feature_flags" {
		t.Fatalf("feature flag reply = %s", flags.raw)
	}
	if v, _ := flags.data.Get("supports_preview_metadata"); v != true {
		t.Fatalf("server flags lack supports_preview_metadata: %s", flags.raw)
	}

	id := f.queuePrompt(imagePrompt, `"client_id": "abc"`, `"extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-1", "nodes": []}}}`)
	all := ws.until(10*time.Second, isDone(id))

	var types []string
	var msgs []*wsMsg // without progress_state
	for _, m := range all {
		if m.binary {
			t.Fatalf("unexpected binary frame: the image nodes send no previews")
		}
		types = append(types, m.typ)
		if m.typ != "progress_state" {
			msgs = append(msgs, m)
		}
	}
	want := []string{"status", "status", "execution_start", "execution_cached",
		"progress_state", "executing", "progress_state", "progress_state", "executing", "progress_state",
		"progress_state", "executing", "executed", "progress_state", "execution_success", "status", "executing"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("event order\n got %v\nwant %v\n%s", types, want, summary(all))
	}
	// The last progress_state lists every node finished.
	last := all[13]
	if n, _ := last.data.Get("nodes"); str(last.data, "prompt_id") != id || !strings.Contains(mustJSON(t, n), `"3":{"value":1.0,"max":1.0,"state":"finished","node_id":"3","prompt_id":"`+id+`"`) {
		t.Fatalf("final progress_state = %s", last.raw)
	}
	if queueRemainingOf(t, msgs[0]) != 1 || queueRemainingOf(t, msgs[1]) != 1 || queueRemainingOf(t, msgs[9]) != 0 {
		t.Fatalf("status queue_remaining sequence wrong:\n%s", summary(msgs))
	}
	for i, node := range []string{"1", "2", "3"} {
		m := msgs[4+i]
		if str(m.data, "node") != node || str(m.data, "display_node") != node || str(m.data, "prompt_id") != id {
			t.Fatalf("executing %s = %s", node, m.raw)
		}
	}
	for _, m := range []*wsMsg{msgs[2], msgs[3], msgs[8]} {
		if str(m.data, "prompt_id") != id {
			t.Fatalf("%s without prompt_id: %s", m.typ, m.raw)
		}
		if _, ok := m.data.Get("timestamp"); !ok {
			t.Fatalf("%s without timestamp: %s", m.typ, m.raw)
		}
	}
	executed := msgs[7]
	wantOut := `{"images":[{"filename":"test_00001_.png","subfolder":"life","type":"output"}]}`
	if out, _ := executed.data.Get("output"); mustJSON(t, out) != wantOut || str(executed.data, "node") != "3" {
		t.Fatalf("executed = %s", executed.raw)
	}
	if last := msgs[len(msgs)-1]; compactJSON(t, last.raw) != `{"type":"executing","data":{"node":null,"prompt_id":"`+id+`"}}` {
		t.Fatalf("final message = %s", last.raw)
	}

	// History entry shape.
	hist := f.get("/history/" + id).json(t)
	if hist.Len() != 1 {
		t.Fatalf("history/{id} has %d entries", hist.Len())
	}
	ev, _ := hist.Get(id)
	entry := ev.(*ojson.Object)
	if got := strings.Join(entry.Keys(), ","); got != "prompt,outputs,status,meta" {
		t.Fatalf("history entry keys %s", got)
	}
	pv, _ := entry.Get("prompt")
	tuple := pv.([]any)
	if len(tuple) != 5 || mustJSON(t, tuple[0]) != "0" || tuple[1] != id || mustJSON(t, tuple[4]) != `["3"]` {
		t.Fatalf("prompt tuple = %s", mustJSON(t, tuple))
	}
	extra := tuple[3].(*ojson.Object)
	if str(extra, "client_id") != "abc" {
		t.Fatalf("extra_data = %s", mustJSON(t, extra))
	}
	if _, ok := extra.Get("create_time"); !ok {
		t.Fatalf("extra_data lacks create_time: %s", mustJSON(t, extra))
	}
	if p := tuple[2].(*ojson.Object); p.Len() != 3 {
		t.Fatalf("stored prompt = %s", mustJSON(t, p))
	}
	if o, _ := entry.Get("outputs"); mustJSON(t, o) != `{"3":`+wantOut+`}` {
		t.Fatalf("outputs = %s", mustJSON(t, o))
	}
	if m, _ := entry.Get("meta"); mustJSON(t, m) != `{"3":{"node_id":"3","display_node":"3","parent_node":null,"real_node_id":"3"}}` {
		t.Fatalf("meta = %s", mustJSON(t, m))
	}
	sv, _ := entry.Get("status")
	status := sv.(*ojson.Object)
	if str(status, "status_str") != "success" {
		t.Fatalf("status = %s", mustJSON(t, status))
	}
	if c, _ := status.Get("completed"); c != true {
		t.Fatalf("completed = %v", c)
	}
	mv, _ := status.Get("messages")
	var names []string
	for _, m := range mv.([]any) {
		pair := m.([]any)
		names = append(names, pair[0].(string))
		if str(pair[1].(*ojson.Object), "prompt_id") != id {
			t.Fatalf("status message without prompt_id: %s", mustJSON(t, pair))
		}
	}
	if strings.Join(names, ",") != "execution_start,execution_cached,execution_success" {
		t.Fatalf("status messages %v", names)
	}

	// /view of the result: a PNG, inverted colour, the prompt and workflow embedded.
	for _, prefix := range []string{"", "/api"} {
		r := f.get(prefix + "/view?filename=test_00001_.png&subfolder=life&type=output")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s/view = %d %v", prefix, r.status, r.header)
		}
		img, err := png.Decode(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("view body is not a PNG: %v", err)
		}
		if img.Bounds().Dx() != 16 || img.Bounds().Dy() != 8 {
			t.Fatalf("image is %v", img.Bounds())
		}
		if rr, g, b, _ := img.At(3, 3).RGBA(); rr>>8 != 0 || g>>8 != 255 || b>>8 != 255 {
			t.Fatalf("pixel = %d,%d,%d; want the inverse of red", rr>>8, g>>8, b>>8)
		}
		texts, err := nodes.ReadPNGText(bytes.NewReader(r.body))
		if err != nil || !strings.Contains(texts["prompt"], `"EmptyImage"`) || !strings.Contains(texts["workflow"], `"wf-1"`) {
			t.Fatalf("PNG text chunks = %v (%v)", texts, err)
		}
	}
	// Annotated name form.
	if r := f.get("/view?filename=" + "test_00001_.png%20[output]&subfolder=life&type=input"); r.status != http.StatusOK {
		t.Fatalf("annotated /view = %d", r.status)
	}

	// Queue is empty, jobs show the result.
	if q := f.get("/queue"); compactJSON(t, q.body) != `{"queue_running":[],"queue_pending":[]}` {
		t.Fatalf("queue = %s", q.body)
	}
	job := f.get("/api/jobs/" + id).json(t)
	if str(job, "status") != "completed" || str(job, "workflow_id") != "wf-1" {
		t.Fatalf("job = %s", mustJSON(t, job))
	}
	if po, _ := job.Get("preview_output"); !strings.Contains(mustJSON(t, po), `"nodeId":"3","mediaType":"images"`) {
		t.Fatalf("preview_output = %s", mustJSON(t, po))
	}
	if r := f.get("/api/jobs/00000000-0000-4000-8000-000000000000"); r.status != http.StatusNotFound || compactJSON(t, r.body) != `{"error":"Job not found"}` {
		t.Fatalf("unknown job = %d %s", r.status, r.body)
	}
}

// A second identical prompt is answered from the cache: SaveImage is an output node so it is
// reported as executed from the cache and execution_cached lists the nodes.
func TestLifecycleCachedRerun(t *testing.T) {
	f := newFixture(t)
	ws := f.dial("?clientId=c1")
	ws.mustRead(5 * time.Second)
	id1 := f.queuePrompt(imagePrompt, `"client_id": "c1"`)
	ws.until(10*time.Second, isDone(id1))
	id2 := f.queuePrompt(imagePrompt, `"client_id": "c1"`)
	msgs := ws.until(10*time.Second, isDone(id2))
	for _, m := range msgs {
		if m.typ == "execution_cached" {
			if n, _ := m.data.Get("nodes"); mustJSON(t, n) != `["1","2","3"]` {
				t.Fatalf("execution_cached = %s", m.raw)
			}
			return
		}
	}
	t.Fatalf("no execution_cached message:\n%s", summary(msgs))
}

func TestPromptWithoutClientGetsNoPromptEvents(t *testing.T) {
	f := newFixture(t, withRegistry(testRegistry(newBlockNode())))
	ws := f.dial("?clientId=watcher")
	ws.mustRead(5 * time.Second)
	id := f.queuePrompt(`{"1": {"class_type": "TestSpam", "inputs": {"steps": 3, "previews": true}}}`)
	f.waitHistory(id, 10*time.Second)
	// The watcher gets status changes, and the broadcast progress and legacy previews, but no
	// execution_* / executing / executed of a prompt that has no client.
	msgs := ws.until(5*time.Second, func(m *wsMsg) bool { return m.typ == "status" && queueRemainingOf(t, m) == 0 })
	progress, states, previews := 0, 0, 0
	for i, m := range msgs {
		switch {
		case m.binary:
			if len(m.raw) < 8 || m.raw[3] != 1 || m.raw[7] != 1 {
				t.Fatalf("broadcast preview is not a legacy JPEG frame: % x", m.raw[:8])
			}
			// Legacy frames follow their step's progress, as in ComfyUI.
			if i == 0 || msgs[i-1].typ != "progress" {
				t.Fatalf("broadcast preview %d does not follow a progress event:\n%s", previews, summary(msgs))
			}
			previews++
		case m.typ == "progress":
			progress++
			if str(m.data, "prompt_id") != id || str(m.data, "node") != "1" {
				t.Fatalf("progress = %s", m.raw)
			}
		case m.typ == "progress_state":
			states++
			if str(m.data, "prompt_id") != id {
				t.Fatalf("progress_state = %s", m.raw)
			}
		case m.typ == "status":
		default:
			t.Fatalf("a prompt without client_id leaked %s to a watcher", m.raw)
		}
	}
	// progress_state: start, three steps, finish.
	if progress != 3 || previews != 3 || states != 5 {
		t.Fatalf("got %d progress, %d progress_state and %d previews, want 3, 5 and 3:\n%s", progress, states, previews, summary(msgs))
	}
}

// progress_state goes where progress goes: to the prompt's client only (and to everyone for a
// prompt without client, see TestPromptWithoutClientGetsNoPromptEvents).
func TestProgressStateRouting(t *testing.T) {
	f := newFixture(t, withRegistry(testRegistry(newBlockNode())))
	owner := f.dial("?clientId=owner")
	owner.mustRead(5 * time.Second)
	other := f.dial("?clientId=other")
	other.mustRead(5 * time.Second)
	id := f.queuePrompt(`{"1": {"class_type": "TestSpam", "inputs": {"steps": 2, "previews": false}}}`, `"client_id": "owner"`)
	var got []string
	for _, m := range owner.until(10*time.Second, isDone(id)) {
		if m.typ != "progress_state" {
			continue
		}
		if str(m.data, "prompt_id") != id {
			t.Fatalf("progress_state = %s", m.raw)
		}
		n, _ := m.data.Get("nodes")
		node, _ := n.(*ojson.Object).Get("1")
		o := node.(*ojson.Object)
		got = append(got, fmt.Sprintf("%s %s/%s", str(o, "state"), mustJSON(t, mustGetObj(o, "value")), mustJSON(t, mustGetObj(o, "max"))))
	}
	if want := "running 0.0/1.0,running 1/2,running 2/2,finished 2/2"; strings.Join(got, ",") != want {
		t.Fatalf("owner's progress_state: %v, want %s", got, want)
	}
	for _, m := range other.until(5*time.Second, func(m *wsMsg) bool { return m.typ == "status" && queueRemainingOf(t, m) == 0 }) {
		if m.typ != "status" {
			t.Fatalf("another client got %s", m.raw)
		}
	}
}
