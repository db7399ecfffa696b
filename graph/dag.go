package graph

import (
	"errors"
	"fmt"

	dgraph "github.com/dominikbraun/graph"
)

// CycleError reports a dependency cycle among the nodes needed for the outputs.
type CycleError struct {
	Nodes []string
}

func (e *CycleError) Error() string {
	return fmt.Sprintf("dependency cycle among nodes %v", e.Nodes)
}

// ExecutionOrder returns the nodes needed to compute outputs, each after its inputs' producers.
// Among nodes that are ready at the same time the order is stable: by node id (numeric ids in
// numeric order), so runs are reproducible. Links to nodes missing from the workflow are errors.
func ExecutionOrder(wf *Workflow, outputs []string) ([]string, error) {
	g := dgraph.New(dgraph.StringHash, dgraph.Directed(), dgraph.PreventCycles())
	seen := map[string]bool{}
	var stack []string
	for _, o := range outputs {
		if _, ok := wf.Nodes[o]; !ok {
			return nil, fmt.Errorf("output node %q is not in the prompt", o)
		}
		stack = append(stack, o)
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := g.AddVertex(id); err != nil && !errors.Is(err, dgraph.ErrVertexAlreadyExists) {
			return nil, fmt.Errorf("graph: add node %s: %w", id, err)
		}
		for _, in := range wf.Nodes[id].Inputs {
			if in.Link == nil {
				continue
			}
			if _, ok := wf.Nodes[in.Link.Node]; !ok {
				return nil, fmt.Errorf("node %s input %q links to node %q, which is not in the prompt", id, in.Name, in.Link.Node)
			}
			stack = append(stack, in.Link.Node)
		}
	}
	// Edges producer -> consumer; PreventCycles refuses the edge that would close a cycle.
	for id := range seen {
		for _, in := range wf.Nodes[id].Inputs {
			if in.Link == nil {
				continue
			}
			if err := g.AddVertex(in.Link.Node); err != nil && !errors.Is(err, dgraph.ErrVertexAlreadyExists) {
				return nil, err
			}
			err := g.AddEdge(in.Link.Node, id)
			switch {
			case err == nil, errors.Is(err, dgraph.ErrEdgeAlreadyExists):
			case errors.Is(err, dgraph.ErrEdgeCreatesCycle):
				return nil, &CycleError{Nodes: cycleThrough(wf, in.Link.Node, id)}
			default:
				return nil, fmt.Errorf("graph: link %s -> %s: %w", in.Link.Node, id, err)
			}
		}
	}
	order, err := dgraph.StableTopologicalSort(g, lessID)
	if err != nil {
		return nil, fmt.Errorf("graph: order: %w", err)
	}
	return order, nil
}

// cycleThrough finds a path from `to` back to `from` through links (consumer -> producer
// direction reversed), which together with the edge from -> to closes the cycle.
func cycleThrough(wf *Workflow, from, to string) []string {
	// Search producers of `from` until `to` is found: to ... -> from -> to.
	type item struct {
		id   string
		path []string
	}
	queue := []item{{from, []string{from}}}
	seen := map[string]bool{from: true}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if it.id == to {
			rev := make([]string, len(it.path))
			for i, p := range it.path {
				rev[len(it.path)-1-i] = p
			}
			return rev
		}
		for _, in := range wf.Nodes[it.id].Inputs {
			if in.Link != nil && !seen[in.Link.Node] {
				seen[in.Link.Node] = true
				queue = append(queue, item{in.Link.Node, append(append([]string(nil), it.path...), in.Link.Node)})
			}
		}
	}
	return []string{from, to}
}
