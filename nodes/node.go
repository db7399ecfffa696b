// Package nodes owns the node contract, the node registry and its schemas (what /object_info
// prints), and the built-in nodes, one file per family (primitive, image, ...).
//
// A node declares a Schema (typed inputs with defaults, ranges and combo options; outputs;
// category; output-node flag) and implements Execute. Nodes are pure with respect to their
// inputs, which is what makes the executor's output cache correct; a node that reads the
// outside world implements Fingerprinter (ComfyUI's IS_CHANGED). This package must not
// schedule execution (that is the executor's job) nor parse workflow JSON (the graph's job).
package nodes

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"sync"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/tensor"
	_ "github.com/dypegraph/dypegraph/tensor/cpu" // registers the "cpu" backend
)

// Node is one node class.
type Node interface {
	// Schema describes the node; it must be cheap and must not depend on mutable state other
	// than Env (file-backed combos are filled in by Registry.Info at request time).
	Schema() *Schema
	// Execute runs the node on validated inputs. It must honour ctx cancellation at least
	// between long steps (Runtime.Progress returns ctx's error).
	Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error)
}

// Fingerprinter is implemented by nodes whose result depends on the outside world (files,
// time). The fingerprint joins the cache key, like ComfyUI's IS_CHANGED: when it changes the
// node re-runs. Only literal inputs are set in `in` (links are absent).
type Fingerprinter interface {
	Fingerprint(in *Inputs, env Env) (string, error)
}

// InputValidator is ComfyUI's VALIDATE_INPUTS: the node validates the named literal inputs
// itself; the generic min/max/combo checks are skipped for them.
type InputValidator interface {
	ValidatedInputs() []string
	ValidateInputs(in *Inputs, env Env) error
}

// Env is what nodes and validation may know about the installation: the folders, and the
// tensor backend models run on (nil: the CPU backend).
type Env struct {
	InputDir  string
	OutputDir string
	TempDir   string
	ModelsDir string
	Backend   tensor.Backend
}

var (
	cpuOnce    sync.Once
	cpuBackend tensor.Backend
	cpuErr     error
)

// ComputeBackend returns env's backend, opening the shared CPU backend on first use when none is
// set.
func (e Env) ComputeBackend() (tensor.Backend, error) {
	if e.Backend != nil {
		return e.Backend, nil
	}
	cpuOnce.Do(func() { cpuBackend, cpuErr = tensor.Open("cpu") })
	if cpuErr != nil {
		return nil, fmt.Errorf("open the CPU backend: %w", cpuErr)
	}
	return cpuBackend, nil
}

// Runtime is given to a running node by the executor.
type Runtime interface {
	// Progress reports value out of max (a sampler step) and returns a non-nil error when the
	// prompt was interrupted, which the node must return.
	Progress(value, max int) error
	// Env returns the installation folders.
	Env() Env
	// NodeID is the id of the running node in the prompt.
	NodeID() string
}

// Outputs is a node's result: one value per output slot, plus the UI dict that output nodes
// produce (for example {"images": [{filename, subfolder, type}]}).
type Outputs struct {
	Values []any
	UI     *ojson.Object
}

// Error is an execution error with a ComfyUI-style exception type name.
type Error struct {
	Type string // e.g. "ValueError", "FileNotFoundError"
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error of the given exception type.
func Errorf(typ, format string, args ...any) error {
	return &Error{Type: typ, Err: fmt.Errorf(format, args...)}
}

// Inputs holds a node's validated input values by name. Literal INT values are *big.Int
// (exact up to 2^64-1 and beyond), FLOAT float64, STRING string, BOOLEAN bool, combos their
// option value; linked inputs carry the producer's output value.
type Inputs struct {
	values map[string]any
	// Hidden inputs (ComfyUI's PROMPT, EXTRA_PNGINFO, UNIQUE_ID).
	Prompt       *ojson.Object
	ExtraPNGInfo *ojson.Object
	UniqueID     string
}

// NewInputs returns an empty input set.
func NewInputs() *Inputs { return &Inputs{values: map[string]any{}} }

// Set stores a value.
func (in *Inputs) Set(name string, v any) { in.values[name] = v }

// Has reports whether the input is present.
func (in *Inputs) Has(name string) bool { _, ok := in.values[name]; return ok }

// Value returns the raw value (nil when absent).
func (in *Inputs) Value(name string) any { return in.values[name] }

// Names returns the present input names, sorted.
func (in *Inputs) Names() []string {
	names := make([]string, 0, len(in.values))
	for k := range in.values {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Int returns an INT input as int64. Values beyond int64 (only seeds reach them) saturate;
// use Uint64 for seeds.
func (in *Inputs) Int(name string) int64 {
	switch v := in.values[name].(type) {
	case *big.Int:
		if v.IsInt64() {
			return v.Int64()
		}
		if v.Sign() > 0 {
			return 1<<63 - 1
		}
		return -1 << 63
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

// Uint64 returns an INT input as uint64 (seeds); negative values wrap like numpy's uint64.
func (in *Inputs) Uint64(name string) uint64 {
	switch v := in.values[name].(type) {
	case *big.Int:
		if v.IsUint64() {
			return v.Uint64()
		}
		return new(big.Int).And(v, new(big.Int).SetUint64(^uint64(0))).Uint64()
	case int64:
		return uint64(v)
	case int:
		return uint64(v)
	}
	return 0
}

// Float returns a FLOAT input.
func (in *Inputs) Float(name string) float64 {
	switch v := in.values[name].(type) {
	case float64:
		return v
	case *big.Int:
		f, _ := new(big.Float).SetInt(v).Float64()
		return f
	}
	return 0
}

// String returns a STRING or combo input.
func (in *Inputs) String(name string) string {
	s, _ := in.values[name].(string)
	return s
}

// Bool returns a BOOLEAN input.
func (in *Inputs) Bool(name string) bool {
	b, _ := in.values[name].(bool)
	return b
}

// Registry maps class_type names to nodes. It is filled at init and read-only afterwards.
type Registry struct {
	mu    sync.RWMutex
	nodes map[string]Node
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{nodes: map[string]Node{}} }

// Register adds a node class; registering a name twice is a programming error and panics.
func (r *Registry) Register(n Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := n.Schema().Name
	if _, dup := r.nodes[name]; dup {
		panic("nodes: duplicate registration of " + name)
	}
	r.nodes[name] = n
}

// Get returns the node class registered under name.
func (r *Registry) Get(name string) (Node, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.nodes[name]
	return n, ok
}

// Names returns all registered class names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.nodes))
	for k := range r.nodes {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// defaultRegistry holds the built-in nodes; families register themselves in init.
var defaultRegistry = NewRegistry()

// Default returns the registry of built-in nodes.
func Default() *Registry { return defaultRegistry }

func register(n Node) { defaultRegistry.Register(n) }
