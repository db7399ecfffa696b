// Package graph owns workflow formats and their validation: parsing API-format prompts with
// exact integers and kept key order, converting UI-format workflows (0.4 and 1, subgraphs
// flattened as the frontend does) to API format, validating a prompt against the node schemas
// exactly as ComfyUI's validate_prompt does (same error types and response shape), and the
// dependency DAG (github.com/dominikbraun/graph) with ordering from output nodes and cycle
// detection.
//
// It must not know about tensors, models or HTTP; it reads node schemas from nodes.Registry.
package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// Link is an input connected to output slot Slot of node Node.
type Link struct {
	Node string
	Slot int
}

// Input is one entry of a node's inputs: a link, or a literal JSON value (nil, bool,
// json.Number, string, []any, *ojson.Object). Bad is set when the value had a list shape that is
// not a valid link ([node_id, slot]); validation reports it as bad_linked_input.
type Input struct {
	Name    string
	Link    *Link
	Literal any
	Bad     bool
}

// Node is one node of an API-format prompt.
type Node struct {
	ID        string
	ClassType string
	// HasClassType is false when the node has no class_type key (ComfyUI: missing_node_type).
	HasClassType bool
	Title        string
	HasTitle     bool
	Inputs       []Input
	// Raw is the node's JSON object as received (kept for the PROMPT hidden input and PNGs).
	Raw *ojson.Object
}

// Input returns the named input.
func (n *Node) Input(name string) (*Input, bool) {
	for i := range n.Inputs {
		if n.Inputs[i].Name == name {
			return &n.Inputs[i], true
		}
	}
	return nil, false
}

// Workflow is an API-format prompt: nodes by id, in the order of the JSON.
type Workflow struct {
	Order []string
	Nodes map[string]*Node
	// Prompt is the prompt object as received; validation writes converted literals back into
	// it as ComfyUI does.
	Prompt *ojson.Object
}

// ParseError says why a workflow could not be read at all (not a validation failure).
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return e.Msg }

func parseErrorf(format string, args ...any) error {
	return &ParseError{Msg: fmt.Sprintf(format, args...)}
}

// IsParseError reports whether err says the input was not a readable workflow.
func IsParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}

// ParseAPI parses an API-format prompt.
func ParseAPI(data []byte) (*Workflow, error) {
	v, err := ojson.Decode(data)
	if err != nil {
		return nil, parseErrorf("workflow: %v", err)
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		return nil, parseErrorf("workflow: expected a JSON object of nodes keyed by id, got %s", ojson.Kind(v))
	}
	return FromPrompt(obj)
}

// FromPrompt builds a Workflow from a decoded API-format prompt object. The object is kept
// (not copied) as Workflow.Prompt.
func FromPrompt(obj *ojson.Object) (*Workflow, error) {
	wf := &Workflow{Nodes: map[string]*Node{}, Prompt: obj}
	for _, id := range obj.Keys() {
		raw, _ := obj.Get(id)
		nobj, ok := raw.(*ojson.Object)
		if !ok {
			return nil, parseErrorf("workflow: node %q must be an object with class_type and inputs, got %s", id, ojson.Kind(raw))
		}
		n := &Node{ID: id, Raw: nobj}
		if ct, ok := nobj.Get("class_type"); ok {
			s, isStr := ct.(string)
			if !isStr {
				return nil, parseErrorf("workflow: node %q: class_type must be a string, got %s", id, ojson.Kind(ct))
			}
			n.ClassType, n.HasClassType = s, true
		}
		if meta, ok := nobj.Get("_meta"); ok {
			if mobj, ok := meta.(*ojson.Object); ok {
				if t, ok := mobj.Get("title"); ok {
					if s, ok := t.(string); ok {
						n.Title, n.HasTitle = s, true
					}
				}
			}
		}
		if rawIn, ok := nobj.Get("inputs"); ok && rawIn != nil {
			inObj, ok := rawIn.(*ojson.Object)
			if !ok {
				return nil, parseErrorf("workflow: node %q: inputs must be an object, got %s", id, ojson.Kind(rawIn))
			}
			for _, name := range inObj.Keys() {
				val, _ := inObj.Get(name)
				n.Inputs = append(n.Inputs, classifyInput(name, val))
			}
		}
		wf.Order = append(wf.Order, id)
		wf.Nodes[id] = n
	}
	return wf, nil
}

// classifyInput applies ComfyUI's rule: a link is exactly [string, number]; any other list is a
// bad link; {"__value__": v} wraps a literal list.
func classifyInput(name string, val any) Input {
	if arr, ok := val.([]any); ok {
		if len(arr) == 2 {
			if id, ok := arr[0].(string); ok {
				if slot, ok := slotIndex(arr[1]); ok {
					return Input{Name: name, Link: &Link{Node: id, Slot: slot}}
				}
			}
		}
		return Input{Name: name, Literal: val, Bad: true}
	}
	return Input{Name: name, Literal: val}
}

// slotIndex accepts an integer-valued JSON number (1 or 1.0) in a sane range.
func slotIndex(v any) (int, bool) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := num.Float64()
	if err != nil || f != math.Trunc(f) || f < 0 || f > 1<<20 {
		return 0, false
	}
	return int(f), true
}

// DisplayTitle is the node's title for messages: _meta.title, else the class type.
func (n *Node) DisplayTitle() string {
	if n.HasTitle && n.Title != "" {
		return n.Title
	}
	return n.ClassType
}

// IsUIFormat reports whether a decoded JSON document looks like a UI-format workflow (it has a
// "nodes" array and "links" or a version field).
func IsUIFormat(obj *ojson.Object) bool {
	nodesV, ok := obj.Get("nodes")
	if !ok {
		return false
	}
	if _, ok := nodesV.([]any); !ok {
		return false
	}
	_, hasLinks := obj.Get("links")
	_, hasVersion := obj.Get("version")
	return hasLinks || hasVersion
}

// formatLiteral renders a literal for messages the way Python's str() would, roughly.
func formatLiteral(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case string:
		return t
	case json.Number:
		return string(t)
	case float64:
		return ojson.FormatFloat(t)
	}
	b, err := ojson.MarshalPython(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(b))
}
