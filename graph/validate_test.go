package graph

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func testEnv(t *testing.T) nodes.Env {
	dir := t.TempDir()
	return nodes.Env{InputDir: filepath.Join(dir, "input"), OutputDir: filepath.Join(dir, "output"), TempDir: filepath.Join(dir, "temp"), ModelsDir: filepath.Join(dir, "models")}
}

// validationCases names, per testdata/validate file, the top-level error type expected ("" when
// the prompt is accepted) and the error types of each node that must be reported.
var validationCases = []struct {
	name       string
	partial    []string
	wantError  string
	wantNodes  map[string][]string
	wantOutput []string
}{
	{name: "ok_basic", wantOutput: []string{"2"}},
	{name: "required_input_missing", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"required_input_missing"}}},
	{name: "return_type_mismatch", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"2": {"return_type_mismatch"}}},
	{name: "value_not_in_list", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"2": {"value_not_in_list"}}},
	{name: "value_smaller_than_min", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"value_smaller_than_min"}}},
	{name: "value_bigger_than_max", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"value_bigger_than_max"}}},
	{name: "invalid_input_type", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"invalid_input_type"}}},
	{name: "missing_node_type", wantError: "missing_node_type"},
	{name: "missing_class_type", wantError: "missing_node_type"},
	{name: "prompt_no_outputs", wantError: "prompt_no_outputs"},
	{name: "dependency_cycle", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"dependency_cycle"}, "2": {"dependency_cycle"}}},
	{name: "bad_linked_input", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"bad_linked_input"}}},
	{name: "link_to_unknown_node", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"bad_linked_input"}}},
	{name: "link_slot_out_of_range", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"2": {"bad_linked_input"}}},
	{name: "partial_failure", wantOutput: []string{"2"}, wantNodes: map[string][]string{"3": {"required_input_missing"}}},
	{name: "shared_upstream_error", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"value_smaller_than_min"}}},
	{name: "seed_bounds", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"value_bigger_than_max"}}},
	{name: "custom_validation_failed", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"custom_validation_failed"}}},
	{name: "path_escape_load", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"custom_validation_failed"}}},
	{name: "literal_for_link_type", wantError: "prompt_outputs_failed_validation", wantNodes: map[string][]string{"1": {"invalid_input_type"}}},
	{name: "value_wrapper", wantOutput: []string{"3"}},
	{name: "partial_targets", partial: []string{"2"}, wantOutput: []string{"2"}},
}

func TestValidate(t *testing.T) {
	files, _ := filepath.Glob("testdata/validate/*.json")
	covered := map[string]bool{}
	for _, tc := range validationCases {
		covered[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/validate", tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			wf, err := ParseAPI(data)
			if err != nil {
				t.Fatal(err)
			}
			res := Validate(wf, nodes.Default(), testEnv(t), tc.partial)
			gotErr := ""
			if res.Error != nil {
				gotErr = res.Error.Type
			}
			if gotErr != tc.wantError {
				t.Fatalf("error type = %q, want %q (%+v)", gotErr, tc.wantError, res.Error)
			}
			if strings.Join(res.Outputs, ",") != strings.Join(tc.wantOutput, ",") {
				t.Fatalf("outputs = %v, want %v", res.Outputs, tc.wantOutput)
			}
			if len(res.NodeErrors) != len(tc.wantNodes) {
				t.Fatalf("node_errors for %d nodes, want %d: %s", len(res.NodeErrors), len(tc.wantNodes), mustJSON(res.NodeErrorsJSON(wf.Order)))
			}
			for id, types := range tc.wantNodes {
				ne := res.NodeErrors[id]
				if ne == nil {
					t.Fatalf("no node_errors for node %s", id)
				}
				var got []string
				for _, e := range ne.Errors {
					got = append(got, e.Type)
				}
				if strings.Join(got, ",") != strings.Join(types, ",") {
					t.Fatalf("node %s errors = %v, want %v", id, got, types)
				}
				if len(ne.DependentOutputs) == 0 {
					t.Fatalf("node %s has no dependent_outputs", id)
				}
			}
			var doc *ojson.Object
			if res.OK() {
				outs := make([]any, len(res.Outputs))
				for i, o := range res.Outputs {
					outs[i] = o
				}
				doc = ojson.NewObject().Set("ok", true).Set("outputs", outs).Set("node_errors", res.NodeErrorsJSON(wf.Order)).Set("prompt", wf.Prompt)
			} else {
				doc = res.ErrorResponse(wf.Order)
			}
			checkGolden(t, filepath.Join("testdata/validate", tc.name+".golden"), mustJSON(doc))
		})
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if !covered[name] {
			t.Errorf("testdata/validate/%s.json has no entry in validationCases", name)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := ojson.MarshalPython(v)
	if err != nil {
		panic(err)
	}
	return b
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	got = append(bytes.TrimSpace(got), '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}
