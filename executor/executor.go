// Package executor runs validated workflows: it orders the nodes needed for the requested
// outputs, answers unchanged nodes from an output cache keyed by input signatures, runs the rest
// with cooperative interruption through context.Context, and reports ComfyUI's execution events
// (execution_start, execution_cached, progress_state, executing, progress, executed,
// execution_success, execution_error, execution_interrupted) to a Sink that the server and the
// CLI implement.
//
// It must not parse JSON documents or talk HTTP: callers give it a graph.Workflow and the
// graph.Result of validating it.
package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// Event is one message with ComfyUI's type name and data fields.
type Event struct {
	Type string
	Data *ojson.Object
}

// Sink receives events in order. Send must not block for long; it is called from the
// executing goroutine.
type Sink interface {
	Send(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Send calls f.
func (f SinkFunc) Send(e Event) { f(e) }

// Request is one prompt to run.
type Request struct {
	PromptID string
	Workflow *graph.Workflow
	// Validation is the result of graph.Validate on Workflow; its Values are the converted
	// literal inputs. Outputs defaults to Validation.Outputs.
	Validation   *graph.Result
	Outputs      []string
	ExtraPNGInfo *ojson.Object
}

// Result is what a run produced, in the shape history entries need.
type Result struct {
	Success     bool
	Interrupted bool
	// Outputs maps node id → UI dict of every node that produced UI output (or was an output
	// node answered from the cache with UI).
	Outputs *ojson.Object
	// Messages are the status messages history keeps: execution_start, execution_cached,
	// execution_success / execution_error / execution_interrupted.
	Messages []Event
	// Executed lists the node ids that ran or were answered from the cache, in order.
	Executed []string
	// Ran lists only the nodes whose Execute was called.
	Ran []string
	Err error
}

type cacheEntry struct {
	values []any
	ui     *ojson.Object
}

// Executor runs one prompt at a time and keeps the output cache between runs.
type Executor struct {
	reg *nodes.Registry
	env nodes.Env
	// Now returns the time for event timestamps (a test seam).
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]*cacheEntry
}

// New returns an executor for the nodes of reg working in env's folders.
func New(reg *nodes.Registry, env nodes.Env) *Executor {
	return &Executor{reg: reg, env: env, Now: time.Now, cache: map[string]*cacheEntry{}}
}

// Env returns the installation folders the executor gives to nodes.
func (e *Executor) Env() nodes.Env { return e.env }

// ClearCache drops every cached output (ComfyUI's /free with free_memory), releasing the models
// they held.
func (e *Executor) ClearCache() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, entry := range e.cache {
		entry.release()
		delete(e.cache, k)
	}
}

// retain and release tell loaded models (nodes.Releaser values) that the cache holds them.
func (c *cacheEntry) retain() {
	for _, v := range c.values {
		if r, ok := v.(nodes.Releaser); ok {
			r.Retain()
		}
	}
}

func (c *cacheEntry) release() {
	for _, v := range c.values {
		if r, ok := v.(nodes.Releaser); ok {
			r.Release()
		}
	}
}

type run struct {
	e        *Executor
	req      *Request
	sink     Sink
	res      *Result
	sigs     map[string]string
	values   map[string][]any
	executed []string
	// pmu keeps a node's progress reports (registry, held preview, events) whole when it
	// reports from several goroutines.
	pmu sync.Mutex
	// progress is ComfyUI's per-prompt progress registry: the nodes that left pending, in the
	// order they did (progress.go).
	progress      map[string]*nodeProgress
	progressOrder []string
}

func (r *run) now() int64 { return r.e.Now().UnixMilli() }

func (r *run) emit(typ string, data *ojson.Object, status bool) {
	ev := Event{Type: typ, Data: data}
	if status {
		r.res.Messages = append(r.res.Messages, ev)
	}
	if r.sink != nil {
		r.sink.Send(ev)
	}
}

// Run executes the prompt. It returns when the prompt finished, failed or was interrupted
// (ctx cancelled); the outcome is in the Result and in the events sent to sink.
func (e *Executor) Run(ctx context.Context, req *Request, sink Sink) *Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &run{e: e, req: req, sink: sink, res: &Result{Outputs: ojson.NewObject()},
		sigs: map[string]string{}, values: map[string][]any{}, progress: map[string]*nodeProgress{}}
	r.emit("execution_start", ojson.NewObject().Set("prompt_id", req.PromptID).Set("timestamp", r.now()), true)

	outputs := req.Outputs
	if outputs == nil && req.Validation != nil {
		outputs = req.Validation.Outputs
	}
	order, err := graph.ExecutionOrder(req.Workflow, outputs)
	if err != nil {
		typ := "graph.NodeNotFoundError"
		var ce *graph.CycleError
		if errors.As(err, &ce) {
			typ = "graph.DependencyCycleError"
		}
		nodeID, nodeType := "", ""
		if len(outputs) > 0 {
			nodeID = outputs[0]
			if n, ok := req.Workflow.Nodes[nodeID]; ok {
				nodeType = n.ClassType
			}
		}
		r.fail(nodeID, nodeType, err, typ, nil, nil)
		return r.res
	}
	for _, id := range order {
		if err := r.signature(id); err != nil {
			r.fail(id, req.Workflow.Nodes[id].ClassType, err, "ValueError", nil, nil)
			return r.res
		}
	}
	var cached []any
	for _, id := range order {
		if _, ok := e.cache[r.sigs[id]]; ok {
			cached = append(cached, id)
		}
	}
	if cached == nil {
		cached = []any{}
	}
	r.emit("execution_cached", ojson.NewObject().Set("nodes", cached).Set("prompt_id", req.PromptID).Set("timestamp", r.now()), true)

	for _, id := range order {
		if !r.step(ctx, id) {
			r.evict(order)
			return r.res
		}
	}
	r.evict(order)
	r.res.Success = true
	r.emit("execution_success", ojson.NewObject().Set("prompt_id", req.PromptID).Set("timestamp", r.now()), true)
	return r.res
}

// evict keeps only the cache entries of this prompt's nodes (ComfyUI's classic cache), which
// bounds memory to one workflow's outputs.
func (r *run) evict(order []string) {
	keep := map[string]bool{}
	for _, id := range order {
		keep[r.sigs[id]] = true
	}
	for k, entry := range r.e.cache {
		if !keep[k] {
			entry.release()
			delete(r.e.cache, k)
		}
	}
}

// step runs or answers one node; false stops the prompt.
func (r *run) step(ctx context.Context, id string) bool {
	node := r.req.Workflow.Nodes[id]
	cls, _ := r.e.reg.Get(node.ClassType)
	schema := cls.Schema()
	if entry, ok := r.e.cache[r.sigs[id]]; ok {
		r.values[id] = entry.values
		r.executed = append(r.executed, id)
		// ComfyUI reports every cached output node, with output null when it had no UI.
		if schema.OutputNode {
			var ui any
			if entry.ui != nil {
				r.res.Outputs.Set(id, entry.ui)
				ui = entry.ui
			}
			r.emit("executed", ojson.NewObject().Set("node", id).Set("display_node", id).Set("output", ui).Set("prompt_id", r.req.PromptID), false)
		}
		r.progressFinish(id)
		return true
	}
	if ctx.Err() != nil {
		r.interrupted(id, node.ClassType)
		return false
	}
	// Like ComfyUI, the node leaves pending before its inputs are gathered.
	r.progressStart(id)
	in, err := r.inputs(node, schema)
	if err != nil {
		r.fail(id, node.ClassType, err, "ValueError", nil, nil)
		return false
	}
	r.emit("executing", ojson.NewObject().Set("node", id).Set("display_node", id).Set("prompt_id", r.req.PromptID), false)
	rt := &runtimeImpl{ctx: ctx, run: r, id: id}
	out, err := safeExecute(ctx, cls, in, rt)
	r.pmu.Lock()
	rt.flushPreview()
	r.pmu.Unlock()
	if err == nil && out == nil {
		err = fmt.Errorf("node %s (%s) returned no outputs", id, node.ClassType)
	}
	if err == nil && len(out.Values) != len(schema.Outputs) {
		err = fmt.Errorf("node %s (%s) returned %d outputs, its schema declares %d", id, node.ClassType, len(out.Values), len(schema.Outputs))
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			r.interrupted(id, node.ClassType)
			return false
		}
		r.fail(id, node.ClassType, err, exceptionType(err), in, schema)
		return false
	}
	r.values[id] = out.Values
	r.executed = append(r.executed, id)
	r.res.Ran = append(r.res.Ran, id)
	entry := &cacheEntry{values: out.Values, ui: out.UI}
	entry.retain()
	r.e.cache[r.sigs[id]] = entry
	if out.UI != nil {
		r.res.Outputs.Set(id, out.UI)
		r.emit("executed", ojson.NewObject().Set("node", id).Set("display_node", id).Set("output", out.UI).Set("prompt_id", r.req.PromptID), false)
	}
	r.progressFinish(id)
	return true
}

// safeExecute turns a node panic into an error so one bad node cannot take the process down.
func safeExecute(ctx context.Context, n nodes.Node, in *nodes.Inputs, rt nodes.Runtime) (out *nodes.Outputs, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: string(debug.Stack())}
		}
	}()
	return n.Execute(ctx, in, rt)
}

type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprintf("internal error: %v", p.value) }

func exceptionType(err error) string {
	var ne *nodes.Error
	if errors.As(err, &ne) && ne.Type != "" {
		return ne.Type
	}
	var pe *panicError
	if errors.As(err, &pe) {
		return "RuntimeError"
	}
	return "Exception"
}

func traceback(err error) []any {
	var pe *panicError
	if errors.As(err, &pe) {
		lines := []any{}
		for _, l := range strings.Split(pe.stack, "\n") {
			if l != "" {
				lines = append(lines, l+"\n")
			}
		}
		return lines
	}
	// Go errors carry their context in the wrapping chain: one line per layer.
	lines := []any{}
	for e := err; e != nil; e = errors.Unwrap(e) {
		lines = append(lines, e.Error()+"\n")
	}
	return lines
}

func (r *run) executedList() []any {
	out := make([]any, len(r.executed))
	for i, id := range r.executed {
		out[i] = id
	}
	r.res.Executed = append([]string(nil), r.executed...)
	return out
}

func (r *run) interrupted(id, classType string) {
	r.res.Interrupted = true
	r.res.Err = context.Canceled
	r.emit("execution_interrupted", ojson.NewObject().Set("prompt_id", r.req.PromptID).Set("node_id", id).
		Set("node_type", classType).Set("executed", r.executedList()).Set("timestamp", r.now()), true)
}

func (r *run) fail(id, classType string, err error, typ string, in *nodes.Inputs, schema *nodes.Schema) {
	r.res.Err = err
	current := ojson.NewObject()
	if in != nil && schema != nil {
		for _, spec := range schema.Inputs {
			if in.Has(spec.Name) {
				current.Set(spec.Name, []any{describe(in.Value(spec.Name))})
			}
		}
	}
	outs := []any{}
	for _, nid := range r.executed {
		outs = append(outs, nid)
	}
	r.emit("execution_error", ojson.NewObject().Set("prompt_id", r.req.PromptID).Set("node_id", id).
		Set("node_type", classType).Set("executed", r.executedList()).Set("exception_message", err.Error()).
		Set("exception_type", typ).Set("traceback", traceback(err)).Set("current_inputs", current).
		Set("current_outputs", outs).Set("timestamp", r.now()), true)
}

// describe formats an input value for current_inputs.
func describe(v any) any {
	switch t := v.(type) {
	case nil, bool, string, float64:
		return t
	case *big.Int:
		return ojsonNumber(t)
	case *nodes.Image:
		return fmt.Sprintf("IMAGE[%d, %d, %d, %d]", t.B, t.H, t.W, t.C)
	case *nodes.Mask:
		return fmt.Sprintf("MASK[%d, %d, %d]", t.B, t.H, t.W)
	}
	return fmt.Sprintf("%T", v)
}

// inputs assembles a node's inputs: converted literals, producer outputs for links, defaults
// for absent optional inputs, and the hidden inputs.
func (r *run) inputs(node *graph.Node, schema *nodes.Schema) (*nodes.Inputs, error) {
	in := nodes.NewInputs()
	var lits *nodes.Inputs
	if r.req.Validation != nil {
		lits = r.req.Validation.Values[node.ID]
	}
	for _, spec := range schema.Inputs {
		gi, present := node.Input(spec.Name)
		switch {
		case present && gi.Link != nil:
			vals, ok := r.values[gi.Link.Node]
			if !ok || gi.Link.Slot >= len(vals) {
				return nil, fmt.Errorf("input %q: output %d of node %s is not available", spec.Name, gi.Link.Slot, gi.Link.Node)
			}
			in.Set(spec.Name, vals[gi.Link.Slot])
		case present && lits != nil && lits.Has(spec.Name):
			in.Set(spec.Name, lits.Value(spec.Name))
		case present:
			return nil, fmt.Errorf("input %q of node %s was not validated", spec.Name, node.ID)
		case spec.Default != nil:
			in.Set(spec.Name, defaultValue(spec))
		case !spec.Optional:
			return nil, fmt.Errorf("required input %q of node %s is missing", spec.Name, node.ID)
		}
	}
	for _, h := range schema.Hidden {
		switch h.Kind {
		case nodes.HiddenPrompt:
			in.Prompt = r.req.Workflow.Prompt
		case nodes.HiddenExtraPNGInfo:
			in.ExtraPNGInfo = r.req.ExtraPNGInfo
		case nodes.HiddenUniqueID:
			in.UniqueID = node.ID
		}
	}
	return in, nil
}

func defaultValue(spec nodes.InputSpec) any {
	switch d := spec.Default.(type) {
	case int64:
		if spec.Type == nodes.TypeFloat {
			return float64(d)
		}
		return big.NewInt(d)
	case int:
		return big.NewInt(int64(d))
	case uint64:
		return new(big.Int).SetUint64(d)
	}
	return spec.Default
}

// signature computes the node's cache key: a hash over its class, fingerprint, literal inputs
// and its producers' signatures with slots. Like ComfyUI's input signature it does not depend on
// node ids (identical sub-graphs share results) unless the class is not idempotent.
func (r *run) signature(id string) error {
	if _, ok := r.sigs[id]; ok {
		return nil
	}
	node := r.req.Workflow.Nodes[id]
	cls, ok := r.e.reg.Get(node.ClassType)
	if !ok {
		return fmt.Errorf("node %s: unknown class %q", id, node.ClassType)
	}
	schema := cls.Schema()
	var lits *nodes.Inputs
	if r.req.Validation != nil {
		lits = r.req.Validation.Values[id]
	}
	if lits == nil {
		lits = nodes.NewInputs()
	}
	h := sha256.New()
	fmt.Fprintf(h, "class=%q\n", node.ClassType)
	if schema.NotIdempotent {
		fmt.Fprintf(h, "id=%q\n", id)
	}
	if fp, ok := cls.(nodes.Fingerprinter); ok {
		s, err := fp.Fingerprint(lits, r.e.env)
		if err != nil {
			// Like ComfyUI's NaN fingerprint: never equal, so the node always re-runs and
			// reports the real problem when it executes.
			s = fmt.Sprintf("error:%v:%d", err, time.Now().UnixNano())
		}
		fmt.Fprintf(h, "fingerprint=%q\n", s)
	}
	for _, spec := range schema.Inputs {
		gi, present := node.Input(spec.Name)
		if present && gi.Link != nil {
			if err := r.signature(gi.Link.Node); err != nil {
				return err
			}
			fmt.Fprintf(h, "in %q link %s %d\n", spec.Name, r.sigs[gi.Link.Node], gi.Link.Slot)
			continue
		}
		if lits.Has(spec.Name) {
			fmt.Fprintf(h, "in %q = %s\n", spec.Name, canonical(lits.Value(spec.Name)))
		} else if spec.Default != nil {
			fmt.Fprintf(h, "in %q default %s\n", spec.Name, canonical(defaultValue(spec)))
		}
	}
	r.sigs[id] = hex.EncodeToString(h.Sum(nil))
	return nil
}

func canonical(v any) string {
	switch t := v.(type) {
	case *big.Int:
		return "int:" + t.String()
	case float64:
		return "float:" + strconv.FormatUint(math.Float64bits(t), 16)
	case string:
		return "str:" + strconv.Quote(t)
	case bool:
		return "bool:" + strconv.FormatBool(t)
	case nil:
		return "null"
	}
	b, err := ojson.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%T:%p", v, v)
	}
	return "json:" + string(b)
}

// runtimeImpl is the nodes.Runtime of one running node.
type runtimeImpl struct {
	ctx context.Context
	run *run
	id  string
	// pending is a preview waiting for its Progress call (see Preview); guarded by run.pmu.
	pending *Preview
}

// Progress reports a progress update: progress_state, then the preview sent since the last
// update, then progress, in ComfyUI's order. Once the prompt is interrupted nothing is sent and
// the context's error is returned, as ComfyUI's progress hook raises before sending.
func (rt *runtimeImpl) Progress(value, max int) error {
	rt.run.pmu.Lock()
	defer rt.run.pmu.Unlock()
	if err := rt.ctx.Err(); err != nil {
		rt.pending = nil
		return err
	}
	rt.run.progressUpdate(rt.id, value, max)
	rt.flushPreview()
	rt.run.emit("progress", ojson.NewObject().Set("value", value).Set("max", max).
		Set("prompt_id", rt.run.req.PromptID).Set("node", rt.id), false)
	return nil
}

func (rt *runtimeImpl) Env() nodes.Env { return rt.run.e.env }

func (rt *runtimeImpl) NodeID() string { return rt.id }
