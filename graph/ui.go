package graph

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// Node modes of the UI format.
const (
	modeNever  = 2 // muted: not emitted, its outputs are absent
	modeBypass = 4 // bypassed: consumers get a same-typed input passed through
)

// virtualTypes are frontend-only nodes that never reach the API prompt.
var virtualTypes = map[string]bool{
	"Note": true, "MarkdownNote": true, "Reroute": true, "PrimitiveNode": true,
}

// controlValues are the values of the frontend's control_after_generate widget.
var controlValues = map[string]bool{"fixed": true, "increment": true, "decrement": true, "randomize": true}

type uiLink struct {
	originID   string
	originSlot int
	targetID   string
	targetSlot int
	typ        string
}

type uiInput struct {
	name       string
	typ        string
	link       string // "" when unconnected
	widget     bool
	widgetName string // the widget this input converts (widget.name), else name
}

type uiNode struct {
	id      string
	typ     string
	mode    int
	title   string
	inputs  []uiInput
	outputs []string // output slot types
	widgets any      // []any or *ojson.Object
	// proxyWidgets is an instance's properties.proxyWidgets, one entry per widgets_values entry.
	proxyWidgets []proxyEntry
	hasProxies   bool
	def          *uiGraph // the subgraph definition, for subgraph instances
}

// ConvertUI converts a UI-format workflow (version 0.4 or 1, decoded) to an API-format
// workflow, like the frontend's graphToPrompt: widget values are mapped to input names through
// the node schemas (frontend-only values such as control_after_generate and upload buttons are
// skipped), muted nodes are dropped, links are resolved through reroutes and bypassed nodes,
// primitive nodes' values are inlined, and subgraph instances are flattened into their inner
// nodes with ids "<instance id>:<inner id>" (see subgraph.go).
func ConvertUI(doc *ojson.Object, reg *nodes.Registry, env nodes.Env) (*Workflow, error) {
	defs, err := parseDefinitions(doc)
	if err != nil {
		return nil, err
	}
	root, err := parseUIGraph(doc, "UI workflow", nil)
	if err != nil {
		return nil, err
	}
	c := &uiConverter{reg: reg, defs: defs}
	if err := c.bindInstances(root, "UI workflow"); err != nil {
		return nil, err
	}
	for _, d := range defs.list {
		if err := c.bindInstances(d, d.label()); err != nil {
			return nil, err
		}
	}
	if err := checkDefinitionCycles(defs); err != nil {
		return nil, err
	}
	if err := checkFlatSize(root); err != nil {
		return nil, err
	}
	prompt := ojson.NewObject()
	if err := c.emit(&scope{g: root}, prompt); err != nil {
		return nil, err
	}
	// Like the frontend, drop links to nodes that were not emitted.
	for _, id := range prompt.Keys() {
		nv, _ := prompt.Get(id)
		inv, _ := nv.(*ojson.Object).Get("inputs")
		inputs := inv.(*ojson.Object)
		for _, name := range inputs.Keys() {
			v, _ := inputs.Get(name)
			if arr, ok := v.([]any); ok && len(arr) == 2 {
				if origin, ok := arr[0].(string); ok {
					if _, emitted := prompt.Get(origin); !emitted {
						inputs.Delete(name)
					}
				}
			}
		}
	}
	return FromPrompt(prompt)
}

// emit appends the API nodes of graph s.g (recursively for subgraph instances) to prompt.
func (c *uiConverter) emit(s *scope, prompt *ojson.Object) error {
	for _, id := range s.g.order {
		n := s.g.nodes[id]
		if n.def != nil {
			// A muted or bypassed instance runs none of its inner nodes (frontend PR #8494; the
			// frontend checks only top-level instances, we check every level). Consumers of a
			// bypassed instance still get a same-typed input passed through (resolveOutput).
			if n.mode == modeNever || n.mode == modeBypass {
				continue
			}
			if err := c.emit(s.child(n), prompt); err != nil {
				return err
			}
			continue
		}
		if virtualTypes[n.typ] || n.mode == modeNever || n.mode == modeBypass {
			continue
		}
		inputs := ojson.NewObject()
		cls, known := c.reg.Get(n.typ)
		var schema *nodes.Schema
		if known {
			schema = cls.Schema()
			if err := c.nodeWidgets(s, n, schema, inputs); err != nil {
				return parseErrorf("%s: node %s (%s): %v", s.g.label(), n.id, n.typ, err)
			}
		}
		for slot, in := range n.inputs {
			if in.link == "" {
				continue
			}
			r, err := c.resolveInput(s, n, slot, 0)
			if err != nil {
				return err
			}
			switch r.kind {
			case resLink:
				inputs.Set(in.name, linkValue(r))
			case resValue:
				inputs.Set(in.name, wrapList(ojson.CloneValue(r.value)))
			case resDropped:
				inputs.Delete(in.name)
			}
		}
		if schema != nil {
			inputs = inSchemaOrder(inputs, schema)
		}
		title := n.title
		if title == "" {
			title = n.typ
			if schema != nil && schema.DisplayName != "" {
				title = schema.DisplayName
			}
		}
		node := ojson.NewObject().Set("inputs", inputs).Set("class_type", n.typ).
			Set("_meta", ojson.NewObject().Set("title", title))
		if _, dup := prompt.Get(s.prefix + id); dup {
			return parseErrorf("%s: node id %s%s occurs twice after flattening subgraphs; renumber the node in the editor", s.g.label(), s.prefix, id)
		}
		prompt.Set(s.prefix+id, node)
	}
	return nil
}

// mapWidgets assigns widgets_values to the schema's widget inputs.
func mapWidgets(n *uiNode, schema *nodes.Schema, inputs *ojson.Object) error {
	if obj, ok := n.widgets.(*ojson.Object); ok {
		for i := range schema.Inputs {
			spec := &schema.Inputs[i]
			if v, ok := obj.Get(spec.Name); ok && spec.IsWidget() {
				inputs.Set(spec.Name, wrapList(ojson.CloneValue(v)))
			}
		}
		return nil
	}
	values, _ := n.widgets.([]any)
	var widgets []*nodes.InputSpec
	for i := range schema.Inputs {
		if schema.Inputs[i].IsWidget() {
			widgets = append(widgets, &schema.Inputs[i])
		}
	}
	pos := 0
	for wi, spec := range widgets {
		if pos >= len(values) {
			break
		}
		inputs.Set(spec.Name, wrapList(ojson.CloneValue(values[pos])))
		pos++
		remainingWidgets := len(widgets) - wi - 1
		if spec.ControlAfterGenerate != nil || spec.Name == "seed" || spec.Name == "noise_seed" {
			if pos < len(values) {
				if s, ok := values[pos].(string); ok && controlValues[s] {
					pos++
				}
			}
		}
		if spec.HasUpload() && len(values)-pos > remainingWidgets {
			pos++
		}
	}
	return nil
}

// inSchemaOrder orders inputs as the schema declares them, unknown names last.
func inSchemaOrder(in *ojson.Object, schema *nodes.Schema) *ojson.Object {
	out := ojson.NewObject()
	for _, spec := range schema.Inputs {
		if v, ok := in.Get(spec.Name); ok {
			out.Set(spec.Name, v)
		}
	}
	for _, k := range in.Keys() {
		if _, ok := out.Get(k); !ok {
			v, _ := in.Get(k)
			out.Set(k, v)
		}
	}
	return out
}

// wrapList wraps literal lists as {"__value__": [...]} so they are not read as links.
func wrapList(v any) any {
	if arr, ok := v.([]any); ok {
		return ojson.NewObject().Set("__value__", arr)
	}
	return v
}

func idString(v any) (string, bool) {
	switch t := v.(type) {
	case json.Number:
		return string(t), true
	case string:
		return t, true
	}
	return "", false
}

func intValue(v any) (int, bool) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(num))
	if err != nil {
		f, ferr := num.Float64()
		if ferr != nil || f != float64(int(f)) {
			return 0, false
		}
		return int(f), true
	}
	return i, true
}

// parseUILinks reads the "links" of a graph; where names the graph in errors.
func parseUILinks(doc *ojson.Object, where string) (map[string]uiLink, error) {
	links := map[string]uiLink{}
	raw, ok := doc.Get("links")
	if !ok || raw == nil {
		return links, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, parseErrorf("%s: \"links\" must be an array", where)
	}
	for i, rl := range list {
		var id, origin, typ, target string
		var slot, targetSlot int
		switch t := rl.(type) {
		case []any: // version 0.4: [id, origin_id, origin_slot, target_id, target_slot, type]
			if len(t) < 5 {
				return nil, parseErrorf("%s: links[%d] must have at least 5 entries", where, i)
			}
			var ok1, ok2, ok3 bool
			id, ok1 = idString(t[0])
			origin, ok2 = idString(t[1])
			slot, ok3 = intValue(t[2])
			if !ok1 || !ok2 || !ok3 {
				return nil, parseErrorf("%s: links[%d] is malformed", where, i)
			}
			target, _ = idString(t[3])
			targetSlot, _ = intValue(t[4])
			if len(t) > 5 {
				typ, _ = t[5].(string)
			}
		case *ojson.Object: // version 1
			var ok1, ok2, ok3 bool
			v, _ := t.Get("id")
			id, ok1 = idString(v)
			v, _ = t.Get("origin_id")
			origin, ok2 = idString(v)
			v, _ = t.Get("origin_slot")
			slot, ok3 = intValue(v)
			if !ok1 || !ok2 || !ok3 {
				return nil, parseErrorf("%s: links[%d] is malformed", where, i)
			}
			v, _ = t.Get("target_id")
			target, _ = idString(v)
			v, _ = t.Get("target_slot")
			targetSlot, _ = intValue(v)
			v, _ = t.Get("type")
			typ, _ = v.(string)
		case nil:
			continue
		default:
			return nil, parseErrorf("%s: links[%d] must be an array or object", where, i)
		}
		links[id] = uiLink{originID: origin, originSlot: slot, targetID: target, targetSlot: targetSlot, typ: typ}
	}
	return links, nil
}

func parseUINode(obj *ojson.Object) (*uiNode, error) {
	n := &uiNode{}
	v, _ := obj.Get("id")
	id, ok := idString(v)
	if !ok {
		return nil, fmt.Errorf("missing or invalid id")
	}
	n.id = id
	v, _ = obj.Get("type")
	if n.typ, ok = v.(string); !ok {
		return nil, fmt.Errorf("node %s: missing type", id)
	}
	if v, ok := obj.Get("mode"); ok {
		n.mode, _ = intValue(v)
	}
	if v, ok := obj.Get("title"); ok {
		n.title, _ = v.(string)
	}
	n.widgets, _ = obj.Get("widgets_values")
	if v, ok := obj.Get("inputs"); ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("node %s: inputs must be an array", id)
		}
		for _, ri := range list {
			io, ok := ri.(*ojson.Object)
			if !ok {
				return nil, fmt.Errorf("node %s: input entries must be objects", id)
			}
			var in uiInput
			nv, _ := io.Get("name")
			in.name, _ = nv.(string)
			tv, _ := io.Get("type")
			in.typ, _ = tv.(string)
			if lv, ok := io.Get("link"); ok && lv != nil {
				in.link, _ = idString(lv)
			}
			if wv, ok := io.Get("widget"); ok && wv != nil {
				in.widget = true
				if wo, ok := wv.(*ojson.Object); ok {
					wn, _ := wo.Get("name")
					in.widgetName, _ = wn.(string)
				}
			}
			if in.widgetName == "" {
				in.widgetName = in.name
			}
			n.inputs = append(n.inputs, in)
		}
	}
	// Output types only steer bypass resolution; odd entries count as untyped.
	if list, ok := obj.Get("outputs"); ok {
		outs, _ := list.([]any)
		for _, ro := range outs {
			var typ string
			if oo, ok := ro.(*ojson.Object); ok {
				tv, _ := oo.Get("type")
				typ, _ = tv.(string)
			}
			n.outputs = append(n.outputs, typ)
		}
	}
	if v, ok := obj.Get("properties"); ok {
		if props, ok := v.(*ojson.Object); ok {
			if pw, ok := props.Get("proxyWidgets"); ok && pw != nil {
				n.proxyWidgets, n.hasProxies = parseProxyWidgets(pw)
			}
		}
	}
	return n, nil
}

// Parse reads a workflow in either format. UI-format documents are converted with the schemas
// of reg. A top-level {"prompt": {...}} body (the POST /prompt shape) is accepted too.
func Parse(data []byte, reg *nodes.Registry, env nodes.Env) (*Workflow, error) {
	v, err := ojson.Decode(data)
	if err != nil {
		return nil, parseErrorf("workflow: %v", err)
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		return nil, parseErrorf("workflow: expected a JSON object, got %s", ojson.Kind(v))
	}
	if IsUIFormat(obj) {
		return ConvertUI(obj, reg, env)
	}
	if p, ok := obj.Get("prompt"); ok {
		if pobj, ok := p.(*ojson.Object); ok {
			if _, isNode := pobj.Get("class_type"); !isNode {
				return FromPrompt(pobj)
			}
		}
	}
	return FromPrompt(obj)
}
