package executor

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// testNode is a configurable node that counts its executions.
type testNode struct {
	schema *nodes.Schema
	calls  atomic.Int64
	run    func(ctx context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error)
}

func (n *testNode) Schema() *nodes.Schema { return n.schema }
func (n *testNode) Execute(ctx context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
	n.calls.Add(1)
	return n.run(ctx, in, rt)
}

type fixture struct {
	reg                              *nodes.Registry
	constN, addN, outN, failN, slowN *testNode
	panicN                           *testNode
	slowStarted                      chan struct{}
	slowOnce                         sync.Once
}

func intOf(v any) int64 { return v.(*big.Int).Int64() }

func newFixture() *fixture {
	f := &fixture{reg: nodes.NewRegistry(), slowStarted: make(chan struct{})}
	intIn := func(name string) nodes.InputSpec { return nodes.InputSpec{Name: name, Type: nodes.TypeInt} }
	f.constN = &testNode{schema: &nodes.Schema{Name: "Const", Inputs: []nodes.InputSpec{intIn("value")}, Outputs: []nodes.OutputSpec{{Type: nodes.TypeInt}}},
		run: func(_ context.Context, in *nodes.Inputs, _ nodes.Runtime) (*nodes.Outputs, error) {
			return &nodes.Outputs{Values: []any{in.Value("value")}}, nil
		}}
	f.addN = &testNode{schema: &nodes.Schema{Name: "Add", Inputs: []nodes.InputSpec{intIn("a"), intIn("b")}, Outputs: []nodes.OutputSpec{{Type: nodes.TypeInt}}},
		run: func(_ context.Context, in *nodes.Inputs, _ nodes.Runtime) (*nodes.Outputs, error) {
			return &nodes.Outputs{Values: []any{big.NewInt(intOf(in.Value("a")) + intOf(in.Value("b")))}}, nil
		}}
	f.outN = &testNode{schema: &nodes.Schema{Name: "Out", Inputs: []nodes.InputSpec{intIn("value")}, OutputNode: true},
		run: func(_ context.Context, in *nodes.Inputs, _ nodes.Runtime) (*nodes.Outputs, error) {
			return &nodes.Outputs{UI: ojson.NewObject().Set("value", []any{intOf(in.Value("value"))})}, nil
		}}
	f.failN = &testNode{schema: &nodes.Schema{Name: "Fail", Inputs: []nodes.InputSpec{intIn("value")}, Outputs: []nodes.OutputSpec{{Type: nodes.TypeInt}}},
		run: func(context.Context, *nodes.Inputs, nodes.Runtime) (*nodes.Outputs, error) {
			return nil, nodes.Errorf("ValueError", "this node always fails")
		}}
	f.slowN = &testNode{schema: &nodes.Schema{Name: "Slow", Inputs: []nodes.InputSpec{intIn("value")}, Outputs: []nodes.OutputSpec{{Type: nodes.TypeInt}}},
		run: func(ctx context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
			for step := 1; ; step++ {
				if err := rt.Progress(step, 1000); err != nil {
					return nil, err
				}
				if step == 2 {
					f.slowOnce.Do(func() { close(f.slowStarted) })
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Millisecond):
				}
			}
		}}
	f.panicN = &testNode{schema: &nodes.Schema{Name: "Panic", Inputs: []nodes.InputSpec{intIn("value")}, Outputs: []nodes.OutputSpec{{Type: nodes.TypeInt}}},
		run: func(context.Context, *nodes.Inputs, nodes.Runtime) (*nodes.Outputs, error) {
			var m map[string]int
			m["boom"]++
			return nil, nil
		}}
	for _, n := range []*testNode{f.constN, f.addN, f.outN, f.failN, f.slowN, f.panicN} {
		f.reg.Register(n)
	}
	return f
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Send(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

func (r *recorder) find(typ string) *ojson.Object {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type == typ {
			return e.Data
		}
	}
	return nil
}

func (r *recorder) executing() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Type == "executing" {
			v, _ := e.Data.Get("node")
			out = append(out, v.(string))
		}
	}
	return out
}

func (f *fixture) run(t *testing.T, ex *Executor, ctx context.Context, prompt string) (*Result, *recorder) {
	t.Helper()
	wf, err := graph.ParseAPI([]byte(prompt))
	if err != nil {
		t.Fatal(err)
	}
	res := graph.Validate(wf, f.reg, nodes.Env{}, nil)
	if !res.OK() {
		t.Fatalf("validation failed: %s", mustJSON(res.ErrorResponse(wf.Order)))
	}
	rec := &recorder{}
	return ex.Run(ctx, &Request{PromptID: "p1", Workflow: wf, Validation: res}, rec), rec
}

func mustJSON(v any) string {
	b, _ := ojson.Marshal(v)
	return string(b)
}

const sumPrompt = `{
 "10": {"class_type": "Out", "inputs": {"value": ["3", 0]}},
 "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
 "1": {"class_type": "Const", "inputs": {"value": %A%}},
 "2": {"class_type": "Const", "inputs": {"value": 5}}
}`

func TestRunOrderOutputsAndEvents(t *testing.T) {
	f := newFixture()
	ex := New(f.reg, nodes.Env{})
	res, rec := f.run(t, ex, context.Background(), strings.ReplaceAll(sumPrompt, "%A%", "2"))
	if !res.Success {
		t.Fatalf("run failed: %v", res.Err)
	}
	if got := strings.Join(rec.executing(), ","); got != "1,2,3,10" {
		t.Fatalf("execution order %s, want producers first: 1,2,3,10", got)
	}
	if got := strings.Join(rec.types(), ","); got != "execution_start,execution_cached,progress_state,executing,progress_state,progress_state,executing,progress_state,progress_state,executing,progress_state,progress_state,executing,executed,progress_state,execution_success" {
		t.Fatalf("events %s", got)
	}
	if got := mustJSON(res.Outputs); got != `{"10":{"value":[7]}}` {
		t.Fatalf("outputs %s", got)
	}
	if len(res.Messages) != 3 {
		t.Fatalf("history messages: %d", len(res.Messages))
	}
}

func TestCacheRerunsOnlyChangedNodes(t *testing.T) {
	f := newFixture()
	ex := New(f.reg, nodes.Env{})
	f.run(t, ex, context.Background(), strings.ReplaceAll(sumPrompt, "%A%", "2"))
	if f.constN.calls.Load() != 2 || f.addN.calls.Load() != 1 || f.outN.calls.Load() != 1 {
		t.Fatalf("first run calls const=%d add=%d out=%d", f.constN.calls.Load(), f.addN.calls.Load(), f.outN.calls.Load())
	}
	// Unchanged: everything cached, the output node still reports its UI.
	res, rec := f.run(t, ex, context.Background(), strings.ReplaceAll(sumPrompt, "%A%", "2"))
	if f.constN.calls.Load() != 2 || f.addN.calls.Load() != 1 || f.outN.calls.Load() != 1 {
		t.Fatal("an unchanged rerun executed nodes")
	}
	cached, _ := rec.find("execution_cached").Get("nodes")
	if len(cached.([]any)) != 4 {
		t.Fatalf("execution_cached nodes = %v", cached)
	}
	if got := mustJSON(res.Outputs); got != `{"10":{"value":[7]}}` {
		t.Fatalf("cached outputs %s", got)
	}
	if rec.find("executed") == nil {
		t.Fatal("cached output node did not report executed")
	}
	// One widget changed: that node and its dependents re-run; the other Const stays cached.
	res, rec = f.run(t, ex, context.Background(), strings.ReplaceAll(sumPrompt, "%A%", "40"))
	if f.constN.calls.Load() != 3 || f.addN.calls.Load() != 2 || f.outN.calls.Load() != 2 {
		t.Fatalf("after one change calls const=%d add=%d out=%d", f.constN.calls.Load(), f.addN.calls.Load(), f.outN.calls.Load())
	}
	if got := strings.Join(rec.executing(), ","); got != "1,3,10" {
		t.Fatalf("re-executed %s, want 1,3,10", got)
	}
	if got := mustJSON(res.Outputs); got != `{"10":{"value":[45]}}` {
		t.Fatalf("outputs %s", got)
	}
	// Identical sub-graphs under other ids share cache entries (keys do not depend on ids).
	renamed := `{"a": {"class_type": "Out", "inputs": {"value": ["b", 0]}}, "b": {"class_type": "Add", "inputs": {"a": ["c", 0], "b": ["d", 0]}},
	 "c": {"class_type": "Const", "inputs": {"value": 40}}, "d": {"class_type": "Const", "inputs": {"value": 5}}}`
	f.run(t, ex, context.Background(), renamed)
	if f.addN.calls.Load() != 2 {
		t.Fatal("renamed identical graph was not answered from the cache")
	}
	ex.ClearCache()
	f.run(t, ex, context.Background(), renamed)
	if f.addN.calls.Load() != 3 {
		t.Fatal("ClearCache did not clear")
	}
}

func TestErrorStopsThePrompt(t *testing.T) {
	f := newFixture()
	ex := New(f.reg, nodes.Env{})
	prompt := `{"1": {"class_type": "Const", "inputs": {"value": 1}}, "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}},
	 "3": {"class_type": "Out", "inputs": {"value": ["2", 0]}}}`
	res, rec := f.run(t, ex, context.Background(), prompt)
	if res.Success || res.Interrupted {
		t.Fatalf("success=%v interrupted=%v", res.Success, res.Interrupted)
	}
	if f.outN.calls.Load() != 0 {
		t.Fatal("a node after the failing one ran")
	}
	e := rec.find("execution_error")
	if e == nil {
		t.Fatalf("no execution_error in %v", rec.types())
	}
	for key, want := range map[string]string{"node_id": "2", "node_type": "Fail", "exception_type": "ValueError", "exception_message": "this node always fails"} {
		if v, _ := e.Get(key); v != want {
			t.Errorf("%s = %v, want %v", key, v, want)
		}
	}
	if got := mustJSON(mustGet(e, "current_inputs")); got != `{"value":[1]}` {
		t.Errorf("current_inputs %s", got)
	}
	if got := mustJSON(mustGet(e, "executed")); got != `["1"]` {
		t.Errorf("executed %s", got)
	}
	// A failed node is not cached: fixing nothing and rerunning runs it again.
	f.run(t, ex, context.Background(), prompt)
	if f.failN.calls.Load() != 2 || f.constN.calls.Load() != 1 {
		t.Fatalf("rerun calls fail=%d const=%d", f.failN.calls.Load(), f.constN.calls.Load())
	}
}

func mustGet(o *ojson.Object, k string) any { v, _ := o.Get(k); return v }

func TestPanicBecomesExecutionError(t *testing.T) {
	f := newFixture()
	ex := New(f.reg, nodes.Env{})
	res, rec := f.run(t, ex, context.Background(), `{"1": {"class_type": "Panic", "inputs": {"value": 1}}, "2": {"class_type": "Out", "inputs": {"value": ["1", 0]}}}`)
	if res.Success {
		t.Fatal("panic reported success")
	}
	if v, _ := rec.find("execution_error").Get("exception_type"); v != "RuntimeError" {
		t.Fatalf("exception_type %v", v)
	}
}

func TestInterrupt(t *testing.T) {
	f := newFixture()
	ex := New(f.reg, nodes.Env{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *Result)
	var rec *recorder
	go func() {
		var res *Result
		res, rec = f.run(t, ex, ctx, `{"1": {"class_type": "Const", "inputs": {"value": 1}}, "2": {"class_type": "Slow", "inputs": {"value": ["1", 0]}},
		 "3": {"class_type": "Out", "inputs": {"value": ["2", 0]}}}`)
		done <- res
	}()
	select {
	case <-f.slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("slow node did not start")
	}
	cancel()
	var res *Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("interrupt did not stop the run")
	}
	if !res.Interrupted || res.Success || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("interrupted=%v success=%v err=%v", res.Interrupted, res.Success, res.Err)
	}
	e := rec.find("execution_interrupted")
	if e == nil {
		t.Fatalf("no execution_interrupted in %v", rec.types())
	}
	if v, _ := e.Get("node_id"); v != "2" {
		t.Fatalf("interrupted node %v", v)
	}
	if rec.find("progress") == nil {
		t.Fatal("no progress events")
	}
	if f.outN.calls.Load() != 0 {
		t.Fatal("output ran after interrupt")
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	f := newFixture()
	ex := New(f.reg, nodes.Env{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, _ := f.run(t, ex, ctx, strings.ReplaceAll(sumPrompt, "%A%", "1"))
	if !res.Interrupted || f.constN.calls.Load() != 0 {
		t.Fatalf("interrupted=%v calls=%d", res.Interrupted, f.constN.calls.Load())
	}
}

// countedValue is a model-like output that records retains and releases.
type countedValue struct{ refs *atomic.Int64 }

func (c countedValue) Retain()  { c.refs.Add(1) }
func (c countedValue) Release() { c.refs.Add(-1) }

func TestCacheRetainsAndReleasesModels(t *testing.T) {
	f := newFixture()
	var refs atomic.Int64
	loader := &testNode{schema: &nodes.Schema{Name: "Loader", Inputs: []nodes.InputSpec{{Name: "value", Type: nodes.TypeInt}}, Outputs: []nodes.OutputSpec{{Type: "THING"}}},
		run: func(context.Context, *nodes.Inputs, nodes.Runtime) (*nodes.Outputs, error) {
			return &nodes.Outputs{Values: []any{countedValue{&refs}}}, nil
		}}
	use := &testNode{schema: &nodes.Schema{Name: "Use", Inputs: []nodes.InputSpec{{Name: "thing", Type: "THING"}}, OutputNode: true},
		run: func(context.Context, *nodes.Inputs, nodes.Runtime) (*nodes.Outputs, error) {
			return &nodes.Outputs{UI: ojson.NewObject()}, nil
		}}
	f.reg.Register(loader)
	f.reg.Register(use)
	ex := New(f.reg, nodes.Env{})
	prompt := `{"1": {"class_type": "Loader", "inputs": {"value": %V%}}, "2": {"class_type": "Use", "inputs": {"thing": ["1", 0]}}}`
	f.run(t, ex, context.Background(), strings.ReplaceAll(prompt, "%V%", "1"))
	if refs.Load() != 1 {
		t.Fatalf("after the first run refs = %d, want 1 (held by the cache)", refs.Load())
	}
	f.run(t, ex, context.Background(), strings.ReplaceAll(prompt, "%V%", "2"))
	if refs.Load() != 1 {
		t.Fatalf("after replacing the loader's output refs = %d, want 1", refs.Load())
	}
	ex.ClearCache()
	if refs.Load() != 0 {
		t.Fatalf("after ClearCache refs = %d, want 0", refs.Load())
	}
}

// TestCachedOutputNodeWithoutUI: a cached output node that returned no UI still reports
// executed, with output null (ComfyUI's _send_cached_ui); a fresh run of it reports nothing.
func TestCachedOutputNodeWithoutUI(t *testing.T) {
	f := newFixture()
	sink := &testNode{schema: &nodes.Schema{Name: "Sink", Inputs: []nodes.InputSpec{{Name: "value", Type: nodes.TypeInt}}, OutputNode: true},
		run: func(context.Context, *nodes.Inputs, nodes.Runtime) (*nodes.Outputs, error) {
			return &nodes.Outputs{}, nil
		}}
	f.reg.Register(sink)
	ex := New(f.reg, nodes.Env{})
	prompt := `{"1": {"class_type": "Const", "inputs": {"value": 3}}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}}`
	_, rec := f.run(t, ex, context.Background(), prompt)
	if rec.find("executed") != nil {
		t.Fatal("a fresh run of an output node without UI reported executed")
	}
	res, rec := f.run(t, ex, context.Background(), prompt)
	ev := rec.find("executed")
	if ev == nil {
		t.Fatal("the cached output node did not report executed")
	}
	if got := mustJSON(ev); got != `{"node":"2","display_node":"2","output":null,"prompt_id":"p1"}` {
		t.Fatalf("executed = %s", got)
	}
	if got := mustJSON(res.Outputs); got != `{}` {
		t.Fatalf("history outputs %s, want none", got)
	}
}
