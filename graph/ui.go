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
	typ        string
}

type uiInput struct {
	name   string
	typ    string
	link   string // "" when unconnected
	widget bool
}

type uiNode struct {
	id      string
	typ     string
	mode    int
	title   string
	inputs  []uiInput
	widgets any // []any or *ojson.Object
}

// ConvertUI converts a UI-format workflow (version 0.4 or 1, decoded) to an API-format
// workflow, like the frontend's graphToPrompt: widget values are mapped to input names through
// the node schemas (frontend-only values such as control_after_generate and upload buttons are
// skipped), muted nodes are dropped, links are resolved through reroutes and bypassed nodes,
// and primitive nodes' values are inlined. Subgraphs are not supported yet.
func ConvertUI(doc *ojson.Object, reg *nodes.Registry, env nodes.Env) (*Workflow, error) {
	subgraphs := map[string]bool{}
	if defs, ok := doc.Get("definitions"); ok {
		if dobj, ok := defs.(*ojson.Object); ok {
			if sg, ok := dobj.Get("subgraphs"); ok {
				if list, ok := sg.([]any); ok {
					for _, s := range list {
						if so, ok := s.(*ojson.Object); ok {
							if id, ok := so.Get("id"); ok {
								subgraphs[fmt.Sprint(id)] = true
							}
						}
					}
				}
			}
		}
	}
	links, err := parseUILinks(doc)
	if err != nil {
		return nil, err
	}
	rawNodes, _ := doc.Get("nodes")
	list, ok := rawNodes.([]any)
	if !ok {
		return nil, parseErrorf("UI workflow: \"nodes\" must be an array")
	}
	byID := map[string]*uiNode{}
	var ids []string
	for i, rn := range list {
		obj, ok := rn.(*ojson.Object)
		if !ok {
			return nil, parseErrorf("UI workflow: nodes[%d] must be an object", i)
		}
		n, err := parseUINode(obj)
		if err != nil {
			return nil, parseErrorf("UI workflow: nodes[%d]: %v", i, err)
		}
		if subgraphs[n.typ] {
			return nil, parseErrorf("UI workflow: node %s is a subgraph (%s); subgraphs are not supported yet — convert the subgraph back to nodes in the editor (right click → Unpack Subgraph) and save again", n.id, n.typ)
		}
		if _, dup := byID[n.id]; dup {
			return nil, parseErrorf("UI workflow: duplicate node id %s", n.id)
		}
		byID[n.id] = n
		ids = append(ids, n.id)
	}
	sortIDs(ids)

	c := &uiConverter{links: links, nodes: byID}
	prompt := ojson.NewObject()
	for _, id := range ids {
		n := byID[id]
		if virtualTypes[n.typ] || n.mode == modeNever || n.mode == modeBypass {
			continue
		}
		inputs := ojson.NewObject()
		cls, known := reg.Get(n.typ)
		var schema *nodes.Schema
		if known {
			schema = cls.Schema()
			if err := mapWidgets(n, schema, inputs); err != nil {
				return nil, parseErrorf("UI workflow: node %s (%s): %v", n.id, n.typ, err)
			}
		}
		for _, in := range n.inputs {
			if in.link == "" {
				continue
			}
			val, ok := c.resolve(in.link, 0)
			if !ok {
				inputs.Delete(in.name)
				continue
			}
			inputs.Set(in.name, val)
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
		prompt.Set(id, node)
	}
	return FromPrompt(prompt)
}

// mapWidgets assigns widgets_values to the schema's widget inputs.
func mapWidgets(n *uiNode, schema *nodes.Schema, inputs *ojson.Object) error {
	if obj, ok := n.widgets.(*ojson.Object); ok {
		for i := range schema.Inputs {
			spec := &schema.Inputs[i]
			if v, ok := obj.Get(spec.Name); ok && spec.IsWidget() {
				inputs.Set(spec.Name, wrapList(v))
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
		inputs.Set(spec.Name, wrapList(values[pos]))
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

type uiConverter struct {
	links map[string]uiLink
	nodes map[string]*uiNode
}

// resolve follows a link to its real producer: [origin_id, slot], an inlined primitive value,
// or nothing (origin muted, missing or a note).
func (c *uiConverter) resolve(linkID string, depth int) (any, bool) {
	if depth > 1000 {
		return nil, false
	}
	l, ok := c.links[linkID]
	if !ok {
		return nil, false
	}
	origin, ok := c.nodes[l.originID]
	if !ok {
		return nil, false
	}
	switch {
	case origin.typ == "Reroute":
		for _, in := range origin.inputs {
			if in.link != "" {
				return c.resolve(in.link, depth+1)
			}
		}
		return nil, false
	case origin.typ == "PrimitiveNode":
		if vals, ok := origin.widgets.([]any); ok && len(vals) > 0 {
			return wrapList(vals[0]), true
		}
		return nil, false
	case origin.mode == modeBypass:
		// A bypassed node forwards the input of the same type, preferring the same slot.
		if l.originSlot < len(origin.inputs) {
			in := origin.inputs[l.originSlot]
			if in.link != "" && TypesCompatible(in.typ, l.typ) {
				return c.resolve(in.link, depth+1)
			}
		}
		for _, in := range origin.inputs {
			if in.link != "" && TypesCompatible(in.typ, l.typ) {
				return c.resolve(in.link, depth+1)
			}
		}
		return nil, false
	case origin.mode == modeNever || virtualTypes[origin.typ]:
		return nil, false
	}
	return []any{origin.id, json.Number(strconv.Itoa(l.originSlot))}, true
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

func parseUILinks(doc *ojson.Object) (map[string]uiLink, error) {
	links := map[string]uiLink{}
	raw, ok := doc.Get("links")
	if !ok || raw == nil {
		return links, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, parseErrorf("UI workflow: \"links\" must be an array")
	}
	for i, rl := range list {
		var id, origin, typ string
		var slot int
		switch t := rl.(type) {
		case []any: // version 0.4: [id, origin_id, origin_slot, target_id, target_slot, type]
			if len(t) < 5 {
				return nil, parseErrorf("UI workflow: links[%d] must have at least 5 entries", i)
			}
			var ok1, ok2, ok3 bool
			id, ok1 = idString(t[0])
			origin, ok2 = idString(t[1])
			slot, ok3 = intValue(t[2])
			if !ok1 || !ok2 || !ok3 {
				return nil, parseErrorf("UI workflow: links[%d] is malformed", i)
			}
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
				return nil, parseErrorf("UI workflow: links[%d] is malformed", i)
			}
			v, _ = t.Get("type")
			typ, _ = v.(string)
		case nil:
			continue
		default:
			return nil, parseErrorf("UI workflow: links[%d] must be an array or object", i)
		}
		links[id] = uiLink{originID: origin, originSlot: slot, typ: typ}
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
			_, in.widget = io.Get("widget")
			n.inputs = append(n.inputs, in)
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
