package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// decodeForCompare decodes JSON with exact numbers into plain maps, so that two prompts compare
// equal regardless of key order.
func decodeForCompare(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSubgraphFlattening converts the hand-written workflows in testdata/subgraph and compares
// each with the API prompt derived by hand from the frontend's rules (<name>.want.json), then
// checks that the result validates.
func TestSubgraphFlattening(t *testing.T) {
	cases := []struct {
		file string
		what string
	}{
		{"single.json", "one instance; its output consumed outside; an unconnected promoted input takes the instance's widgets_values entry"},
		{"two_instances.json", "two instances of one definition, chained; the second has no widgets_values and takes the inner widget's value"},
		{"nested.json", "nested instance (version 1 root): ids 9:3:1, a definition output fed by a nested instance's output, promoted value from the nested instance"},
		{"fanout.json", "one subgraph input feeding several inner nodes (link and widget inputs); a primitive node inside the subgraph"},
		{"modes.json", "bypassed instance passes its input through, muted instance drops the link; neither emits inner nodes"},
		{"inner_bypass_reroute.json", "bypassed inner node and a reroute inside the subgraph"},
		{"proxy_widgets.json", `instances without inputs (as templates save them): values at the positions of properties.proxyWidgets entries ("-1": the instance's own widget; else an inner node's), proxyWidgets as a JSON string, inline 4-element entries, positional widgets_values without proxyWidgets, a dangling id in an input's linkIds`},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/subgraph", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			wantData, err := os.ReadFile(filepath.Join("testdata/subgraph", strings.TrimSuffix(tc.file, ".json")+".want.json"))
			if err != nil {
				t.Fatal(err)
			}
			env := testEnv(t)
			wf, err := Parse(data, nodes.Default(), env)
			if err != nil {
				t.Fatalf("%s: %v", tc.what, err)
			}
			gotData, err := ojson.Marshal(wf.Prompt)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := decodeForCompare(t, gotData), decodeForCompare(t, wantData); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s:\n got %s\nwant %s", tc.what, gotData, bytes.Join(bytes.Fields(wantData), []byte(" ")))
			}
			if res := Validate(wf, nodes.Default(), env, nil); !res.OK() {
				t.Fatalf("converted prompt does not validate: %s", mustJSON(res.ErrorResponse(wf.Order)))
			}
		})
	}
}

// subgraphDef renders a minimal definition for the malformed-input cases.
func subgraphDef(id, nodesJSON, linksJSON, inputs, outputs string) string {
	return fmt.Sprintf(`{"id": %q, "name": "sg", "inputNode": {"id": -10}, "outputNode": {"id": -20}, "inputs": %s, "outputs": %s, "nodes": %s, "links": %s}`,
		id, inputs, outputs, nodesJSON, linksJSON)
}

const (
	sgX = "eeeeeeee-0000-4000-8000-000000000001"
	sgY = "eeeeeeee-0000-4000-8000-000000000002"
)

// malformedSubgraphCases are workflows with broken subgraph data; each must be refused with a
// parse error that says what is wrong. They also seed FuzzParseWorkflow.
var malformedSubgraphCases = []struct {
	name, doc, want string
}{
	{"unknown definition",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "eeeeeeee-0000-4000-8000-00000000000f", "mode": 0}], "links": []}`,
		"not in definitions.subgraphs"},
	{"definition contains itself",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 1, "type": "`+sgX+`"}]`, `[]`, `[]`, `[]`) + `]}}`,
		"cycle"},
	{"definitions contain each other",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 1, "type": "`+sgY+`"}]`, `[]`, `[]`, `[]`) + `, ` +
			subgraphDef(sgY, `[{"id": 2, "type": "`+sgX+`"}]`, `[]`, `[]`, `[]`) + `]}}`,
		"cycle"},
	{"inner input uses an unknown link id",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 1, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 99}]}]`, `[]`, `[]`, `[]`) + `]}}`,
		"link 99, which is not in the links list"},
	{"root input uses an unknown link id",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 7}]}], "links": []}`,
		"link 7, which is not in the links list"},
	{"link from a subgraph input slot that does not exist",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 1, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 5}]}]`,
				`[{"id": 5, "origin_id": -10, "origin_slot": 3, "target_id": 1, "target_slot": 0, "type": "IMAGE"}]`, `[]`, `[]`) + `]}}`,
		"input slot 3, but the subgraph has 0 inputs"},
	{"link from an instance output that does not exist",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}, {"id": 2, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 3}]}],
		  "links": [[3, 1, 2, 2, 0, "IMAGE"]], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[]`, `[]`, `[]`, `[{"name": "IMAGE", "type": "IMAGE", "linkIds": []}]`) + `]}}`,
		"has 1 outputs"},
	{"inner link from a node that does not exist",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 1, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 5}]}]`,
				`[{"id": 5, "origin_id": 42, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"}]`, `[]`, `[]`) + `]}}`,
		"comes from node 42, which does not exist"},
	{"definition output uses an unknown link id",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}, {"id": 2, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 3}]}],
		  "links": [[3, 1, 0, 2, 0, "IMAGE"]], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[]`, `[]`, `[]`, `[{"name": "IMAGE", "type": "IMAGE", "linkIds": [8]}]`) + `]}}`,
		"uses link 8, which is not in the links list"},
	{"definition without an id",
		`{"version": 0.4, "nodes": [], "links": [], "definitions": {"subgraphs": [{"name": "x", "nodes": [], "links": []}]}}`,
		`has no string "id"`},
	{"definition listed twice",
		`{"version": 0.4, "nodes": [], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[]`, `[]`, `[]`, `[]`) + `, ` + subgraphDef(sgX, `[]`, `[]`, `[]`, `[]`) + `]}}`,
		"appears twice"},
	{"definitions is not an object",
		`{"version": 0.4, "nodes": [], "links": [], "definitions": [1]}`,
		`"definitions" must be an object`},
	{"definition nodes are not a list",
		`{"version": 0.4, "nodes": [], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `{}`, `[]`, `[]`, `[]`) + `]}}`,
		`"nodes" must be an array`},
	{"definition inputs are not a list",
		`{"version": 0.4, "nodes": [], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[]`, `[]`, `{}`, `[]`) + `]}}`,
		`"inputs" must be an array`},
	{"root node id equal to a flattened inner id",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}, {"id": "1:2", "type": "PreviewImage"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 2, "type": "PreviewImage"}]`, `[]`, `[]`, `[]`) + `]}}`,
		"occurs twice after flattening"},
	{"reroutes in a cycle inside a subgraph",
		`{"version": 0.4, "nodes": [{"id": 1, "type": "` + sgX + `"}], "links": [], "definitions": {"subgraphs": [` +
			subgraphDef(sgX, `[{"id": 1, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 2}]}, {"id": 2, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 1}]},
			  {"id": 3, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 1}]}]`,
				`[{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0}, {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 1, "target_slot": 0}]`, `[]`, `[]`) + `]}}`,
		"does not end"},
}

func TestSubgraphMalformedIsRefused(t *testing.T) {
	for _, tc := range malformedSubgraphCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), nodes.Default(), testEnv(t))
			if err == nil {
				t.Fatal("accepted")
			}
			if !IsParseError(err) {
				t.Fatalf("not a parse error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestSubgraphExpansionIsBounded checks that definitions nesting many instances of each other
// (exponential expansion) are refused instead of exhausting memory.
func TestSubgraphExpansionIsBounded(t *testing.T) {
	const levels, width = 6, 10 // 10^6 inner nodes
	var defs []string
	for l := 0; l < levels; l++ {
		var inner []string
		for i := 1; i <= width; i++ {
			typ := "PreviewImage"
			if l+1 < levels {
				typ = fmt.Sprintf("ffffffff-0000-4000-8000-%012d", l+1)
			}
			inner = append(inner, fmt.Sprintf(`{"id": %d, "type": %q}`, i, typ))
		}
		defs = append(defs, subgraphDef(fmt.Sprintf("ffffffff-0000-4000-8000-%012d", l), "["+strings.Join(inner, ",")+"]", `[]`, `[]`, `[]`))
	}
	doc := `{"version": 0.4, "nodes": [{"id": 1, "type": "ffffffff-0000-4000-8000-000000000000"}], "links": [], "definitions": {"subgraphs": [` + strings.Join(defs, ",") + `]}}`
	_, err := Parse([]byte(doc), nodes.Default(), testEnv(t))
	if err == nil || !IsParseError(err) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("want a parse error about the node count, got %v", err)
	}
}

// TestSubgraphEdgeCases covers smaller rules, each on an inline workflow.
func TestSubgraphEdgeCases(t *testing.T) {
	empty := `{"id": 1, "type": "EmptyImage", "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [8, 8, 1, 0]}`
	instance := func(id int, inLink, outLink string) string {
		return fmt.Sprintf(`{"id": %d, "type": %q, "inputs": [{"name": "image", "type": "IMAGE", "link": %s}], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [%s]}]}`, id, sgX, inLink, outLink)
	}
	preview := func(id int, link string) string {
		return fmt.Sprintf(`{"id": %d, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": %s}]}`, id, link)
	}
	imageIn := `[{"name": "image", "type": "IMAGE", "linkIds": [5]}]`
	imageOut := `[{"name": "IMAGE", "type": "IMAGE", "linkIds": [6]}]`
	cases := []struct {
		name, doc, want string
	}{
		{"input passed straight to an output resolves to the outside producer",
			`{"version": 0.4, "nodes": [` + empty + `, ` + instance(2, "1", "2") + `, ` + preview(3, "2") + `],
			  "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]], "definitions": {"subgraphs": [` +
				subgraphDef(sgX, `[]`, `[{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}]`,
					`[{"name": "image", "type": "IMAGE", "linkIds": [5]}]`, `[{"name": "IMAGE", "type": "IMAGE", "linkIds": [5]}]`) + `]}}`,
			`{"1":{"class_type":"EmptyImage","inputs":{"width":8,"height":8,"batch_size":1,"color":0}},"3":{"class_type":"PreviewImage","inputs":{"images":["1",0]}}}`},
		{"unconnected input without a widget leaves the inner input out",
			`{"version": 0.4, "nodes": [` + instance(2, "null", "") + `], "links": [], "definitions": {"subgraphs": [` +
				subgraphDef(sgX, `[`+preview(1, "5")+`]`, `[{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"}]`, imageIn, `[]`) + `]}}`,
			`{"2:1":{"class_type":"PreviewImage","inputs":{}}}`},
		{"muted inner producer drops the inner link, and the instance output that it feeds",
			`{"version": 0.4, "nodes": [` + empty + `, ` + instance(2, "1", "2") + `, ` + preview(3, "2") + `],
			  "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]], "definitions": {"subgraphs": [` +
				subgraphDef(sgX, `[{"id": 1, "type": "ImageInvert", "mode": 2, "inputs": [{"name": "image", "type": "IMAGE", "link": 5}], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [6, 7]}]}, `+preview(2, "7")+`]`,
					`[{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
					  {"id": 6, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
					  {"id": 7, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"}]`, imageIn, imageOut) + `]}}`,
			`{"1":{"class_type":"EmptyImage","inputs":{"width":8,"height":8,"batch_size":1,"color":0}},"2:2":{"class_type":"PreviewImage","inputs":{}},"3":{"class_type":"PreviewImage","inputs":{}}}`},
		{"primitive node outside feeds a promoted widget",
			`{"version": 0.4, "nodes": [{"id": 1, "type": "PrimitiveNode", "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [1]}], "widgets_values": [0.25]},
			  {"id": 2, "type": "` + sgX + `", "inputs": [{"name": "scale_by", "type": "FLOAT", "widget": {"name": "scale_by"}, "link": 1}], "outputs": []}],
			  "links": [[1, 1, 0, 2, 0, "FLOAT"]], "definitions": {"subgraphs": [` +
				subgraphDef(sgX, `[{"id": 1, "type": "ImageScaleBy", "inputs": [{"name": "scale_by", "type": "FLOAT", "widget": {"name": "scale_by"}, "link": 5}], "widgets_values": ["area", 2]}]`,
					`[{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "FLOAT"}]`,
					`[{"name": "scale_by", "type": "FLOAT", "linkIds": [5]}]`, `[]`) + `]}}`,
			`{"2:1":{"class_type":"ImageScaleBy","inputs":{"upscale_method":"area","scale_by":0.25}}}`},
		{"a reroute carries the consumer's type to a bypassed producer",
			`{"version": 0.4, "nodes": [{"id": 1, "type": "EmptyLatentImage", "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}], "widgets_values": [64, 64, 1]},
			  {"id": 2, "type": "VAEDecode", "mode": 4, "inputs": [{"name": "samples", "type": "LATENT", "link": 1}, {"name": "vae", "type": "VAE", "link": null}], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}]},
			  {"id": 3, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 2}], "outputs": [{"name": "", "type": "IMAGE", "links": [3]}]},
			  ` + preview(4, "3") + `], "links": [[1, 1, 0, 2, 0, "LATENT"], [2, 2, 0, 3, 0, "*"], [3, 3, 0, 4, 0, "IMAGE"]]}`,
			`{"1":{"class_type":"EmptyLatentImage","inputs":{"width":64,"height":64,"batch_size":1}},"4":{"class_type":"PreviewImage","inputs":{}}}`},
		{"malformed proxyWidgets are ignored, as by the frontend",
			`{"version": 0.4, "nodes": [{"id": 2, "type": "` + sgX + `", "properties": {"proxyWidgets": [["1"]]}, "widgets_values": ["area"]}], "links": [], "definitions": {"subgraphs": [` +
				subgraphDef(sgX, `[{"id": 1, "type": "ImageScaleBy", "inputs": [{"name": "upscale_method", "type": "COMBO", "widget": {"name": "upscale_method"}, "link": 5}], "widgets_values": ["bicubic", 2]}]`,
					`[{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "COMBO"}]`,
					`[{"name": "upscale_method", "type": "COMBO", "linkIds": [5]}]`, `[]`) + `]}}`,
			`{"2:1":{"class_type":"ImageScaleBy","inputs":{"upscale_method":"area","scale_by":2}}}`},
		{"a legacy proxyWidgets value for the second inner widget of an input applies to all its widgets",
			`{"version": 0.4, "nodes": [{"id": 5, "type": "` + sgX + `", "properties": {"proxyWidgets": [["2", "color"]]}, "widgets_values": [77]}], "links": [], "definitions": {"subgraphs": [` +
				subgraphDef(sgX, `[{"id": 1, "type": "EmptyImage", "inputs": [{"name": "color", "type": "INT", "widget": {"name": "color"}, "link": 5}], "widgets_values": [4, 4, 1, 10]},
				  {"id": 2, "type": "EmptyImage", "inputs": [{"name": "color", "type": "INT", "widget": {"name": "color"}, "link": 6}], "widgets_values": [2, 2, 1, 20]}]`,
					`[{"id": 5, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "INT"}, {"id": 6, "origin_id": -10, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "INT"}]`,
					`[{"name": "color", "type": "INT", "linkIds": [5, 6]}]`, `[]`) + `]}}`,
			`{"5:1":{"class_type":"EmptyImage","inputs":{"width":4,"height":4,"batch_size":1,"color":77}},"5:2":{"class_type":"EmptyImage","inputs":{"width":2,"height":2,"batch_size":1,"color":77}}}`},
		{"a nested copy of a known definition is ignored",
			`{"version": 0.4, "nodes": [` + instance(2, "null", "") + `], "links": [], "definitions": {"subgraphs": [` +
				strings.TrimSuffix(subgraphDef(sgX, `[`+preview(1, "null")+`]`, `[]`, imageIn, `[]`), "}") +
				`, "definitions": {"subgraphs": [` + subgraphDef(sgX, `[]`, `[]`, `[]`, `[]`) + `]}}]}}`,
			`{"2:1":{"class_type":"PreviewImage","inputs":{}}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wf, err := Parse([]byte(tc.doc), nodes.Default(), testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := inputsJSON(t, wf); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
