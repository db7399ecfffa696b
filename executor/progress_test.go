package executor

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// trace renders events compactly: progress_state as ps(id:state value/max ...) in the event's
// node order, progress as progress(node value/max), other events by type.
func trace(events []Event) string {
	var out []string
	for _, e := range events {
		switch e.Type {
		case "progress_state":
			all, _ := mustGet(e.Data, "nodes").(*ojson.Object)
			var parts []string
			for _, id := range all.Keys() {
				n, _ := all.Get(id)
				o := n.(*ojson.Object)
				parts = append(parts, fmt.Sprintf("%s:%v %s/%s", id, mustGet(o, "state"), mustJSON(mustGet(o, "value")), mustJSON(mustGet(o, "max"))))
			}
			out = append(out, "ps("+strings.Join(parts, " ")+")")
		case "progress":
			out = append(out, fmt.Sprintf("progress(%v %v/%v)", mustGet(e.Data, "node"), mustGet(e.Data, "value"), mustGet(e.Data, "max")))
		case "executing", "executed":
			out = append(out, fmt.Sprintf("%s(%v)", e.Type, mustGet(e.Data, "node")))
		default:
			out = append(out, e.Type)
		}
	}
	return strings.Join(out, "\n")
}

func TestProgressStateEvents(t *testing.T) {
	// Steps is a node that reports three progress steps and cancels the prompt at step 2 when
	// its input is negative.
	var cancel context.CancelFunc
	steps := &testNode{schema: &nodes.Schema{Name: "Steps", Inputs: []nodes.InputSpec{{Name: "value", Type: nodes.TypeInt}}, Outputs: []nodes.OutputSpec{{Type: nodes.TypeInt}}},
		run: func(_ context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
			v := in.Value("value")
			for i := 1; i <= 3; i++ {
				if i == 2 && intOf(v) < 0 {
					cancel()
				}
				if err := rt.Progress(i, 3); err != nil {
					return nil, err
				}
			}
			return &nodes.Outputs{Values: []any{v}}, nil
		}}
	chain := func(first, middle string) string {
		return `{"1": {"class_type": "Const", "inputs": {"value": ` + first + `}}, "2": {"class_type": "` + middle + `", "inputs": {"value": ["1", 0]}},
		 "3": {"class_type": "Out", "inputs": {"value": ["2", 0]}}}`
	}
	cases := []struct {
		name string
		// warm is a prompt run first to fill the cache.
		warm, prompt string
		want         []string
	}{
		{"fresh", "", chain("1", "Steps"), []string{
			"execution_start", "execution_cached",
			"ps(1:running 0.0/1.0)", "executing(1)", "ps(1:finished 1.0/1.0)",
			"ps(1:finished 1.0/1.0 2:running 0.0/1.0)", "executing(2)",
			"ps(1:finished 1.0/1.0 2:running 1/3)", "progress(2 1/3)",
			"ps(1:finished 1.0/1.0 2:running 2/3)", "progress(2 2/3)",
			"ps(1:finished 1.0/1.0 2:running 3/3)", "progress(2 3/3)",
			"ps(1:finished 1.0/1.0 2:finished 3/3)",
			"ps(1:finished 1.0/1.0 2:finished 3/3 3:running 0.0/1.0)", "executing(3)", "executed(3)",
			"ps(1:finished 1.0/1.0 2:finished 3/3 3:finished 1.0/1.0)",
			"execution_success"}},
		// Cached nodes finish at 1 of 1 without running; a cached output node reports its UI
		// first.
		{"cached", chain("1", "Steps"), chain("1", "Steps"), []string{
			"execution_start", "execution_cached",
			"ps(1:finished 1/1)", "ps(1:finished 1/1 2:finished 1/1)",
			"executed(3)", "ps(1:finished 1/1 2:finished 1/1 3:finished 1/1)",
			"execution_success"}},
		{"partly cached", strings.ReplaceAll(sumPrompt, "%A%", "2"), strings.ReplaceAll(sumPrompt, "%A%", "40"), []string{
			"execution_start", "execution_cached",
			"ps(1:running 0.0/1.0)", "executing(1)", "ps(1:finished 1.0/1.0)",
			"ps(1:finished 1.0/1.0 2:finished 1/1)",
			"ps(1:finished 1.0/1.0 2:finished 1/1 3:running 0.0/1.0)", "executing(3)",
			"ps(1:finished 1.0/1.0 2:finished 1/1 3:finished 1.0/1.0)",
			"ps(1:finished 1.0/1.0 2:finished 1/1 3:finished 1.0/1.0 10:running 0.0/1.0)", "executing(10)", "executed(10)",
			"ps(1:finished 1.0/1.0 2:finished 1/1 3:finished 1.0/1.0 10:finished 1.0/1.0)",
			"execution_success"}},
		// A failing node stays running: no finish is reported for it.
		{"error", "", chain("1", "Fail"), []string{
			"execution_start", "execution_cached",
			"ps(1:running 0.0/1.0)", "executing(1)", "ps(1:finished 1.0/1.0)",
			"ps(1:finished 1.0/1.0 2:running 0.0/1.0)", "executing(2)",
			"execution_error"}},
		// Interrupted at step 2: the step is not reported, the node stays running.
		{"interrupt", "", chain("-1", "Steps"), []string{
			"execution_start", "execution_cached",
			"ps(1:running 0.0/1.0)", "executing(1)", "ps(1:finished 1.0/1.0)",
			"ps(1:finished 1.0/1.0 2:running 0.0/1.0)", "executing(2)",
			"ps(1:finished 1.0/1.0 2:running 1/3)", "progress(2 1/3)",
			"execution_interrupted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			f.reg.Register(steps)
			ex := New(f.reg, nodes.Env{})
			if tc.warm != "" {
				f.run(t, ex, context.Background(), tc.warm)
			}
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
			_, rec := f.run(t, ex, ctx, tc.prompt)
			if got, want := trace(rec.events), strings.Join(tc.want, "\n"); got != want {
				t.Fatalf("events:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestProgressStateShape(t *testing.T) {
	f := newFixture()
	_, rec := f.run(t, New(f.reg, nodes.Env{}), context.Background(), `{"7": {"class_type": "Const", "inputs": {"value": 1}}, "8": {"class_type": "Out", "inputs": {"value": ["7", 0]}}}`)
	var got []string
	for _, e := range rec.events {
		if e.Type == "progress_state" {
			got = append(got, mustJSON(e.Data))
		}
	}
	got = got[:min(2, len(got))]
	want := []string{
		`{"prompt_id":"p1","nodes":{"7":{"value":0.0,"max":1.0,"state":"running","node_id":"7","prompt_id":"p1","display_node_id":"7","parent_node_id":null,"real_node_id":"7"}}}`,
		`{"prompt_id":"p1","nodes":{"7":{"value":1.0,"max":1.0,"state":"finished","node_id":"7","prompt_id":"p1","display_node_id":"7","parent_node_id":null,"real_node_id":"7"}}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("progress_state events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
