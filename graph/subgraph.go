package graph

// Subgraphs of UI-format workflows, flattened the way the frontend's graphToPrompt does
// (ComfyUI_frontend: ExecutableNodeDTO, SubgraphNode.getInnerNodes):
//
//   - A subgraph definition lives in definitions.subgraphs[] with its own nodes and object-form
//     links; links from its input node (id -10) carry the instance's input slot as origin_slot,
//     links to its output node (id -20) carry the instance's output slot as target_slot.
//   - A node whose type is a definition id is an instance. Its inner nodes are emitted with ids
//     "<instance id>:<inner id>", nested instances giving longer paths ("65:70:63").
//   - An inner input linked from the input node resolves through the instance's input in the
//     enclosing graph; when that input is unconnected it takes the value of the instance's
//     promoted widget for it: the instance's own widgets_values entry when it has one, else the
//     value of the first inner widget that the subgraph input feeds.
//   - An input linked from an instance's output resolves inside the definition to the real
//     producer. A bypassed instance passes a same-typed input through like any bypassed node;
//     a muted or bypassed instance emits none of its inner nodes.
//
// Where the frontend (v1.4x) fails or is inconsistent we do what it intends: an instance muted
// or bypassed inside another subgraph also drops its inner nodes (the frontend only checks
// top-level instances); a subgraph input wired straight to an output resolves to the outside
// producer (the frontend throws "No inner node DTO found"). Dangling link ids, unknown
// definitions, definitions containing themselves and link cycles are parse errors.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

const (
	// maxFlatNodes bounds the API nodes that subgraph expansion may produce.
	maxFlatNodes = 100000
	// maxResolveDepth bounds the hops of one link resolution (reroutes, bypasses, boundaries).
	maxResolveDepth = 10000
	// Default ids of a definition's input and output nodes.
	subgraphInputNodeID  = "-10"
	subgraphOutputNodeID = "-20"
)

// uuidPattern matches the ids the frontend gives subgraph definitions.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// uiGraph is one graph of a UI workflow: the root graph or a subgraph definition.
type uiGraph struct {
	id    string // definition id; "" for the root graph
	name  string
	links map[string]uiLink
	nodes map[string]*uiNode
	order []string // node ids, sorted
	// Subgraph definitions only.
	inputs       []subgraphSlot
	outputs      []subgraphSlot
	inputNodeID  string
	outputNodeID string
}

type subgraphSlot struct {
	name    string
	typ     string
	linkIDs []string
}

func (g *uiGraph) label() string {
	if g.id == "" {
		return "UI workflow"
	}
	return fmt.Sprintf("UI workflow: subgraph %q (%s)", g.name, g.id)
}

// definitions are the subgraph definitions of a workflow by id, in file order.
type definitions struct {
	byID map[string]*uiGraph
	list []*uiGraph
}

// parseUIGraph reads the nodes and links of a graph object (the workflow or a definition).
func parseUIGraph(obj *ojson.Object, where string, def *uiGraph) (*uiGraph, error) {
	g := def
	if g == nil {
		g = &uiGraph{}
	}
	links, err := parseUILinks(obj, where)
	if err != nil {
		return nil, err
	}
	g.links = links
	g.nodes = map[string]*uiNode{}
	rawNodes, _ := obj.Get("nodes")
	list, ok := rawNodes.([]any)
	if !ok {
		return nil, parseErrorf("%s: \"nodes\" must be an array", where)
	}
	for i, rn := range list {
		nobj, ok := rn.(*ojson.Object)
		if !ok {
			return nil, parseErrorf("%s: nodes[%d] must be an object", where, i)
		}
		n, err := parseUINode(nobj)
		if err != nil {
			return nil, parseErrorf("%s: nodes[%d]: %v", where, i, err)
		}
		if _, dup := g.nodes[n.id]; dup {
			return nil, parseErrorf("%s: duplicate node id %s", where, n.id)
		}
		g.nodes[n.id] = n
		g.order = append(g.order, n.id)
	}
	sortIDs(g.order)
	return g, nil
}

// parseDefinitions reads definitions.subgraphs[] of the workflow. Definitions nested inside
// a definition's own "definitions" (some exports carry copies there) are read too; a nested
// copy of an id already known is ignored.
func parseDefinitions(doc *ojson.Object) (*definitions, error) {
	defs := &definitions{byID: map[string]*uiGraph{}}
	type pending struct {
		obj   *ojson.Object
		where string
		depth int
	}
	queue := []pending{{doc, "UI workflow", 0}}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		dv, ok := p.obj.Get("definitions")
		if !ok || dv == nil {
			continue
		}
		if p.depth > 32 {
			return nil, parseErrorf("%s: definitions are nested more than 32 levels deep", p.where)
		}
		dobj, ok := dv.(*ojson.Object)
		if !ok {
			return nil, parseErrorf("%s: \"definitions\" must be an object", p.where)
		}
		sv, ok := dobj.Get("subgraphs")
		if !ok || sv == nil {
			continue
		}
		list, ok := sv.([]any)
		if !ok {
			return nil, parseErrorf("%s: \"definitions.subgraphs\" must be an array", p.where)
		}
		for i, rs := range list {
			sobj, ok := rs.(*ojson.Object)
			if !ok {
				return nil, parseErrorf("%s: definitions.subgraphs[%d] must be an object", p.where, i)
			}
			idv, _ := sobj.Get("id")
			id, ok := idv.(string)
			if !ok || id == "" {
				return nil, parseErrorf("%s: definitions.subgraphs[%d] has no string \"id\"", p.where, i)
			}
			if _, dup := defs.byID[id]; dup {
				if p.depth > 0 {
					continue
				}
				return nil, parseErrorf("%s: subgraph definition %s appears twice in definitions.subgraphs", p.where, id)
			}
			nv, _ := sobj.Get("name")
			name, _ := nv.(string)
			g := &uiGraph{id: id, name: name, inputNodeID: subgraphInputNodeID, outputNodeID: subgraphOutputNodeID}
			if err := parseSubgraphIO(sobj, g); err != nil {
				return nil, err
			}
			if _, err := parseUIGraph(sobj, g.label(), g); err != nil {
				return nil, err
			}
			defs.byID[id] = g
			defs.list = append(defs.list, g)
			queue = append(queue, pending{sobj, g.label(), p.depth + 1})
		}
	}
	return defs, nil
}

// parseSubgraphIO reads a definition's inputs, outputs and the ids of its input/output nodes.
func parseSubgraphIO(obj *ojson.Object, g *uiGraph) error {
	for _, io := range []struct {
		key    string
		nodeID *string
		slots  *[]subgraphSlot
	}{{"inputs", &g.inputNodeID, &g.inputs}, {"outputs", &g.outputNodeID, &g.outputs}} {
		nodeKey := strings.TrimSuffix(io.key, "s") + "Node"
		if nv, ok := obj.Get(nodeKey); ok {
			if no, ok := nv.(*ojson.Object); ok {
				if idv, ok := no.Get("id"); ok {
					id, ok := idString(idv)
					if !ok {
						return parseErrorf("%s: %s.id must be a number", g.label(), nodeKey)
					}
					*io.nodeID = id
				}
			}
		}
		raw, ok := obj.Get(io.key)
		if !ok || raw == nil {
			continue
		}
		list, ok := raw.([]any)
		if !ok {
			return parseErrorf("%s: %q must be an array", g.label(), io.key)
		}
		for i, rs := range list {
			so, ok := rs.(*ojson.Object)
			if !ok {
				return parseErrorf("%s: %s[%d] must be an object", g.label(), io.key, i)
			}
			var slot subgraphSlot
			v, _ := so.Get("name")
			slot.name, _ = v.(string)
			v, _ = so.Get("type")
			slot.typ, _ = v.(string)
			if lv, ok := so.Get("linkIds"); ok && lv != nil {
				ids, ok := lv.([]any)
				if !ok {
					return parseErrorf("%s: %s[%d].linkIds must be an array", g.label(), io.key, i)
				}
				for _, rid := range ids {
					id, ok := idString(rid)
					if !ok {
						return parseErrorf("%s: %s[%d].linkIds must hold link ids", g.label(), io.key, i)
					}
					slot.linkIDs = append(slot.linkIDs, id)
				}
			}
			*io.slots = append(*io.slots, slot)
		}
	}
	return nil
}

// proxyEntry is one entry of an instance's properties.proxyWidgets: a promoted widget, named
// by the inner node id ("-1": the instance's own widget of the subgraph input named widget) and
// widget name, with the inline value of the short-lived 4-element form.
type proxyEntry struct {
	node, widget string
	inline       any
	hasInline    bool
}

// parseProxyWidgets reads properties.proxyWidgets, a list (or its JSON text) of [node id,
// widget name], [node id, widget name, source node id] or [node id, widget name, source node id,
// {"value": v}] entries. Like the frontend, it ignores a malformed property (ok false).
func parseProxyWidgets(v any) (entries []proxyEntry, ok bool) {
	if s, isStr := v.(string); isStr {
		decoded, err := ojson.Decode([]byte(s))
		if err != nil {
			return nil, false
		}
		v = decoded
	}
	list, isList := v.([]any)
	if !isList {
		return nil, false
	}
	for _, e := range list {
		tuple, isList := e.([]any)
		if !isList || len(tuple) < 2 || len(tuple) > 4 {
			return nil, false
		}
		id, ok1 := idString(tuple[0])
		name, ok2 := tuple[1].(string)
		if !ok1 || !ok2 {
			return nil, false
		}
		entry := proxyEntry{node: id, widget: name}
		if len(tuple) == 4 {
			state, isObj := tuple[3].(*ojson.Object)
			if !isObj {
				return nil, false
			}
			entry.inline, entry.hasInline = state.Get("value")
		}
		entries = append(entries, entry)
	}
	return entries, true
}

// proxyValue is the instance's value for proxyWidgets entries naming inner node nodeID's widget
// (nodeID "-1": the instance's own widget for its input named widget): the inline value, else
// the widgets_values entry at the entry's position; null carries no value.
func proxyValue(inst *uiNode, nodeID, widget string) (any, bool) {
	values, _ := inst.widgets.([]any)
	for i, p := range inst.proxyWidgets {
		if p.node != nodeID || p.widget != widget {
			continue
		}
		if p.hasInline && p.inline != nil {
			return p.inline, true
		}
		if i < len(values) && values[i] != nil {
			return values[i], true
		}
	}
	return nil, false
}

// bindInstances links the instance nodes of g to their definitions and rejects node types
// that name a definition the workflow does not contain.
func (c *uiConverter) bindInstances(g *uiGraph, where string) error {
	for _, id := range g.order {
		n := g.nodes[id]
		if d, ok := c.defs.byID[n.typ]; ok {
			n.def = d
			continue
		}
		if _, known := c.reg.Get(n.typ); !known && uuidPattern.MatchString(n.typ) {
			return parseErrorf("%s: node %s is an instance of subgraph %s, which is not in definitions.subgraphs; save the workflow again from the editor so that it includes the subgraph", where, n.id, n.typ)
		}
	}
	return nil
}

// checkDefinitionCycles rejects definitions that contain themselves, directly or nested.
func checkDefinitionCycles(defs *definitions) error {
	const (
		unvisited = iota
		active
		done
	)
	state := map[*uiGraph]int{}
	var stack []*uiGraph
	var visit func(g *uiGraph) error
	visit = func(g *uiGraph) error {
		switch state[g] {
		case active:
			var names []string
			start := 0
			for i, s := range stack {
				if s == g {
					start = i
				}
			}
			for _, s := range stack[start:] {
				names = append(names, fmt.Sprintf("%q (%s)", s.name, s.id))
			}
			names = append(names, fmt.Sprintf("%q", g.name))
			return parseErrorf("UI workflow: subgraph definitions contain each other in a cycle: %s; a subgraph cannot contain itself, remove the inner instance in the editor", strings.Join(names, " contains "))
		case done:
			return nil
		}
		state[g] = active
		stack = append(stack, g)
		for _, id := range g.order {
			if d := g.nodes[id].def; d != nil {
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[g] = done
		return nil
	}
	for _, d := range defs.list {
		if err := visit(d); err != nil {
			return err
		}
	}
	return nil
}

// checkFlatSize refuses workflows whose subgraph expansion would exceed maxFlatNodes, before
// any expansion work (definitions nesting many instances of each other grow exponentially).
func checkFlatSize(root *uiGraph) error {
	memo := map[*uiGraph]int{}
	var size func(g *uiGraph) int
	size = func(g *uiGraph) int {
		if n, ok := memo[g]; ok {
			return n
		}
		n := 0
		for _, id := range g.order {
			if d := g.nodes[id].def; d != nil {
				n += size(d)
			} else {
				n++
			}
			if n > maxFlatNodes {
				n = maxFlatNodes + 1
				break
			}
		}
		memo[g] = n
		return n
	}
	if size(root) > maxFlatNodes {
		return parseErrorf("UI workflow: more than %d nodes after expanding subgraphs; the subgraph nesting is too deep or wide to run", maxFlatNodes)
	}
	return nil
}

// scope is a graph as instantiated at one place: the root, or a definition inside instance
// inst of the enclosing scope parent.
type scope struct {
	g      *uiGraph
	prefix string // execution id prefix: "" at the root, "57:" inside instance 57
	inst   *uiNode
	parent *scope
}

func (s *scope) child(inst *uiNode) *scope {
	return &scope{g: inst.def, prefix: s.prefix + inst.id + ":", inst: inst, parent: s}
}

type resolutionKind int

const (
	resNone    resolutionKind = iota // nothing connected: the input keeps its widget value, if any
	resLink                          // the real producer's output
	resValue                         // a literal (primitive node, promoted widget)
	resDropped                       // the producer is muted: the input is removed
)

type resolution struct {
	kind  resolutionKind
	id    string
	slot  int
	value any
}

type uiConverter struct {
	reg  *nodes.Registry
	defs *definitions
	// feeds memoizes inputFeedsWidget per definition input: 1 yes, -1 no, 0 not yet known.
	feeds map[*uiGraph][]int8
}

func tooDeep(s *scope, n *uiNode) error {
	return parseErrorf("%s: resolving the links of node %s%s does not end (reroutes, bypassed nodes or subgraph links form a cycle); remove the cycle in the editor", s.g.label(), s.prefix, n.id)
}

// resolveInput follows input slot of node n (in scope s) to its real producer.
func (c *uiConverter) resolveInput(s *scope, n *uiNode, slot, depth int) (resolution, error) {
	return c.resolveInputAs(s, n, slot, nil, depth)
}

// resolveInputAs is resolveInput with the consumer's type carried through a reroute (typ; nil
// for the input's own type), which decides what a bypassed producer passes through.
func (c *uiConverter) resolveInputAs(s *scope, n *uiNode, slot int, typ *string, depth int) (resolution, error) {
	if depth > maxResolveDepth {
		return resolution{}, tooDeep(s, n)
	}
	if slot < 0 || slot >= len(n.inputs) || n.inputs[slot].link == "" {
		return resolution{}, nil
	}
	in := n.inputs[slot]
	if typ == nil {
		typ = &in.typ
	}
	l, ok := s.g.links[in.link]
	if !ok {
		return resolution{}, parseErrorf("%s: node %s input %q uses link %s, which is not in the links list; reconnect the input in the editor and save again", s.g.label(), n.id, in.name, in.link)
	}
	if s.inst != nil && l.originID == s.g.inputNodeID {
		return c.resolveSubgraphInput(s, l.originSlot, depth+1)
	}
	origin, ok := s.g.nodes[l.originID]
	if !ok {
		return resolution{}, parseErrorf("%s: link %s into node %s input %q comes from node %s, which does not exist; reconnect the input in the editor and save again", s.g.label(), in.link, n.id, in.name, l.originID)
	}
	return c.resolveOutput(s, origin, l.originSlot, *typ, depth+1)
}

// resolveOutput resolves output slot of node o (in scope s), consumed as type typ.
func (c *uiConverter) resolveOutput(s *scope, o *uiNode, slot int, typ string, depth int) (resolution, error) {
	if depth > maxResolveDepth {
		return resolution{}, tooDeep(s, o)
	}
	if o.mode == modeBypass {
		idx := bypassSlot(o, slot, typ)
		if idx < 0 {
			return resolution{}, nil
		}
		return c.resolveInput(s, o, idx, depth+1)
	}
	if o.def != nil {
		if o.mode == modeNever {
			return resolution{kind: resDropped}, nil
		}
		def := o.def
		if slot < 0 || slot >= len(def.outputs) {
			return resolution{}, parseErrorf("%s: a link uses output %d of node %s, but subgraph %q has %d outputs; reconnect it in the editor", s.g.label(), slot, o.id, def.name, len(def.outputs))
		}
		linkID, ok := def.outputLink(slot)
		if !ok {
			return resolution{}, nil
		}
		l, ok := def.links[linkID]
		if !ok {
			return resolution{}, parseErrorf("%s: output %q uses link %s, which is not in the links list; reconnect the output in the editor", def.label(), def.outputs[slot].name, linkID)
		}
		inner := s.child(o)
		if l.originID == def.inputNodeID {
			return c.resolveSubgraphInput(inner, l.originSlot, depth+1)
		}
		producer, ok := def.nodes[l.originID]
		if !ok {
			return resolution{}, parseErrorf("%s: output %q comes from node %s, which does not exist; reconnect the output in the editor", def.label(), def.outputs[slot].name, l.originID)
		}
		return c.resolveOutput(inner, producer, l.originSlot, typ, depth+1)
	}
	switch {
	case o.typ == "Reroute":
		return c.resolveInputAs(s, o, slot, &typ, depth+1)
	case o.typ == "PrimitiveNode":
		if vals, ok := o.widgets.([]any); ok && len(vals) > 0 {
			return resolution{kind: resValue, value: vals[0]}, nil
		}
		return resolution{}, nil
	case o.mode == modeNever:
		return resolution{kind: resDropped}, nil
	case virtualTypes[o.typ]:
		return resolution{}, nil
	}
	return resolution{kind: resLink, id: s.prefix + o.id, slot: slot}, nil
}

// resolveSubgraphInput resolves input slot idx of the instance that scope s is inside.
func (c *uiConverter) resolveSubgraphInput(s *scope, idx, depth int) (resolution, error) {
	if idx < 0 || idx >= len(s.g.inputs) {
		return resolution{}, parseErrorf("%s: a link comes from input slot %d, but the subgraph has %d inputs; reconnect it in the editor", s.g.label(), idx, len(s.g.inputs))
	}
	if idx < len(s.inst.inputs) && s.inst.inputs[idx].link != "" {
		return c.resolveInput(s.parent, s.inst, idx, depth+1)
	}
	v, ok, err := c.promotedValue(s, idx, depth+1)
	if err != nil || !ok {
		return resolution{}, err
	}
	return resolution{kind: resValue, value: v}, nil
}

// promotedValue is the value of the widget that instance s.inst shows for its unconnected
// input idx: the instance's own value when it has one, else the value of the first inner widget
// the subgraph input feeds.
func (c *uiConverter) promotedValue(s *scope, idx, depth int) (any, bool, error) {
	if depth > maxResolveDepth {
		return nil, false, tooDeep(s.parent, s.inst)
	}
	if v, ok := c.instanceWidgetValue(s, idx); ok {
		return v, true, nil
	}
	for _, linkID := range s.g.inputLinks(idx) {
		l, ok := s.g.links[linkID]
		if !ok || !c.feedsWidget(s.g, l) {
			continue
		}
		target := s.g.nodes[l.targetID]
		if target.def != nil {
			v, ok, err := c.promotedValue(s.child(target), l.targetSlot, depth+1)
			if err != nil || ok {
				return v, ok, err
			}
			continue
		}
		if v, ok := c.widgetValue(s, target, target.inputs[l.targetSlot].widgetName); ok {
			return v, true, nil
		}
	}
	return nil, false, nil
}

// instanceWidgetValue reads the instance's own value for the widget promoted from its input
// idx. Files with (legacy) properties.proxyWidgets keep it at the position of the ["-1", input
// name] entry or of an entry naming an inner widget the input feeds; otherwise widgets_values
// holds one value per subgraph input that feeds an inner widget, in input order (inputs that
// only carry links own no entry). An object-form widgets_values is keyed by input name.
func (c *uiConverter) instanceWidgetValue(s *scope, idx int) (any, bool) {
	inst, name := s.inst, s.g.inputs[idx].name
	if obj, ok := inst.widgets.(*ojson.Object); ok {
		v, ok := obj.Get(name)
		return v, ok && v != nil
	}
	if inst.hasProxies {
		if v, ok := proxyValue(inst, "-1", name); ok {
			return v, true
		}
		// A legacy entry naming an inner widget that this input feeds holds the host value
		// too (the frontend's migration folds it into the input).
		for _, linkID := range s.g.inputLinks(idx) {
			l, ok := s.g.links[linkID]
			if !ok {
				continue
			}
			if target, ok := s.g.nodes[l.targetID]; ok && target.def == nil && l.targetSlot >= 0 && l.targetSlot < len(target.inputs) && target.inputs[l.targetSlot].widget {
				if v, ok := proxyValue(inst, target.id, target.inputs[l.targetSlot].widgetName); ok {
					return v, true
				}
			}
		}
		return nil, false
	}
	if !c.inputFeedsWidget(s.g, idx) {
		return nil, false
	}
	k := 0
	for j := 0; j < idx; j++ {
		if c.inputFeedsWidget(s.g, j) {
			k++
		}
	}
	values, _ := inst.widgets.([]any)
	if k < len(values) && values[k] != nil {
		return values[k], true
	}
	return nil, false
}

// inputFeedsWidget reports whether input idx of definition g is linked to an inner widget
// (directly, or through a nested instance's input), i.e. whether instances show a widget for it.
func (c *uiConverter) inputFeedsWidget(g *uiGraph, idx int) bool {
	if idx < 0 || idx >= len(g.inputs) {
		return false
	}
	if memo, ok := c.feeds[g]; ok && memo[idx] != 0 {
		return memo[idx] > 0
	}
	result := false
	for _, linkID := range g.inputLinks(idx) {
		if l, ok := g.links[linkID]; ok && c.feedsWidget(g, l) {
			result = true
			break
		}
	}
	if c.feeds == nil {
		c.feeds = map[*uiGraph][]int8{}
	}
	if c.feeds[g] == nil {
		c.feeds[g] = make([]int8, len(g.inputs))
	}
	c.feeds[g][idx] = -1
	if result {
		c.feeds[g][idx] = 1
	}
	return result
}

// feedsWidget reports whether link l of definition g ends at a widget input.
func (c *uiConverter) feedsWidget(g *uiGraph, l uiLink) bool {
	target, ok := g.nodes[l.targetID]
	if !ok {
		return false
	}
	if target.def != nil {
		return c.inputFeedsWidget(target.def, l.targetSlot)
	}
	return l.targetSlot >= 0 && l.targetSlot < len(target.inputs) && target.inputs[l.targetSlot].widget
}

// nodeWidgets maps the widgets_values of node n (in scope s) to its widget inputs, with the
// values that the enclosing instance keeps for the inner widgets it promotes.
func (c *uiConverter) nodeWidgets(s *scope, n *uiNode, schema *nodes.Schema, inputs *ojson.Object) error {
	if err := mapWidgets(n, schema, inputs); err != nil {
		return err
	}
	if s.inst == nil || !s.inst.hasProxies {
		return nil
	}
	for _, p := range s.inst.proxyWidgets {
		spec, ok := schema.Input(p.widget)
		if p.node != n.id || !ok || !spec.IsWidget() {
			continue
		}
		if v, ok := proxyValue(s.inst, n.id, p.widget); ok {
			inputs.Set(p.widget, wrapList(ojson.CloneValue(v)))
		}
	}
	return nil
}

// widgetValue is the value of widget name of node n (in scope s).
func (c *uiConverter) widgetValue(s *scope, n *uiNode, name string) (any, bool) {
	cls, ok := c.reg.Get(n.typ)
	if !ok {
		return nil, false
	}
	inputs := ojson.NewObject()
	if err := c.nodeWidgets(s, n, cls.Schema(), inputs); err != nil {
		return nil, false
	}
	v, ok := inputs.Get(name)
	if ok {
		if obj, isObj := v.(*ojson.Object); isObj {
			if inner, wrapped := obj.Get("__value__"); wrapped && obj.Len() == 1 {
				v = inner // unwrapped here; the consumer wraps it again
			}
		}
	}
	return v, ok
}

// inputLinks are the ids of the links leaving input idx of a definition's input node.
func (g *uiGraph) inputLinks(idx int) []string {
	if ids := g.inputs[idx].linkIDs; len(ids) > 0 {
		return ids
	}
	return g.linksWhere(func(l uiLink) bool { return l.originID == g.inputNodeID && l.originSlot == idx })
}

// outputLink is the link that feeds output idx of a definition's output node (the first one,
// as in the frontend).
func (g *uiGraph) outputLink(idx int) (string, bool) {
	if ids := g.outputs[idx].linkIDs; len(ids) > 0 {
		return ids[0], true
	}
	ids := g.linksWhere(func(l uiLink) bool { return l.targetID == g.outputNodeID && l.targetSlot == idx })
	if len(ids) == 0 {
		return "", false
	}
	return ids[0], true
}

func (g *uiGraph) linksWhere(keep func(uiLink) bool) []string {
	var ids []string
	for id, l := range g.links {
		if keep(l) {
			ids = append(ids, id)
		}
	}
	sortIDs(ids)
	return ids
}

// bypassSlot picks the input that bypassed node o passes to its output slot when consumed as
// type typ: the same slot if its type fits, else the first input of exactly that type, else the
// first compatible one; -1 if none.
func bypassSlot(o *uiNode, slot int, typ string) int {
	if typ == "*" || typ == "" {
		if slot < len(o.inputs) {
			return slot
		}
		if len(o.inputs) > 0 {
			return 0
		}
		return -1
	}
	outType := ""
	if o.def != nil {
		if slot >= 0 && slot < len(o.def.outputs) {
			outType = o.def.outputs[slot].typ
		}
	} else if slot >= 0 && slot < len(o.outputs) {
		outType = o.outputs[slot]
	}
	if slot >= 0 && slot < len(o.inputs) && connectable(o.inputs[slot].typ, outType) && connectable(o.inputs[slot].typ, typ) {
		return slot
	}
	for i, in := range o.inputs {
		if in.typ == typ {
			return i
		}
	}
	for i, in := range o.inputs {
		if connectable(in.typ, outType) && connectable(in.typ, typ) {
			return i
		}
	}
	return -1
}

// connectable is litegraph's isValidConnection: empty and "*" match anything; otherwise the
// comma-separated type lists must share a type, case-insensitively.
func connectable(a, b string) bool {
	if a == "" || b == "" || a == "*" || b == "*" || a == b {
		return true
	}
	a, b = strings.ToLower(a), strings.ToLower(b)
	if !strings.Contains(a, ",") && !strings.Contains(b, ",") {
		return a == b
	}
	for _, x := range strings.Split(a, ",") {
		for _, y := range strings.Split(b, ",") {
			if strings.TrimSpace(x) == strings.TrimSpace(y) {
				return true
			}
		}
	}
	return false
}

// linkValue renders a resolved link as the API's [id, slot].
func linkValue(r resolution) []any { return []any{r.id, json.Number(strconv.Itoa(r.slot))} }
