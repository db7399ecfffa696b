package experiments

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dypegraph/dypegraph/executor"
	"github.com/dypegraph/dypegraph/graph"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// Progress is one sampler step of a running prompt.
type Progress struct {
	// Node is the KSampler's id; Pass is its index among the prompt's samplers (0-based) and
	// Passes their number.
	Node         string
	Pass, Passes int
	Step, Steps  int
}

// Runner validates and executes built prompts with one executor, so models stay loaded between
// runs (the executor's cache), as the original tool kept its pipeline.
type Runner struct {
	env  nodes.Env
	reg  *nodes.Registry
	exec *executor.Executor
	// OnProgress, when set, is called for every sampler step.
	OnProgress func(Progress)
	// OnNode, when set, is called when a node starts, with its id, class and title.
	OnNode func(id, class, title string)
	mu     sync.Mutex
}

// NewRunner returns a runner over the default node registry in env's folders.
func NewRunner(env nodes.Env) *Runner {
	reg := nodes.Default()
	return &Runner{env: env, reg: reg, exec: executor.New(reg, env)}
}

// Env returns the runner's folders.
func (r *Runner) Env() nodes.Env { return r.env }

// Close releases the models the runner's executor holds.
func (r *Runner) Close() { r.exec.ClearCache() }

// Result is what one run produced.
type Result struct {
	// Images are the absolute paths of the images the prompt saved, in the order saved.
	Images []string
	// Wall is the whole run; Loading the time spent in model loader nodes that ran (zero when
	// the models were cached). Generation = Wall − Loading.
	Wall, Loading time.Duration
	// PeakRSS is the process's peak resident memory during the run, in bytes (0 when the
	// platform cannot tell); PeakRSSExact is false when it could not be reset before the run,
	// so it is the peak since the process started.
	PeakRSS      int64
	PeakRSSExact bool
	// Ran lists the ids of the nodes that executed (not answered from the cache).
	Ran []string
}

// Generation is the run's time without model loading.
func (r *Result) Generation() time.Duration { return r.Wall - r.Loading }

// loaderClasses are the nodes whose time is model loading, not generation.
var loaderClasses = map[string]bool{"UNETLoader": true, "CLIPLoader": true, "VAELoader": true}

// ValidationError is a prompt the nodes refused, with ComfyUI's error response.
type ValidationError struct {
	Response *ojson.Object
	Summary  string
}

func (e *ValidationError) Error() string { return e.Summary }

// Validate checks prompt against the registry in the runner's folders without running it.
func (r *Runner) Validate(prompt *ojson.Object) (*graph.Workflow, *graph.Result, error) {
	wf, err := graph.FromPrompt(prompt.Clone())
	if err != nil {
		return nil, nil, fmt.Errorf("built workflow: %w", err)
	}
	res := graph.Validate(wf, r.reg, r.env, nil)
	if !res.OK() || len(res.NodeErrors) > 0 {
		return nil, nil, &ValidationError{Response: res.ErrorResponse(wf.Order), Summary: summarize(wf, res)}
	}
	return wf, res, nil
}

// summarize turns a validation result into one readable message per problem.
func summarize(wf *graph.Workflow, res *graph.Result) string {
	var lines []string
	ids := make([]string, 0, len(res.NodeErrors))
	for id := range res.NodeErrors {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ne := res.NodeErrors[id]
		title := ne.ClassType
		if n, ok := wf.Nodes[id]; ok {
			title = n.DisplayTitle()
		}
		for _, e := range ne.Errors {
			msg := e.Message
			if e.Details != "" {
				msg += ": " + e.Details
			}
			lines = append(lines, fmt.Sprintf("node %s %q (%s): %s", id, title, ne.ClassType, msg))
		}
	}
	if len(lines) == 0 && res.Error != nil {
		msg := res.Error.Message
		if res.Error.Details != "" {
			msg += ": " + res.Error.Details
		}
		lines = append(lines, msg)
	}
	if len(lines) == 0 {
		lines = append(lines, "the workflow has no valid output")
	}
	return "the workflow did not validate: " + strings.Join(lines, "; ")
}

// Run validates prompt and executes it. The PNGs the prompt saves carry the prompt and, in their
// "workflow" chunk, the editor-format rendering of it (build.UIWorkflow). A cancelled ctx
// interrupts the run; the error then wraps context.Canceled.
func (r *Runner) Run(ctx context.Context, prompt *ojson.Object) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	wf, res, err := r.Validate(prompt)
	if err != nil {
		return nil, err
	}
	var extra *ojson.Object
	if ui, err := build.UIWorkflow(prompt, r.reg); err == nil {
		extra = ojson.NewObject().Set("workflow", ui)
	}
	samplers := build.KSamplers(prompt)
	var (
		images      []string
		loading     time.Duration
		current     string
		currentFrom time.Time
		imgErr      error
	)
	endNode := func(now time.Time) {
		if current != "" && loaderClasses[wf.Nodes[current].ClassType] {
			loading += now.Sub(currentFrom)
		}
		current = ""
	}
	sink := executor.SinkFunc(func(e executor.Event) {
		now := time.Now()
		switch e.Type {
		case "executing":
			endNode(now)
			v, _ := e.Data.Get("node")
			if id, ok := v.(string); ok {
				current, currentFrom = id, now
				if r.OnNode != nil {
					if n, ok := wf.Nodes[id]; ok {
						r.OnNode(id, n.ClassType, n.DisplayTitle())
					}
				}
			}
		case "executed":
			paths, err := savedImages(e.Data, r.env)
			if err != nil && imgErr == nil {
				imgErr = err
			}
			images = append(images, paths...)
		case "progress":
			if r.OnProgress != nil {
				p := Progress{Passes: len(samplers)}
				v, _ := e.Data.Get("node")
				p.Node, _ = v.(string)
				p.Pass = slices.Index(samplers, p.Node)
				p.Step = jsonInt(e.Data, "value")
				p.Steps = jsonInt(e.Data, "max")
				r.OnProgress(p)
			}
		case "execution_success", "execution_error", "execution_interrupted":
			endNode(now)
		}
	})
	exact := resetPeakRSS() == nil
	start := time.Now()
	result := r.exec.Run(ctx, &executor.Request{PromptID: newPromptID(), Workflow: wf, Validation: res, ExtraPNGInfo: extra}, sink)
	wall := time.Since(start)
	peak, _ := peakRSS()
	out := &Result{Images: images, Wall: wall, Loading: loading, PeakRSS: peak, PeakRSSExact: exact, Ran: result.Ran}
	switch {
	case result.Interrupted:
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.Canceled
		}
		return out, fmt.Errorf("interrupted: %w", cause)
	case !result.Success:
		if result.Err != nil {
			return out, fmt.Errorf("the workflow failed: %w", result.Err)
		}
		return out, errors.New("the workflow failed")
	case imgErr != nil:
		return out, imgErr
	}
	return out, nil
}

// savedImages reads the output images of an executed event ({"images": [{filename, subfolder,
// type}]}), keeping those in the output folder.
func savedImages(data *ojson.Object, env nodes.Env) ([]string, error) {
	ov, _ := data.Get("output")
	out, ok := ov.(*ojson.Object)
	if !ok {
		return nil, nil
	}
	iv, _ := out.Get("images")
	list, _ := iv.([]any)
	var paths []string
	for _, item := range list {
		obj, ok := item.(*ojson.Object)
		if !ok {
			continue
		}
		get := func(k string) string { v, _ := obj.Get(k); s, _ := v.(string); return s }
		if get("type") != "output" {
			continue
		}
		name, sub := get("filename"), get("subfolder")
		if name == "" || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("the workflow reported an odd output file name %q", name)
		}
		paths = append(paths, filepath.Join(env.OutputDir, filepath.FromSlash(sub), name))
	}
	return paths, nil
}

func jsonInt(o *ojson.Object, key string) int {
	v, _ := o.Get(key)
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case json.Number:
		i, _ := strconv.Atoi(string(n))
		return i
	case float64:
		return int(n)
	}
	return 0
}

// newPromptID returns a random version 4 UUID, as ComfyUI's prompt ids.
func newPromptID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
