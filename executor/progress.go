package executor

import "github.com/dypegraph/dypegraph/internal/ojson"

// Node progress states of ComfyUI's progress registry (comfy_execution/progress.py). Pending
// nodes are never reported.
const (
	nodeRunning  = "running"
	nodeFinished = "finished"
)

// nodeProgress is one node's entry in the prompt's progress registry. Value and max keep the
// number kinds ComfyUI sends: floats 0.0 and 1.0 when a node starts, the integers of the
// progress update afterwards, 1 and 1 for a node answered from the cache.
type nodeProgress struct {
	state      string
	value, max any
}

// progressStart marks id running (value 0.0 of 1.0) and reports the registry.
func (r *run) progressStart(id string) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	p := r.progressEntry(id)
	p.state, p.value, p.max = nodeRunning, 0.0, 1.0
	r.sendProgressState()
}

// progressUpdate records a progress update of id and reports the registry. The caller holds
// r.pmu.
func (r *run) progressUpdate(id string, value, max int) {
	p := r.progressEntry(id)
	p.state, p.value, p.max = nodeRunning, value, max
	r.sendProgressState()
}

// progressFinish marks id finished (value = max) and reports the registry. A node answered from
// the cache was never started: it finishes at 1 of 1.
func (r *run) progressFinish(id string) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	p := r.progressEntry(id)
	p.state, p.value = nodeFinished, p.max
	r.sendProgressState()
}

func (r *run) progressEntry(id string) *nodeProgress {
	if p, ok := r.progress[id]; ok {
		return p
	}
	p := &nodeProgress{value: 0, max: 1}
	r.progress[id] = p
	r.progressOrder = append(r.progressOrder, id)
	return p
}

// sendProgressState sends progress_state with every non-pending node of the prompt so far, in
// the order they left pending. Each event gets its own objects: sinks may encode them later.
func (r *run) sendProgressState() {
	pid := r.req.PromptID
	all := ojson.NewObject()
	for _, id := range r.progressOrder {
		p := r.progress[id]
		all.Set(id, ojson.NewObject().Set("value", p.value).Set("max", p.max).Set("state", p.state).
			Set("node_id", id).Set("prompt_id", pid).Set("display_node_id", id).
			Set("parent_node_id", nil).Set("real_node_id", id))
	}
	r.emit("progress_state", ojson.NewObject().Set("prompt_id", pid).Set("nodes", all), false)
}
