package graph

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows"
)

// inputsJSON renders a workflow's node inputs by id, for comparing conversions.
func inputsJSON(t *testing.T, wf *Workflow) string {
	t.Helper()
	out := ojson.NewObject()
	for _, id := range wf.Order {
		n := wf.Nodes[id]
		in, _ := n.Raw.Get("inputs")
		out.Set(id, ojson.NewObject().Set("class_type", n.ClassType).Set("inputs", in))
	}
	b, err := ojson.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUIExampleConvertsToAPIExample(t *testing.T) {
	api, err := workflows.Read("image_invert.json")
	if err != nil {
		t.Fatal(err)
	}
	ui, err := workflows.Read("image_invert.ui.json")
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	want, err := Parse(api, nodes.Default(), env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(ui, nodes.Default(), env)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := inputsJSON(t, got), inputsJSON(t, want); g != w {
		t.Fatalf("UI conversion differs from the API example:\n got %s\nwant %s", g, w)
	}
	if got.Nodes["1"].Title != "Orange canvas" {
		t.Fatalf("title not kept: %q", got.Nodes["1"].Title)
	}
}

func TestUIConversionRules(t *testing.T) {
	cases := []struct {
		name string
		file string
		want string
		err  bool
	}{
		{name: "seed control value and primitive node", file: "ui_primitive.json",
			want: `{"2":{"class_type":"EmptyImage","inputs":{"width":"100","height":32,"batch_size":1,"color":255}},"3":{"class_type":"PreviewImage","inputs":{"images":["2",0]}}}`},
		{name: "muted producer drops the link", file: "ui_muted.json",
			want: `{"3":{"class_type":"PreviewImage","inputs":{}}}`},
		{name: "version 1 object links", file: "ui_v1.json",
			want: `{"1":{"class_type":"EmptyImage","inputs":{"width":16,"height":16,"batch_size":1,"color":0}},"2":{"class_type":"PreviewImage","inputs":{"images":["1",0]}}}`},
		{name: "empty subgraph instance emits nothing", file: "ui_subgraph.json", want: `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/ui", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			wf, err := Parse(data, nodes.Default(), testEnv(t))
			if tc.err {
				if err == nil || !IsParseError(err) {
					t.Fatalf("want a parse error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := inputsJSON(t, wf); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func FuzzParseWorkflow(f *testing.F) {
	for _, name := range workflows.Names() {
		data, _ := workflows.Read(name)
		f.Add(data)
	}
	files, _ := filepath.Glob("testdata/*/*.json")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	for _, tc := range malformedSubgraphCases {
		f.Add([]byte(tc.doc))
	}
	env := nodes.Env{InputDir: "/nonexistent/input", OutputDir: "/nonexistent/output", TempDir: "/nonexistent/temp"}
	f.Fuzz(func(t *testing.T, data []byte) {
		wf, err := Parse(data, nodes.Default(), env)
		if err != nil {
			if !IsParseError(err) {
				t.Fatalf("parse error of the wrong kind: %v", err)
			}
			return
		}
		res := Validate(wf, nodes.Default(), env, nil)
		if res.OK() {
			if _, err := ExecutionOrder(wf, res.Outputs); err != nil {
				t.Fatalf("validated workflow cannot be ordered: %v", err)
			}
		}
		if _, err := ojson.Marshal(res.ErrorResponse(wf.Order)); err != nil {
			t.Fatalf("error response does not encode: %v", err)
		}
	})
}
