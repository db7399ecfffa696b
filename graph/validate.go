package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// ErrorInfo is one ComfyUI validation error: {type, message, details, extra_info}.
type ErrorInfo struct {
	Type      string
	Message   string
	Details   string
	ExtraInfo *ojson.Object
}

// JSON renders the error object.
func (e *ErrorInfo) JSON() *ojson.Object {
	extra := e.ExtraInfo
	if extra == nil {
		extra = ojson.NewObject()
	}
	return ojson.NewObject().Set("type", e.Type).Set("message", e.Message).Set("details", e.Details).Set("extra_info", extra)
}

// NodeErrors is the node_errors entry of one node.
type NodeErrors struct {
	Errors           []*ErrorInfo
	DependentOutputs []string
	ClassType        string
}

// Result is the outcome of Validate.
type Result struct {
	// Error is set when the prompt as a whole is rejected (HTTP 400 in the server).
	Error *ErrorInfo
	// Outputs are the output nodes that validated (outputs_to_execute), sorted.
	Outputs []string
	// NodeErrors has an entry for every node with errors of its own.
	NodeErrors map[string]*NodeErrors
	// Values holds, per validated node, its converted literal inputs and hidden-free values.
	Values map[string]*nodes.Inputs
}

// OK reports whether at least one output validated.
func (r *Result) OK() bool { return r.Error == nil }

// NodeErrorsJSON renders node_errors with ids in prompt order.
func (r *Result) NodeErrorsJSON(order []string) *ojson.Object {
	out := ojson.NewObject()
	ids := make([]string, 0, len(r.NodeErrors))
	seen := map[string]bool{}
	for _, id := range order {
		if _, ok := r.NodeErrors[id]; ok {
			ids = append(ids, id)
			seen[id] = true
		}
	}
	var rest []string
	for id := range r.NodeErrors {
		if !seen[id] {
			rest = append(rest, id)
		}
	}
	sortIDs(rest)
	ids = append(ids, rest...)
	for _, id := range ids {
		ne := r.NodeErrors[id]
		errs := make([]any, len(ne.Errors))
		for i, e := range ne.Errors {
			errs[i] = e.JSON()
		}
		deps := make([]any, len(ne.DependentOutputs))
		for i, d := range ne.DependentOutputs {
			deps[i] = d
		}
		out.Set(id, ojson.NewObject().Set("errors", errs).Set("dependent_outputs", deps).Set("class_type", ne.ClassType))
	}
	return out
}

// ErrorResponse is ComfyUI's 400 body: {"error": {...}, "node_errors": {...}}.
func (r *Result) ErrorResponse(order []string) *ojson.Object {
	var errObj any
	if r.Error != nil {
		errObj = r.Error.JSON()
	}
	return ojson.NewObject().Set("error", errObj).Set("node_errors", r.NodeErrorsJSON(order))
}

// validation is the memoised state of one Validate call.
type validation struct {
	wf       *Workflow
	reg      *nodes.Registry
	env      nodes.Env
	done     map[string]*nodeResult
	visiting []string
	values   map[string]*nodes.Inputs
}

type nodeResult struct {
	ok     bool
	errors []*ErrorInfo
}

// Validate checks a prompt like ComfyUI's validate_prompt. partial, when non-nil, restricts the
// outputs to those ids (partial_execution_targets).
func Validate(wf *Workflow, reg *nodes.Registry, env nodes.Env, partial []string) *Result {
	res := &Result{NodeErrors: map[string]*NodeErrors{}, Values: map[string]*nodes.Inputs{}}
	var outputs []string
	for _, id := range wf.Order {
		n := wf.Nodes[id]
		if !n.HasClassType {
			title := any(nil)
			label := "ID #" + id
			if n.HasTitle {
				title = n.Title
				if n.Title != "" {
					label = n.Title
				}
			}
			res.Error = &ErrorInfo{
				Type:      "missing_node_type",
				Message:   fmt.Sprintf("Node '%s' has no class_type. The workflow may be corrupted or a custom node is missing.", label),
				Details:   fmt.Sprintf("Node ID '#%s'", id),
				ExtraInfo: ojson.NewObject().Set("node_id", id).Set("class_type", nil).Set("node_title", title),
			}
			return res
		}
		cls, ok := reg.Get(n.ClassType)
		if !ok {
			title := n.ClassType
			if n.HasTitle {
				title = n.Title
			}
			res.Error = &ErrorInfo{
				Type:      "missing_node_type",
				Message:   fmt.Sprintf("Node '%s' not found. The custom node may not be installed.", title),
				Details:   fmt.Sprintf("Node ID '#%s'", id),
				ExtraInfo: ojson.NewObject().Set("node_id", id).Set("class_type", n.ClassType).Set("node_title", title),
			}
			return res
		}
		if cls.Schema().OutputNode && (partial == nil || contains(partial, id)) {
			outputs = append(outputs, id)
		}
	}
	if len(outputs) == 0 {
		res.Error = &ErrorInfo{Type: "prompt_no_outputs", Message: "Prompt has no outputs", Details: "", ExtraInfo: ojson.NewObject()}
		return res
	}
	sortIDs(outputs)
	v := &validation{wf: wf, reg: reg, env: env, done: map[string]*nodeResult{}, values: res.Values}
	var failedLines []string
	for _, o := range outputs {
		r := v.node(o)
		if r.ok {
			res.Outputs = append(res.Outputs, o)
			continue
		}
		for _, e := range r.errors {
			failedLines = append(failedLines, e.Message+": "+e.Details)
		}
		for _, id := range v.ancestors(o) {
			nr := v.done[id]
			if nr == nil || nr.ok || len(nr.errors) == 0 {
				continue
			}
			ne, ok := res.NodeErrors[id]
			if !ok {
				ne = &NodeErrors{Errors: nr.errors, DependentOutputs: []string{}, ClassType: wf.Nodes[id].ClassType}
				res.NodeErrors[id] = ne
			}
			ne.DependentOutputs = append(ne.DependentOutputs, o)
		}
	}
	if len(res.Outputs) == 0 {
		res.Error = &ErrorInfo{
			Type:      "prompt_outputs_failed_validation",
			Message:   "Prompt outputs failed validation",
			Details:   strings.Join(failedLines, "\n"),
			ExtraInfo: ojson.NewObject(),
		}
	}
	return res
}

// ancestors lists id and every node it reaches through links (validated ones), id first.
func (v *validation) ancestors(id string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(string)
	walk = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		out = append(out, n)
		node := v.wf.Nodes[n]
		if node == nil {
			return
		}
		for _, in := range node.Inputs {
			if in.Link != nil {
				walk(in.Link.Node)
			}
		}
	}
	walk(id)
	return out
}

func (v *validation) node(id string) *nodeResult {
	if r, ok := v.done[id]; ok {
		return r
	}
	if i := indexOf(v.visiting, id); i >= 0 {
		path := append(append([]string(nil), v.visiting[i:]...), id)
		var cycleNodes []string
		for _, n := range path {
			if !contains(cycleNodes, n) {
				cycleNodes = append(cycleNodes, n)
			}
		}
		parts := make([]string, len(path))
		for k, n := range path {
			parts[k] = fmt.Sprintf("%s (%s)", n, v.wf.Nodes[n].ClassType)
		}
		cn := make([]any, len(cycleNodes))
		for k, n := range cycleNodes {
			cn[k] = n
		}
		for _, n := range cycleNodes {
			v.done[n] = &nodeResult{ok: false, errors: []*ErrorInfo{{
				Type:      "dependency_cycle",
				Message:   "Dependency cycle detected",
				Details:   strings.Join(parts, " -> "),
				ExtraInfo: ojson.NewObject().Set("node_id", n).Set("cycle_nodes", cn),
			}}}
		}
		return v.done[id]
	}

	n := v.wf.Nodes[id]
	cls, _ := v.reg.Get(n.ClassType)
	schema := cls.Schema()
	validatedByNode := map[string]bool{}
	custom, hasCustom := cls.(nodes.InputValidator)
	if hasCustom {
		for _, name := range custom.ValidatedInputs() {
			validatedByNode[name] = true
		}
	}
	values := nodes.NewInputs()
	var errs []*ErrorInfo
	valid := true
	for i := range schema.Inputs {
		spec := &schema.Inputs[i]
		in, present := n.Input(spec.Name)
		if !present {
			if !spec.Optional {
				errs = append(errs, &ErrorInfo{Type: "required_input_missing", Message: "Required input is missing",
					Details: spec.Name, ExtraInfo: ojson.NewObject().Set("input_name", spec.Name)})
			}
			continue
		}
		config := func() []any { return spec.InputConfig(v.env, schema.V3) }
		switch {
		case in.Bad:
			errs = append(errs, &ErrorInfo{Type: "bad_linked_input",
				Message: "Bad linked input, must be a length-2 list of [node_id, slot_index]", Details: spec.Name,
				ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).Set("received_value", in.Literal)})
		case in.Link != nil:
			e, ok := v.link(n, spec, in.Link, config)
			if e != nil {
				errs = append(errs, e)
			}
			if !ok {
				valid = false
			}
		default:
			val, e := v.literal(n, spec, in.Literal, config, validatedByNode[spec.Name])
			if e != nil {
				errs = append(errs, e)
				continue
			}
			values.Set(spec.Name, val)
		}
	}
	// Inputs the schema does not declare are ignored, as in ComfyUI.
	if hasCustom && len(errs) == 0 && valid {
		if err := custom.ValidateInputs(values, v.env); err != nil {
			for _, name := range custom.ValidatedInputs() {
				if values.Has(name) {
					errs = append(errs, &ErrorInfo{Type: "custom_validation_failed", Message: "Custom validation failed for node",
						Details: name + " - " + err.Error(), ExtraInfo: ojson.NewObject().Set("input_name", name)})
				}
			}
		}
	}
	prior := v.done[id] // a cycle found below us may already have marked this node
	r := &nodeResult{ok: valid && len(errs) == 0, errors: errs}
	if prior != nil {
		r.ok = r.ok && prior.ok
		r.errors = append(append([]*ErrorInfo(nil), prior.errors...), errs...)
	}
	v.done[id] = r
	if r.ok {
		v.values[id] = values
	}
	return r
}

// link validates a linked input: the producer exists, the slot exists, the types match, and the
// producer itself validates. ok=false without an error means an upstream node failed.
func (v *validation) link(n *Node, spec *nodes.InputSpec, l *Link, config func() []any) (*ErrorInfo, bool) {
	linked := []any{l.Node, l.Slot}
	prod, exists := v.wf.Nodes[l.Node]
	if !exists {
		return &ErrorInfo{Type: "bad_linked_input", Message: "Bad linked input, the linked node does not exist",
			Details:   fmt.Sprintf("%s: node '%s' is not in the prompt", spec.Name, l.Node),
			ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).Set("received_value", linked)}, false
	}
	pcls, _ := v.reg.Get(prod.ClassType)
	outs := pcls.Schema().Outputs
	if l.Slot >= len(outs) {
		return &ErrorInfo{Type: "bad_linked_input", Message: "Bad linked input, the output slot does not exist",
			Details:   fmt.Sprintf("%s: node '%s' (%s) has %d outputs, slot %d requested", spec.Name, l.Node, prod.ClassType, len(outs), l.Slot),
			ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).Set("received_value", linked)}, false
	}
	received := outs[l.Slot].Type
	if !TypesCompatible(received, spec.Type) {
		inputType := any(spec.Type)
		if spec.Type == nodes.TypeCombo {
			inputType = config()[0]
		}
		return &ErrorInfo{Type: "return_type_mismatch", Message: "Return type mismatch between linked nodes",
			Details: fmt.Sprintf("%s, received_type(%s) mismatch input_type(%s)", spec.Name, received, formatLiteral(inputType)),
			ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).
				Set("received_type", received).Set("linked_node", linked)}, false
	}
	v.visiting = append(v.visiting, n.ID)
	r := v.node(l.Node)
	v.visiting = v.visiting[:len(v.visiting)-1]
	return nil, r.ok
}

// TypesCompatible is ComfyUI's validate_node_input (non-strict): equal types, "*" on either
// side, or comma-separated type sets that intersect.
func TypesCompatible(received, input string) bool {
	if received == input || received == nodes.TypeAny || input == nodes.TypeAny {
		return true
	}
	rs, is := splitTypes(received), splitTypes(input)
	for t := range rs {
		if t == nodes.TypeAny || is[t] {
			return true
		}
	}
	return is[nodes.TypeAny]
}

func splitTypes(s string) map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Split(s, ",") {
		m[strings.TrimSpace(t)] = true
	}
	return m
}

// literal converts and range-checks a widget value. The converted value is written back into
// the prompt, as ComfyUI does.
func (v *validation) literal(n *Node, spec *nodes.InputSpec, raw any, config func() []any, skipChecks bool) (any, *ErrorInfo) {
	if obj, ok := raw.(*ojson.Object); ok {
		if inner, ok := obj.Get("__value__"); ok {
			raw = inner
			setPromptInput(n, spec.Name, raw)
		}
	}
	invalid := func(typ string, err error) *ErrorInfo {
		return &ErrorInfo{Type: "invalid_input_type", Message: fmt.Sprintf("Failed to convert an input value to a %s value", typ),
			Details: fmt.Sprintf("%s, %s, %v", spec.Name, formatLiteral(raw), err),
			ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).
				Set("received_value", raw).Set("exception_message", err.Error())}
	}
	var val any
	switch spec.Type {
	case nodes.TypeInt:
		i, err := toInt(raw)
		if err != nil {
			return nil, invalid(spec.Type, err)
		}
		val = i
		setPromptInput(n, spec.Name, json.Number(i.String()))
	case nodes.TypeFloat:
		f, err := toFloat(raw)
		if err != nil {
			return nil, invalid(spec.Type, err)
		}
		val = f
		setPromptInput(n, spec.Name, f)
	case nodes.TypeString:
		s := formatLiteral(raw)
		if num, ok := raw.(json.Number); ok && !isIntText(string(num)) {
			if f, err := strconv.ParseFloat(string(num), 64); err == nil {
				s = ojson.FormatFloat(f)
			}
		}
		val = s
		setPromptInput(n, spec.Name, s)
	case nodes.TypeBoolean:
		b := truthy(raw)
		val = b
		setPromptInput(n, spec.Name, b)
	case nodes.TypeCombo:
		val = raw
	default:
		return nil, &ErrorInfo{Type: "invalid_input_type", Message: fmt.Sprintf("Failed to convert an input value to a %s value", spec.Type),
			Details:   fmt.Sprintf("%s, %s, a %s input must be linked to a node output of that type", spec.Name, formatLiteral(raw), spec.Type),
			ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).Set("received_value", raw).Set("exception_message", "a literal value cannot be a "+spec.Type)}
	}
	if skipChecks {
		return val, nil
	}
	rangeErr := func(typ, word string, bound any) *ErrorInfo {
		return &ErrorInfo{Type: typ, Message: fmt.Sprintf("Value %s %s of %s", formatNumber(val), word, formatNumber(bound)),
			Details: spec.Name, ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", config()).Set("received_value", jsonValue(val))}
	}
	if spec.Min != nil && compare(val, spec.Min) < 0 {
		return nil, rangeErr("value_smaller_than_min", "smaller than min", spec.Min)
	}
	if spec.Max != nil && compare(val, spec.Max) > 0 {
		return nil, rangeErr("value_bigger_than_max", "bigger than max", spec.Max)
	}
	if spec.Type == nodes.TypeCombo {
		options := spec.ComboOptions(v.env)
		s, isStr := raw.(string)
		if !isStr || !contains(options, s) {
			var listInfo string
			cfg := any(config())
			if len(options) > 20 {
				listInfo = fmt.Sprintf("(list of length %d)", len(options))
				cfg = nil
			} else {
				quoted := make([]string, len(options))
				for i, o := range options {
					quoted[i] = pyRepr(o)
				}
				listInfo = "[" + strings.Join(quoted, ", ") + "]"
			}
			shown := formatLiteral(raw)
			if isStr {
				shown = pyRepr(s)
			}
			return nil, &ErrorInfo{Type: "value_not_in_list", Message: "Value not in list",
				Details:   fmt.Sprintf("%s: %s not in %s", spec.Name, shown, listInfo),
				ExtraInfo: ojson.NewObject().Set("input_name", spec.Name).Set("input_config", cfg).Set("received_value", raw)}
		}
	}
	return val, nil
}

// setPromptInput writes a converted literal back into the node's inputs object.
func setPromptInput(n *Node, name string, v any) {
	if n.Raw == nil {
		return
	}
	if inputs, ok := n.Raw.Get("inputs"); ok {
		if obj, ok := inputs.(*ojson.Object); ok {
			obj.Set(name, v)
		}
	}
}

// toInt is Python's int(v) for JSON values: integers exactly, floats truncated, numeric
// strings parsed, booleans 0/1.
func toInt(raw any) (*big.Int, error) {
	switch t := raw.(type) {
	case json.Number:
		s := string(t)
		if isIntText(s) {
			i, ok := new(big.Int).SetString(s, 10)
			if ok {
				return i, nil
			}
		}
		f, _, err := big.ParseFloat(s, 10, 256, big.ToZero)
		if err != nil {
			return nil, fmt.Errorf("invalid literal for int(): '%s'", s)
		}
		i, _ := f.Int(nil)
		return i, nil
	case string:
		s := strings.TrimSpace(t)
		s = strings.TrimPrefix(s, "+")
		if s != "" && isIntText(s) {
			if i, ok := new(big.Int).SetString(s, 10); ok {
				return i, nil
			}
		}
		return nil, fmt.Errorf("invalid literal for int() with base 10: '%s'", t)
	case bool:
		if t {
			return big.NewInt(1), nil
		}
		return big.NewInt(0), nil
	case int:
		return big.NewInt(int64(t)), nil
	case int64:
		return big.NewInt(t), nil
	case uint64:
		return new(big.Int).SetUint64(t), nil
	case float64: // prompts built in Go rather than decoded from JSON
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("cannot convert float %v to integer", t)
		}
		i, _ := big.NewFloat(t).Int(nil)
		return i, nil
	case nil:
		return nil, fmt.Errorf("int() argument must be a string, a bytes-like object or a real number, not 'NoneType'")
	}
	return nil, fmt.Errorf("int() argument must be a string, a bytes-like object or a real number, not '%s'", pyTypeName(raw))
}

// toFloat is Python's float(v); non-finite results are refused (ComfyUI lets NaN through every
// range check, which then breaks samplers).
func toFloat(raw any) (float64, error) {
	var f float64
	switch t := raw.(type) {
	case json.Number:
		var err error
		f, err = strconv.ParseFloat(string(t), 64)
		if err != nil && !math.IsInf(f, 0) {
			return 0, fmt.Errorf("could not convert string to float: '%s'", string(t))
		}
	case string:
		var err error
		f, err = strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, fmt.Errorf("could not convert string to float: '%s'", t)
		}
	case bool:
		if t {
			f = 1
		}
	case float64: // prompts built in Go rather than decoded from JSON
		f = t
	case int:
		f = float64(t)
	case int64:
		f = float64(t)
	case nil:
		return 0, fmt.Errorf("float() argument must be a string or a real number, not 'NoneType'")
	default:
		return 0, fmt.Errorf("float() argument must be a string or a real number, not '%s'", pyTypeName(raw))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("value %v is not a finite number", f)
	}
	return f, nil
}

func isIntText(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// truthy is Python's bool(v).
func truthy(raw any) bool {
	switch t := raw.(type) {
	case nil:
		return false
	case bool:
		return t
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		return err != nil || f != 0
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case *ojson.Object:
		return t.Len() > 0
	}
	return true
}

func pyTypeName(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case *ojson.Object:
		return "dict"
	case string:
		return "str"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

// pyRepr quotes a string like Python's repr (single quotes unless the text has one).
func pyRepr(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	var b strings.Builder
	b.WriteString(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case string(r) == q:
			b.WriteString(`\` + q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(q)
	return b.String()
}

// compare orders a converted value against a bound (int64, uint64 or float64).
func compare(val, bound any) int {
	vb := toBigFloat(val)
	bb := toBigFloat(bound)
	if vb == nil || bb == nil {
		return 0
	}
	return vb.Cmp(bb)
}

func toBigFloat(v any) *big.Float {
	switch t := v.(type) {
	case *big.Int:
		return new(big.Float).SetInt(t)
	case int64:
		return new(big.Float).SetInt64(t)
	case int:
		return new(big.Float).SetInt64(int64(t))
	case uint64:
		return new(big.Float).SetUint64(t)
	case float64:
		if math.IsNaN(t) {
			return nil
		}
		return big.NewFloat(t)
	}
	return nil
}

func formatNumber(v any) string {
	switch t := v.(type) {
	case *big.Int:
		return t.String()
	case float64:
		return ojson.FormatFloat(t)
	}
	return fmt.Sprint(v)
}

// jsonValue turns a converted value into something ojson can write.
func jsonValue(v any) any {
	if i, ok := v.(*big.Int); ok {
		return json.Number(i.String())
	}
	return v
}

func contains(list []string, s string) bool { return indexOf(list, s) >= 0 }

func indexOf(list []string, s string) int {
	for i, e := range list {
		if e == s {
			return i
		}
	}
	return -1
}

// sortIDs orders node ids numerically when both are integers, else as strings.
func sortIDs(ids []string) {
	sort.Slice(ids, func(i, j int) bool { return lessID(ids[i], ids[j]) })
}

func lessID(a, b string) bool {
	ai, aerr := strconv.ParseUint(a, 10, 64)
	bi, berr := strconv.ParseUint(b, 10, 64)
	if aerr == nil && berr == nil {
		return ai < bi
	}
	if (aerr == nil) != (berr == nil) {
		return aerr == nil
	}
	return a < b
}
