package build

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// UIWorkflow renders an API-format prompt as an editor-format workflow (version 0.4: nodes with
// positions, widgets_values in schema order, links), which is what ComfyUI's editor reads from a
// PNG's "workflow" chunk. Widget values follow the frontend's conventions that graph.ConvertUI
// undoes: seed widgets are followed by their control value ("fixed"), image combos with an
// upload button by the button's value, and optional widgets the prompt leaves out take their
// defaults. Nodes are laid out in columns by dependency depth. Node ids that are not decimal
// integers (subgraph ids such as "57:3") get fresh integer ids. Every class_type must be in reg.
func UIWorkflow(prompt *ojson.Object, reg *nodes.Registry) (*ojson.Object, error) {
	ids := prompt.Keys()
	uiID := map[string]int{}
	maxID := 0
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil && n > 0 && strconv.Itoa(n) == id {
			uiID[id] = n
			maxID = max(maxID, n)
		}
	}
	for _, id := range ids {
		if _, ok := uiID[id]; !ok {
			maxID++
			uiID[id] = maxID
		}
	}

	type apiNode struct {
		id     string
		class  string
		title  string
		inputs *ojson.Object
		schema *nodes.Schema
	}
	byID := map[string]*apiNode{}
	for _, id := range ids {
		v, _ := prompt.Get(id)
		obj, ok := v.(*ojson.Object)
		if !ok {
			return nil, fmt.Errorf("ui workflow: node %s is not an object", id)
		}
		cv, _ := obj.Get("class_type")
		class, _ := cv.(string)
		node, ok := reg.Get(class)
		if !ok {
			return nil, fmt.Errorf("ui workflow: node %s: unknown class_type %q", id, class)
		}
		n := &apiNode{id: id, class: class, schema: node.Schema()}
		if iv, ok := obj.Get("inputs"); ok {
			n.inputs, _ = iv.(*ojson.Object)
		}
		if n.inputs == nil {
			n.inputs = ojson.NewObject()
		}
		if mv, ok := obj.Get("_meta"); ok {
			if m, ok := mv.(*ojson.Object); ok {
				if t, ok := m.Get("title"); ok {
					n.title, _ = t.(string)
				}
			}
		}
		byID[id] = n
	}

	// Links, numbered in prompt order of their targets.
	type link struct {
		id        int
		from      string
		fromSlot  int
		to        string
		toSlot    int
		typ       string
		inputName string
	}
	var links []link
	outLinks := map[string]map[int][]int{}
	inLink := map[string]map[string]int{}
	depth := map[string]int{}
	for _, id := range ids {
		n := byID[id]
		for _, name := range n.inputs.Keys() {
			v, _ := n.inputs.Get(name)
			arr, ok := v.([]any)
			if !ok || len(arr) != 2 {
				continue
			}
			from, ok1 := arr[0].(string)
			slotNum, ok2 := arr[1].(json.Number)
			src, ok3 := byID[from]
			if !ok1 || !ok2 || !ok3 {
				return nil, fmt.Errorf("ui workflow: node %s input %s: bad link %v", id, name, arr)
			}
			s, err := strconv.Atoi(string(slotNum))
			if err != nil || s < 0 || s >= len(src.schema.Outputs) {
				return nil, fmt.Errorf("ui workflow: node %s input %s: no output slot %v on node %s", id, name, slotNum, from)
			}
			l := link{id: len(links) + 1, from: from, fromSlot: s, to: id, typ: src.schema.Outputs[s].Type, inputName: name}
			links = append(links, l)
			if outLinks[from] == nil {
				outLinks[from] = map[int][]int{}
			}
			outLinks[from][s] = append(outLinks[from][s], l.id)
			if inLink[id] == nil {
				inLink[id] = map[string]int{}
			}
			inLink[id][name] = l.id
		}
	}
	// Depth = longest chain of producers (bounded: a cycle stops at len(ids)).
	var visit func(id string, guard int) int
	visit = func(id string, guard int) int {
		if d, ok := depth[id]; ok || guard > len(ids) {
			return d
		}
		d := 0
		for _, l := range links {
			if l.to == id {
				d = max(d, visit(l.from, guard+1)+1)
			}
		}
		depth[id] = d
		return d
	}
	for _, id := range ids {
		visit(id, 0)
	}
	order := slices.Clone(ids)
	slices.SortStableFunc(order, func(a, b string) int { return depth[a] - depth[b] })

	columnY := map[int]int{}
	var uiNodes []any
	for i, id := range order {
		n := byID[id]
		var inputs []any
		var widgets []any
		widgetCount := 0
		for idx := range n.schema.Inputs {
			spec := &n.schema.Inputs[idx]
			v, present := n.inputs.Get(spec.Name)
			lid, linked := inLink[id][spec.Name]
			if spec.IsWidget() {
				widgetCount++
				val := any(nil)
				switch {
				case present && !linked:
					val = unwrapList(v)
				default:
					val = defaultValue(spec)
				}
				widgets = append(widgets, val)
				if spec.ControlAfterGenerate != nil || spec.Name == "seed" || spec.Name == "noise_seed" {
					widgets = append(widgets, "fixed")
				}
				if spec.HasUpload() {
					widgets = append(widgets, "image")
				}
				if linked {
					inputs = append(inputs, ojson.NewObject().Set("name", spec.Name).Set("type", inputType(spec)).
						Set("widget", ojson.NewObject().Set("name", spec.Name)).Set("link", json.Number(strconv.Itoa(lid))))
				}
				continue
			}
			in := ojson.NewObject().Set("name", spec.Name).Set("type", spec.Type)
			if linked {
				in.Set("link", json.Number(strconv.Itoa(lid)))
			} else if spec.Optional {
				continue
			} else {
				in.Set("link", nil)
			}
			inputs = append(inputs, in)
		}
		for j, in := range inputs {
			if lv, ok := in.(*ojson.Object).Get("link"); ok && lv != nil {
				if lid, err := strconv.Atoi(string(lv.(json.Number))); err == nil && lid >= 1 && lid <= len(links) {
					links[lid-1].toSlot = j
				}
			}
		}
		var outputs []any
		for s, out := range n.schema.Outputs {
			name := out.Name
			if name == "" {
				name = out.Type
			}
			var ls any
			if lids := outLinks[id][s]; len(lids) > 0 {
				arr := make([]any, len(lids))
				for k, l := range lids {
					arr[k] = json.Number(strconv.Itoa(l))
				}
				ls = arr
			}
			outputs = append(outputs, ojson.NewObject().Set("name", name).Set("type", out.Type).Set("links", ls).
				Set("slot_index", json.Number(strconv.Itoa(s))))
		}
		col := depth[id]
		y := columnY[col]
		height := 46 + 24*(len(inputs)+widgetCount)
		columnY[col] = y + height + 40
		node := ojson.NewObject().
			Set("id", json.Number(strconv.Itoa(uiID[id]))).
			Set("type", n.class).
			Set("pos", []any{json.Number(strconv.Itoa(40 + col*360)), json.Number(strconv.Itoa(40 + y))}).
			Set("size", []any{json.Number("320"), json.Number(strconv.Itoa(height))}).
			Set("flags", ojson.NewObject()).
			Set("order", json.Number(strconv.Itoa(i))).
			Set("mode", json.Number("0")).
			Set("inputs", orEmpty(inputs)).
			Set("outputs", orEmpty(outputs)).
			Set("properties", ojson.NewObject().Set("Node name for S&R", n.class)).
			Set("widgets_values", orEmpty(widgets))
		display := n.schema.DisplayName
		if display == "" {
			display = n.class
		}
		if n.title != "" && n.title != display {
			node.Set("title", n.title)
		}
		uiNodes = append(uiNodes, node)
	}
	var uiLinks []any
	for _, l := range links {
		uiLinks = append(uiLinks, []any{json.Number(strconv.Itoa(l.id)), json.Number(strconv.Itoa(uiID[l.from])),
			json.Number(strconv.Itoa(l.fromSlot)), json.Number(strconv.Itoa(uiID[l.to])), json.Number(strconv.Itoa(l.toSlot)), l.typ})
	}
	return ojson.NewObject().
		Set("last_node_id", json.Number(strconv.Itoa(maxID))).
		Set("last_link_id", json.Number(strconv.Itoa(len(links)))).
		Set("nodes", orEmpty(uiNodes)).
		Set("links", orEmpty(uiLinks)).
		Set("groups", []any{}).
		Set("config", ojson.NewObject()).
		Set("extra", ojson.NewObject()).
		Set("version", json.Number("0.4")), nil
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// inputType is the UI type of a widget input that is connected by a link.
func inputType(spec *nodes.InputSpec) string {
	if spec.Type == nodes.TypeCombo {
		return "COMBO"
	}
	return spec.Type
}

// unwrapList turns the API's {"__value__": [...]} back into the literal list.
func unwrapList(v any) any {
	if o, ok := v.(*ojson.Object); ok && o.Len() == 1 {
		if inner, ok := o.Get("__value__"); ok {
			return inner
		}
	}
	return v
}

// defaultValue is the value the editor shows for a widget that the prompt does not set.
func defaultValue(spec *nodes.InputSpec) any {
	switch d := spec.Default.(type) {
	case int64:
		return json.Number(strconv.FormatInt(d, 10))
	case uint64:
		return json.Number(strconv.FormatUint(d, 10))
	case float64:
		return json.Number(ojson.FormatFloat(d))
	case string, bool:
		return d
	}
	switch spec.Type {
	case nodes.TypeInt, nodes.TypeFloat:
		return json.Number("0")
	case nodes.TypeBoolean:
		return false
	case nodes.TypeCombo:
		if len(spec.Options) > 0 {
			return spec.Options[0]
		}
	}
	return ""
}
