package server

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dypegraph/dypegraph/executor"
	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
)

var (
	errShutdown    = errors.New("server shutting down")
	errInterrupted = errors.New("interrupted")
	errCancelled   = errors.New("cancelled by request")
)

// queueItem is one prompt in the queue, pending or running.
type queueItem struct {
	seq           int64
	number        float64
	numberIsFloat bool
	promptID      string
	clientID      string
	prompt        json.RawMessage // validated prompt (converted literals written back)
	extra         json.RawMessage // extra_data without secrets
	extraObj      *ojson.Object
	outputs       []string
	sensitive     *ojson.Object // secrets from extra_data; memory only, never stored
	createTime    int64
	// wf and res come from POST /prompt; nil for prompts loaded from the store, which are
	// validated again when they run.
	wf  *graph.Workflow
	res *graph.Result

	index  int // in the pending heap
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (it *queueItem) numberValue() any {
	if it.numberIsFloat {
		return it.number
	}
	return int64(it.number)
}

func (it *queueItem) outputsAny() []any {
	out := make([]any, len(it.outputs))
	for i, o := range it.outputs {
		out[i] = o
	}
	return out
}

// tuple is the 5-element queue item ComfyUI shows in /queue and history.
func (it *queueItem) tuple() []any {
	return []any{it.numberValue(), it.promptID, it.prompt, it.extra, it.outputsAny()}
}

func itemFromStored(st *storedItem) (*queueItem, error) {
	it := &queueItem{seq: st.Seq, number: st.Number, numberIsFloat: st.NumberIsFloat, promptID: st.PromptID,
		prompt: json.RawMessage(st.Prompt), extra: json.RawMessage(st.Extra), outputs: st.Outputs}
	v, err := ojson.Decode(st.Extra)
	if err != nil {
		return nil, fmt.Errorf("prompt %s: stored extra_data: %w", st.PromptID, err)
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		return nil, fmt.Errorf("prompt %s: stored extra_data is not an object", st.PromptID)
	}
	it.extraObj = obj
	if c, ok := obj.Get("client_id"); ok {
		it.clientID, _ = c.(string)
	}
	if ct, ok := obj.Get("create_time"); ok {
		if n, ok := ct.(json.Number); ok {
			it.createTime, _ = n.Int64()
		}
	}
	if it.outputs == nil {
		it.outputs = []string{}
	}
	return it, nil
}

// pendingHeap orders by (number, seq): lower numbers first, then insertion order.
type pendingHeap []*queueItem

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].number != h[j].number {
		return h[i].number < h[j].number
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pendingHeap) Push(x any) {
	it := x.(*queueItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *pendingHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	it.index = -1
	return it
}

// sortedPending returns the pending items in run order. Caller holds qmu.
func (s *Server) sortedPending() []*queueItem {
	cp := make(pendingHeap, len(s.pending))
	copy(cp, s.pending)
	out := make([]*queueItem, 0, len(cp))
	// Sort a copy without disturbing the heap's index fields.
	for len(cp) > 0 {
		best := 0
		for i := 1; i < len(cp); i++ {
			if cp.Less(i, best) {
				best = i
			}
		}
		out = append(out, cp[best])
		cp[best] = cp[len(cp)-1]
		cp = cp[:len(cp)-1]
	}
	return out
}

// queueRemaining is pending + running. Caller holds qmu.
func (s *Server) queueRemainingLocked() int {
	n := len(s.pending)
	if s.running != nil {
		n++
	}
	return n
}

func (s *Server) queueRemaining() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.queueRemainingLocked()
}

// statusDataLocked is the status message data; sid only in a client's first message. Caller
// holds qmu.
func (s *Server) statusDataLocked(sid string) *ojson.Object {
	d := ojson.NewObject().Set("status", ojson.NewObject().Set("exec_info", ojson.NewObject().Set("queue_remaining", s.queueRemainingLocked())))
	if sid != "" {
		d.Set("sid", sid)
	}
	return d
}

// broadcastStatusLocked tells every client the queue changed. The caller holds qmu, so status
// messages go out in the order of the queue changes they describe.
func (s *Server) broadcastStatusLocked() {
	s.hub.broadcast(jsonMsg("status", s.statusDataLocked(""), true))
}

func (s *Server) wakeWorker() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// lastNode is the node the running prompt is executing, for clients that reconnect.
type lastNode struct{ promptID, node string }

func (s *Server) setLastNode(promptID, node string) {
	s.lastNode.Store(&lastNode{promptID: promptID, node: node})
}

// Pause stops the worker from starting new prompts (the running one finishes).
func (s *Server) Pause() {
	s.qmu.Lock()
	s.paused = true
	s.qmu.Unlock()
}

// Resume lets the worker run the queue again.
func (s *Server) Resume() {
	s.qmu.Lock()
	s.paused = false
	s.qmu.Unlock()
	s.wakeWorker()
}

// worker is the prompt loop of §4.1: one prompt at a time, lowest (number, insertion) first.
func (s *Server) worker() {
	defer close(s.workerDone)
	for {
		it := s.next()
		if it == nil {
			return
		}
		s.runItem(it)
		s.applyFreeFlags()
	}
}

// next blocks until a prompt can start (and marks it running) or the server stops (nil).
func (s *Server) next() *queueItem {
	for {
		s.qmu.Lock()
		if s.baseCtx.Err() != nil {
			s.qmu.Unlock()
			return nil
		}
		if !s.paused && len(s.pending) > 0 {
			it := heap.Pop(&s.pending).(*queueItem)
			delete(s.byID, it.promptID)
			if err := s.st.markRunning(s.baseCtx, it.seq); err != nil {
				heap.Push(&s.pending, it)
				s.byID[it.promptID] = it
				s.qmu.Unlock()
				s.log.Error("cannot start prompt; retrying", "prompt_id", it.promptID, "err", err)
				select {
				case <-s.baseCtx.Done():
					return nil
				case <-time.After(time.Second):
				}
				continue
			}
			it.ctx, it.cancel = context.WithCancelCause(s.baseCtx)
			s.running = it
			s.lastNode.Store(nil)
			s.broadcastStatusLocked()
			s.qmu.Unlock()
			return it
		}
		s.qmu.Unlock()
		s.applyFreeFlags()
		select {
		case <-s.baseCtx.Done():
			return nil
		case <-s.wake:
		}
	}
}

// runItem runs one prompt, writes its history entry, then sends status and executing null.
func (s *Server) runItem(it *queueItem) {
	defer it.cancel(nil)
	method, _ := resolvePreviewMethod(s.previewMethodFor(it), s.cfg.PreviewMethod)
	sink := &promptSink{s: s, it: it, method: method}
	var result *executor.Result
	wf, res, err := s.validated(it)
	if err != nil {
		result = s.validationFailure(it, err, sink)
	} else {
		var png *ojson.Object
		if it.extraObj != nil {
			if v, ok := it.extraObj.Get("extra_pnginfo"); ok {
				png, _ = v.(*ojson.Object)
			}
		}
		start := time.Now()
		result = s.exec.Run(it.ctx, &executor.Request{PromptID: it.promptID, Workflow: wf, Validation: res, Outputs: it.outputs, ExtraPNGInfo: png}, sink)
		sink.flush()
		// The console lines ComfyUI prints, which /internal/logs shows.
		secs := fmt.Sprintf("%.2f", time.Since(start).Seconds())
		switch {
		case result.Success:
			s.log.Info("prompt executed", "prompt_id", it.promptID, "seconds", secs)
		case result.Interrupted:
			s.log.Info("prompt interrupted", "prompt_id", it.promptID, "seconds", secs)
		default:
			s.log.Warn("prompt failed", "prompt_id", it.promptID, "seconds", secs, "err", result.Err)
		}
	}
	cause := context.Cause(it.ctx)
	if result.Interrupted && errors.Is(cause, errShutdown) {
		// A graceful stop is not the user's interrupt: the prompt runs again on the next start.
		if err := s.st.requeue(context.Background(), it.seq); err != nil {
			s.log.Error("could not put the interrupted prompt back in the queue", "prompt_id", it.promptID, "err", err)
		}
		s.clearRunning(it, false)
		return
	}
	entry, job, err := historyRecord(it, result)
	if err == nil {
		err = s.st.finish(context.Background(), it.seq, it.promptID, entry, job, s.cfg.MaxHistory)
	}
	if err != nil {
		// The queue row stays "running": the next start applies the crash rule to it.
		s.log.Error("could not record the prompt's history", "prompt_id", it.promptID, "err", err)
	}
	s.clearRunning(it, true)
	if it.clientID != "" {
		s.hub.sendTo(it.clientID, jsonMsg("executing", ojson.NewObject().Set("node", nil).Set("prompt_id", it.promptID), true))
	}
}

func (s *Server) clearRunning(it *queueItem, announce bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.running == it {
		s.running = nil
		s.lastNode.Store(nil)
	}
	if announce {
		s.broadcastStatusLocked()
	}
}

func (s *Server) previewMethodFor(it *queueItem) string {
	if it.extraObj != nil {
		if v, ok := it.extraObj.Get("preview_method"); ok {
			if m, ok := v.(string); ok {
				if _, known := resolvePreviewMethod(m, s.cfg.PreviewMethod); known {
					return m
				}
			}
		}
	}
	return "default"
}

// validated returns the prompt's workflow and validation, validating again for prompts that
// were loaded from the store.
func (s *Server) validated(it *queueItem) (*graph.Workflow, *graph.Result, error) {
	if it.wf != nil && it.res != nil {
		return it.wf, it.res, nil
	}
	wf, err := graph.ParseAPI(it.prompt)
	if err != nil {
		return nil, nil, err
	}
	res := graph.Validate(wf, s.cfg.Registry, s.env, nil)
	if !res.OK() {
		b, _ := ojson.Marshal(res.ErrorResponse(wf.Order))
		return nil, nil, fmt.Errorf("the prompt no longer validates: %s", b)
	}
	valid := map[string]bool{}
	for _, o := range res.Outputs {
		valid[o] = true
	}
	var outs []string
	for _, o := range it.outputs {
		if valid[o] {
			outs = append(outs, o)
		}
	}
	if len(outs) == 0 {
		return nil, nil, fmt.Errorf("none of the prompt's outputs %v validates any more", it.outputs)
	}
	s.qmu.Lock() // /queue reads the running item's outputs
	it.outputs = outs
	s.qmu.Unlock()
	return wf, res, nil
}

// validationFailure reports a prompt that could not run at all as an execution error.
func (s *Server) validationFailure(it *queueItem, err error, sink *promptSink) *executor.Result {
	now := time.Now().UnixMilli()
	r := &executor.Result{Outputs: ojson.NewObject(), Err: err}
	start := executor.Event{Type: "execution_start", Data: ojson.NewObject().Set("prompt_id", it.promptID).Set("timestamp", now)}
	fail := executor.Event{Type: "execution_error", Data: ojson.NewObject().Set("prompt_id", it.promptID).Set("node_id", nil).
		Set("node_type", nil).Set("executed", []any{}).Set("exception_message", err.Error()).Set("exception_type", "ValidationError").
		Set("traceback", []any{}).Set("current_inputs", ojson.NewObject()).Set("current_outputs", []any{}).Set("timestamp", now)}
	for _, e := range []executor.Event{start, fail} {
		r.Messages = append(r.Messages, e)
		sink.Send(e)
	}
	return r
}

// applyFreeFlags applies a pending POST /free when no prompt runs.
func (s *Server) applyFreeFlags() {
	s.qmu.Lock()
	free := s.freePending
	s.freePending = false
	if s.running != nil {
		s.freePending = free
		free = false
	}
	s.qmu.Unlock()
	if free {
		s.exec.ClearCache()
	}
}

// historyRecord builds the history entry (ComfyUI's shape) and the job summary stored with it.
func historyRecord(it *queueItem, r *executor.Result) (entry, job []byte, err error) {
	e := historyEntry(it, r)
	entry, err = ojson.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("encode history entry: %w", err)
	}
	job, err = ojson.Marshal(jobFromHistory(it.promptID, e, false))
	if err != nil {
		return nil, nil, fmt.Errorf("encode job summary: %w", err)
	}
	return entry, job, nil
}

func historyEntry(it *queueItem, r *executor.Result) *ojson.Object {
	msgs := make([]any, 0, len(r.Messages))
	for _, m := range r.Messages {
		msgs = append(msgs, []any{m.Type, m.Data})
	}
	outputs := r.Outputs
	if outputs == nil {
		outputs = ojson.NewObject()
	}
	meta := ojson.NewObject()
	for _, id := range outputs.Keys() {
		meta.Set(id, ojson.NewObject().Set("node_id", id).Set("display_node", id).Set("parent_node", nil).Set("real_node_id", id))
	}
	statusStr := "error"
	if r.Success {
		statusStr = "success"
	}
	return ojson.NewObject().
		Set("prompt", it.tuple()).
		Set("outputs", outputs).
		Set("status", ojson.NewObject().Set("status_str", statusStr).Set("completed", r.Success).Set("messages", msgs)).
		Set("meta", meta)
}

// crashEntry is the history entry of a prompt found running at startup (the process died
// while running it): interrupted and re-queued the first time, failed the second.
func crashEntry(st *storedItem, failed bool) (entry, job []byte, err error) {
	it, err := itemFromStored(st)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().UnixMilli()
	r := &executor.Result{Outputs: ojson.NewObject()}
	if failed {
		r.Messages = []executor.Event{{Type: "execution_error", Data: ojson.NewObject().Set("prompt_id", it.promptID).
			Set("node_id", nil).Set("node_type", nil).Set("executed", []any{}).
			Set("exception_message", "the server stopped unexpectedly while running this prompt twice; it is not retried again").
			Set("exception_type", "ServerCrash").Set("traceback", []any{}).Set("current_inputs", ojson.NewObject()).
			Set("current_outputs", []any{}).Set("timestamp", now)}}
	} else {
		r.Interrupted = true
		r.Messages = []executor.Event{{Type: "execution_interrupted", Data: ojson.NewObject().Set("prompt_id", it.promptID).
			Set("node_id", nil).Set("node_type", nil).Set("executed", []any{}).Set("timestamp", now).
			Set("reason", "the server stopped unexpectedly while running this prompt; it was queued again")}}
	}
	return historyRecord(it, r)
}
