package server

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
)

// sensitiveKeys are moved out of extra_data before the prompt is stored or shown.
var sensitiveKeys = []string{"auth_token_comfy_org", "api_key_comfy_org"}

// promptRequest is a parsed POST /prompt body (§1.3).
type promptRequest struct {
	prompt    *ojson.Object
	promptID  string // "" → the server mints one
	hasNumber bool
	number    float64
	front     bool
	hasClient bool
	clientID  string
	extra     *ojson.Object
	partial   []string // nil when absent
}

// apiError is ComfyUI's {"type", "message", "details", "extra_info"} error.
type apiError struct {
	typ, message, details string
}

func (e *apiError) body() *ojson.Object {
	return ojson.NewObject().Set("error", ojson.NewObject().Set("type", e.typ).Set("message", e.message).
		Set("details", e.details).Set("extra_info", ojson.NewObject())).Set("node_errors", ojson.NewObject())
}

func invalidPrompt(format string, args ...any) *apiError {
	return &apiError{typ: "invalid_prompt", message: "Invalid prompt", details: fmt.Sprintf(format, args...)}
}

// parsePromptRequest reads and checks a POST /prompt body. Every failure is a 400 with a
// ComfyUI-shaped error; it never panics on any input.
func parsePromptRequest(body []byte) (*promptRequest, *apiError) {
	v, err := ojson.Decode(body)
	if err != nil {
		return nil, &apiError{typ: "invalid_json", message: "Invalid JSON body", details: err.Error()}
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		return nil, invalidPrompt("the body must be a JSON object, got %s", ojson.Kind(v))
	}
	req := &promptRequest{}
	if n, ok := obj.Get("number"); ok && n != nil {
		f, err := pyFloat(n)
		if err != nil {
			return nil, invalidPrompt("number: %v", err)
		}
		req.hasNumber, req.number = true, f
	}
	if f, ok := obj.Get("front"); ok {
		req.front = truthy(f)
	}
	pv, ok := obj.Get("prompt")
	if !ok {
		return nil, &apiError{typ: "no_prompt", message: "No prompt provided", details: "No prompt provided"}
	}
	req.prompt, ok = pv.(*ojson.Object)
	if !ok {
		return nil, invalidPrompt("prompt must be a JSON object of nodes keyed by id, got %s", ojson.Kind(pv))
	}
	if id, ok := obj.Get("prompt_id"); ok && id != nil {
		s, isStr := id.(string)
		if !isStr || !isCanonicalUUID(s) {
			return nil, &apiError{typ: "invalid_prompt_id", message: "prompt_id must be a valid UUID",
				details: "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server generate one"}
		}
		req.promptID = s
	}
	if c, ok := obj.Get("client_id"); ok {
		req.hasClient = true
		switch t := c.(type) {
		case nil:
		case string:
			if len(t) > 256 {
				return nil, invalidPrompt("client_id is longer than 256 bytes")
			}
			req.clientID = t
		default:
			return nil, invalidPrompt("client_id must be a string, got %s", ojson.Kind(c))
		}
	}
	req.extra = ojson.NewObject()
	if e, ok := obj.Get("extra_data"); ok && e != nil {
		eo, isObj := e.(*ojson.Object)
		if !isObj {
			return nil, invalidPrompt("extra_data must be a JSON object, got %s", ojson.Kind(e))
		}
		req.extra = eo
	}
	if p, ok := obj.Get("partial_execution_targets"); ok && p != nil {
		list, isList := p.([]any)
		if !isList {
			return nil, invalidPrompt("partial_execution_targets must be a list of node ids, got %s", ojson.Kind(p))
		}
		req.partial = []string{}
		for _, x := range list {
			s, isStr := x.(string)
			if !isStr {
				return nil, invalidPrompt("partial_execution_targets must hold node id strings, got %s", ojson.Kind(x))
			}
			req.partial = append(req.partial, s)
		}
	}
	return req, nil
}

// pyFloat is Python's float() on a JSON value: numbers, numeric strings and booleans; the
// result must be finite here (NaN would break queue ordering).
func pyFloat(v any) (float64, error) {
	var f float64
	var err error
	switch t := v.(type) {
	case json.Number:
		f, err = strconv.ParseFloat(string(t), 64)
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(t), 64)
	case bool:
		if t {
			f = 1
		}
	default:
		return 0, fmt.Errorf("must be a number, got %s", ojson.Kind(v))
	}
	if err != nil {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%v is not a finite number", v)
	}
	return f, nil
}

// truthy is Python's bool() on a JSON value.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		return err != nil || f != 0
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case *ojson.Object:
		return t.Len() > 0
	}
	return true
}

// newUUID returns a random version-4 UUID in canonical form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) handlePostPrompt(w http.ResponseWriter, r *http.Request) {
	body, status, err := readBody(r)
	if err != nil {
		writeJSON(w, status, (&apiError{typ: "invalid_request", message: "Could not read the request body", details: err.Error()}).body())
		return
	}
	req, aerr := parsePromptRequest(body)
	if aerr != nil {
		writeJSON(w, http.StatusBadRequest, aerr.body())
		return
	}
	wf, err := graph.FromPrompt(req.prompt)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, invalidPrompt("%v", err).body())
		return
	}
	res := graph.Validate(wf, s.cfg.Registry, s.env, req.partial)
	if !res.OK() {
		writeJSON(w, http.StatusBadRequest, res.ErrorResponse(wf.Order))
		return
	}
	if req.promptID == "" {
		req.promptID = newUUID()
	}
	extra := req.extra
	if req.hasClient {
		if req.clientID == "" {
			extra.Set("client_id", nil)
		} else {
			extra.Set("client_id", req.clientID)
		}
	}
	if _, ok := extra.Get("comfy_usage_source"); !ok {
		if src := r.Header.Get("Comfy-Usage-Source"); src != "" {
			extra.Set("comfy_usage_source", src)
		}
	}
	sensitive := ojson.NewObject()
	for _, k := range sensitiveKeys {
		if v, ok := extra.Get(k); ok {
			sensitive.Set(k, v)
			extra.Delete(k)
		}
	}
	now := time.Now().UnixMilli()
	extra.Set("create_time", now)
	promptJSON, err := ojson.Marshal(wf.Prompt)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, invalidPrompt("the prompt cannot be stored: %v", err).body())
		return
	}
	extraJSON, err := ojson.Marshal(extra)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, invalidPrompt("extra_data cannot be stored: %v", err).body())
		return
	}
	// Events go to extra_data.client_id, which the body's client_id overrides (ComfyUI).
	clientID := ""
	if c, ok := extra.Get("client_id"); ok {
		clientID, _ = c.(string)
	}
	it := &queueItem{promptID: req.promptID, clientID: clientID, prompt: promptJSON, extra: extraJSON, extraObj: extra,
		outputs: append([]string{}, res.Outputs...), sensitive: sensitive, createTime: now, wf: wf, res: res,
		number: req.number, numberIsFloat: req.hasNumber}
	if err := s.enqueue(r.Context(), it, !req.hasNumber, req.front); err != nil {
		var aerr *apiError
		if errors.As(err, &aerr) {
			writeJSON(w, http.StatusBadRequest, aerr.body())
			return
		}
		serverError(w, s.log, err)
		return
	}
	s.log.Info("got prompt", "prompt_id", it.promptID)
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("prompt_id", it.promptID).Set("number", it.numberValue()).
		Set("node_errors", res.NodeErrorsJSON(wf.Order)))
}

func (e *apiError) Error() string { return e.message + ": " + e.details }

// enqueue commits the prompt to the store, then adds it to the in-memory queue and wakes the
// worker.
func (s *Server) enqueue(ctx context.Context, it *queueItem, assign, front bool) error {
	s.qmu.Lock()
	if _, dup := s.byID[it.promptID]; dup || (s.running != nil && s.running.promptID == it.promptID) {
		s.qmu.Unlock()
		return &apiError{typ: "invalid_prompt_id", message: "prompt_id is already queued", details: "a prompt with id " + it.promptID + " is pending or running"}
	}
	st := &storedItem{PromptID: it.promptID, Number: it.number, NumberIsFloat: it.numberIsFloat, Prompt: it.prompt,
		Extra: it.extra, Outputs: it.outputs, CreatedAt: it.createTime}
	// The insert must not be abandoned half way because the client went away: use a
	// context that only the server's own shutdown cancels.
	if err := s.st.insertPrompt(context.WithoutCancel(ctx), st, assign, front); err != nil {
		s.qmu.Unlock()
		return err
	}
	it.seq, it.number = st.Seq, st.Number
	heap.Push(&s.pending, it)
	s.byID[it.promptID] = it
	s.broadcastStatusLocked()
	s.qmu.Unlock()
	s.wakeWorker()
	return nil
}

// cancelPrompt dequeues a pending prompt or interrupts the running one, atomically; it reports
// whether it acted.
func (s *Server) cancelPrompt(ctx context.Context, id string) (bool, error) {
	s.qmu.Lock()
	if s.running != nil && s.running.promptID == id {
		s.running.cancel(errCancelled)
		s.qmu.Unlock()
		return true, nil
	}
	it, ok := s.byID[id]
	if !ok {
		s.qmu.Unlock()
		return false, nil
	}
	if _, err := s.st.deletePending(context.WithoutCancel(ctx), []string{id}); err != nil {
		s.qmu.Unlock()
		return false, err
	}
	heap.Remove(&s.pending, it.index)
	delete(s.byID, id)
	s.broadcastStatusLocked()
	s.qmu.Unlock()
	return true, nil
}

func (s *Server) handleGetPrompt(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("exec_info", ojson.NewObject().Set("queue_remaining", s.queueRemaining())))
}

func (s *Server) handleGetQueue(w http.ResponseWriter, r *http.Request) {
	s.qmu.Lock()
	running := []any{}
	if s.running != nil {
		running = append(running, s.running.tuple())
	}
	pending := []any{}
	for _, it := range s.sortedPending() {
		pending = append(pending, it.tuple())
	}
	s.qmu.Unlock()
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("queue_running", running).Set("queue_pending", pending))
}

// idList reads a JSON list of ids ("delete": [...]); non-strings are ignored like unknown ids.
func idList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("delete must be a list of prompt ids, got %s", ojson.Kind(v))
	}
	var ids []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			ids = append(ids, s)
		}
	}
	return ids, nil
}

func (s *Server) handlePostQueue(w http.ResponseWriter, r *http.Request) {
	obj, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	if c, ok := obj.Get("clear"); ok && truthy(c) {
		s.qmu.Lock()
		err := s.st.clearPending(context.WithoutCancel(r.Context()))
		if err == nil {
			s.pending = s.pending[:0]
			clear(s.byID)
			s.broadcastStatusLocked()
		}
		s.qmu.Unlock()
		if err != nil {
			serverError(w, s.log, err)
			return
		}
	}
	if d, ok := obj.Get("delete"); ok {
		ids, err := idList(d)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.qmu.Lock()
		var present []string
		for _, id := range ids {
			if _, ok := s.byID[id]; ok {
				present = append(present, id)
			}
		}
		_, err = s.st.deletePending(context.WithoutCancel(r.Context()), present)
		if err == nil && len(present) > 0 {
			for _, id := range present {
				it := s.byID[id]
				heap.Remove(&s.pending, it.index)
				delete(s.byID, id)
			}
			s.broadcastStatusLocked()
		}
		s.qmu.Unlock()
		if err != nil {
			serverError(w, s.log, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	// The body is optional; anything unreadable counts as {} (ComfyUI).
	var id string
	if body, _, err := readBody(r); err == nil && len(body) > 0 {
		if v, err := ojson.Decode(body); err == nil {
			if obj, ok := v.(*ojson.Object); ok {
				if p, ok := obj.Get("prompt_id"); ok {
					id, _ = p.(string)
				}
			}
		}
	}
	s.qmu.Lock()
	if s.running != nil && (id == "" || s.running.promptID == id) {
		s.running.cancel(errInterrupted)
	}
	s.qmu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleFree(w http.ResponseWriter, r *http.Request) {
	obj, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	unload, _ := obj.Get("unload_models")
	free, _ := obj.Get("free_memory")
	if truthy(unload) || truthy(free) {
		// Models live in the executor's output cache (loader outputs), so both flags drop it.
		s.qmu.Lock()
		s.freePending = true
		s.qmu.Unlock()
		s.wakeWorker()
		s.applyFreeFlags()
	}
	w.WriteHeader(http.StatusOK)
}

// parseHistoryParams reads max_items and offset (ComfyUI: offset -1 when absent).
func parseHistoryParams(r *http.Request) (maxItems, offset int, err error) {
	q := r.URL.Query()
	maxItems, offset = -1, -1
	if q.Has("max_items") {
		maxItems, err = strconv.Atoi(q.Get("max_items"))
		if err != nil {
			return 0, 0, fmt.Errorf("max_items must be an integer")
		}
		if maxItems < 0 {
			maxItems = 0
		}
	}
	if q.Has("offset") {
		offset, err = strconv.Atoi(q.Get("offset"))
		if err != nil {
			return 0, 0, fmt.Errorf("offset must be an integer")
		}
	}
	return maxItems, offset, nil
}

func (s *Server) handleGetHistory(w http.ResponseWriter, r *http.Request) {
	maxItems, offset, err := parseHistoryParams(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows, err := s.st.historyPage(r.Context(), maxItems, offset)
	if err != nil {
		serverError(w, s.log, err)
		return
	}
	writeHistory(w, rows)
}

// writeHistory writes {id: entry, ...} from the stored JSON without decoding it.
func writeHistory(w http.ResponseWriter, rows []historyRow) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 4096)
	buf = append(buf, '{')
	for i, h := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		key, _ := json.Marshal(h.PromptID)
		buf = append(buf, key...)
		buf = append(buf, ':')
		buf = append(buf, h.Entry...)
		if len(buf) > 256<<10 {
			_, _ = w.Write(buf)
			buf = buf[:0]
		}
	}
	buf = append(buf, '}')
	_, _ = w.Write(buf)
}

func (s *Server) handleGetHistoryID(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	entry, ok, err := s.st.historyGet(r.Context(), id)
	if err != nil {
		serverError(w, s.log, err)
		return
	}
	if !ok {
		writeJSON(w, http.StatusOK, ojson.NewObject())
		return
	}
	writeHistory(w, []historyRow{{PromptID: id, Entry: entry}})
}

func (s *Server) handlePostHistory(w http.ResponseWriter, r *http.Request) {
	obj, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	if c, ok := obj.Get("clear"); ok && truthy(c) {
		if err := s.st.historyClear(context.WithoutCancel(r.Context())); err != nil {
			serverError(w, s.log, err)
			return
		}
	}
	if d, ok := obj.Get("delete"); ok {
		ids, err := idList(d)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := s.st.historyDelete(context.WithoutCancel(r.Context()), ids); err != nil {
			serverError(w, s.log, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}
