package executor

import (
	"context"
	"image"
	"image/color"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

type previewRecorder struct {
	method   string
	events   []string
	previews []Preview
}

func (p *previewRecorder) Send(e Event)          { p.events = append(p.events, e.Type) }
func (p *previewRecorder) PreviewMethod() string { return p.method }
func (p *previewRecorder) SendPreview(pv Preview) {
	p.previews = append(p.previews, pv)
	p.events = append(p.events, "preview")
}
func (p *previewRecorder) typesString() (s []string) { return p.events }

// previewNode sends one preview per step before reporting progress, as a sampler does.
type previewNode struct{ sawMethod string }

func (n *previewNode) Schema() *nodes.Schema {
	return &nodes.Schema{Name: "PreviewStep", OutputNode: true, Inputs: []nodes.InputSpec{{Name: "steps", Type: nodes.TypeInt}}}
}

func (n *previewNode) Execute(_ context.Context, in *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
	type previewer interface {
		PreviewMethod() string
		Preview(format string, img image.Image, fullSize bool) error
	}
	p, ok := rt.(previewer)
	if !ok {
		return nil, nodes.Errorf("TypeError", "runtime does not offer previews")
	}
	n.sawMethod = p.PreviewMethod()
	steps := int(in.Int("steps"))
	for i := 0; i < steps; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 4, 4))
		img.Set(0, 0, color.RGBA{R: uint8(i), A: 255})
		if n.sawMethod != PreviewNone {
			if err := p.Preview(PreviewJPEG, img, false); err != nil {
				return nil, err
			}
		}
		if err := rt.Progress(i+1, steps); err != nil {
			return nil, err
		}
	}
	if err := p.Preview("GIF", image.NewRGBA(image.Rect(0, 0, 1, 1)), false); err == nil {
		return nil, nodes.Errorf("ValueError", "an unknown preview format was accepted")
	}
	if err := p.Preview(PreviewPNG, nil, true); err == nil {
		return nil, nodes.Errorf("ValueError", "a nil preview image was accepted")
	}
	return &nodes.Outputs{UI: ojson.NewObject()}, nil
}

func runPreviewPrompt(t *testing.T, sink Sink) *previewNode {
	t.Helper()
	reg := nodes.NewRegistry()
	node := &previewNode{}
	reg.Register(node)
	wf, err := graph.ParseAPI([]byte(`{"1": {"class_type": "PreviewStep", "inputs": {"steps": 3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	res := graph.Validate(wf, reg, nodes.Env{}, nil)
	if !res.OK() {
		t.Fatalf("validation failed: %v", res.Error)
	}
	r := New(reg, nodes.Env{}).Run(context.Background(), &Request{PromptID: "p", Workflow: wf, Validation: res}, sink)
	if !r.Success {
		t.Fatalf("run failed: %v", r.Err)
	}
	return node
}

func TestPreviewReachesPreviewSinkInOrder(t *testing.T) {
	rec := &previewRecorder{method: PreviewLatent2RGB}
	node := runPreviewPrompt(t, rec)
	if node.sawMethod != PreviewLatent2RGB {
		t.Fatalf("node saw preview method %q", node.sawMethod)
	}
	if len(rec.previews) != 3 {
		t.Fatalf("got %d previews, want 3", len(rec.previews))
	}
	for i, pv := range rec.previews {
		if pv.PromptID != "p" || pv.NodeID != "1" || pv.Format != PreviewJPEG || pv.FullSize {
			t.Fatalf("preview %d = %+v", i, pv)
		}
		if r, _, _, _ := pv.Image.At(0, 0).RGBA(); int(r>>8) != i {
			t.Fatalf("preview %d carries the wrong image", i)
		}
	}
	want := []string{"execution_start", "execution_cached", "progress_state", "executing",
		"progress_state", "preview", "progress", "progress_state", "preview", "progress", "progress_state", "preview", "progress",
		"executed", "progress_state", "execution_success"}
	got := rec.typesString()
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

func TestPreviewMethodNoneWithoutPreviewSink(t *testing.T) {
	var types []string
	node := runPreviewPrompt(t, SinkFunc(func(e Event) { types = append(types, e.Type) }))
	if node.sawMethod != PreviewNone {
		t.Fatalf("plain sink: node saw preview method %q, want none", node.sawMethod)
	}
	node = runPreviewPrompt(t, &previewRecorder{method: ""})
	if node.sawMethod != PreviewNone {
		t.Fatalf("empty method: node saw %q, want none", node.sawMethod)
	}
}

// A held preview goes out when the node returns without a Progress call after it, and is
// dropped when the prompt is interrupted before its Progress call.
func TestHeldPreview(t *testing.T) {
	cases := []struct {
		name   string
		cancel bool
		want   string
	}{
		{"returns", false, "execution_start,execution_cached,progress_state,executing,preview,executed,progress_state,execution_success"},
		{"interrupted", true, "execution_start,execution_cached,progress_state,executing,execution_interrupted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			reg := nodes.NewRegistry()
			reg.Register(&testNode{schema: &nodes.Schema{Name: "Last", OutputNode: true, Inputs: []nodes.InputSpec{{Name: "v", Type: nodes.TypeInt}}},
				run: func(ctx context.Context, _ *nodes.Inputs, rt nodes.Runtime) (*nodes.Outputs, error) {
					if err := rt.(Previewer).Preview(PreviewPNG, image.NewRGBA(image.Rect(0, 0, 2, 2)), true); err != nil {
						return nil, err
					}
					if tc.cancel {
						cancel()
						return nil, rt.Progress(1, 1)
					}
					return &nodes.Outputs{UI: ojson.NewObject()}, nil
				}})
			wf, err := graph.ParseAPI([]byte(`{"1": {"class_type": "Last", "inputs": {"v": 1}}}`))
			if err != nil {
				t.Fatal(err)
			}
			res := graph.Validate(wf, reg, nodes.Env{}, nil)
			rec := &previewRecorder{method: PreviewLatent2RGB}
			New(reg, nodes.Env{}).Run(ctx, &Request{PromptID: "p", Workflow: wf, Validation: res}, rec)
			if got := strings.Join(rec.events, ","); got != tc.want {
				t.Fatalf("events %s\nwant   %s", got, tc.want)
			}
		})
	}
}
