package zimage

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// Options configures Load.
type Options struct {
	// WeightDType, when valid, converts the Linear weights (every matrix the forward multiplies
	// by) to this dtype at load, as ComfyUI's UNETLoader weight_dtype does (F8E4M3 for
	// "fp8_e4m3fn", F8E5M2 for "fp8_e5m2"). The converted copies live in backend memory.
	// InvalidDType (the zero value) keeps the stored dtype, memory-mapped.
	WeightDType tensor.DType
	// Config, when not nil, replaces the configuration that detection and the sidecar give
	// (it is validated against the tensor shapes all the same).
	Config *Config
	// Overrides are laid over the detected configuration like an extra sidecar (keys as in the
	// sidecar files, e.g. "axes_dims").
	Overrides map[string]any
}

// Model is a loaded Z-Image DiT. It is immutable and safe for concurrent use; Close releases
// the weights.
type Model struct {
	cfg    Config
	be     tensor.Backend
	w      *weights
	unused []string
	path   string

	// base and patches are set on a patched view (WithPatches): the unpatched model whose
	// tensors the view shares, and the patches the view's own tensors carry.
	base    *Model
	patches []lora.Patch

	mu     sync.Mutex
	closed bool
	src    interface{ Close() error } // the mapped checkpoint, nil for in-memory models
	owned  []*tensor.Tensor
}

// Load opens a checkpoint (a safetensors file, an index file or a folder of shards), detects
// its configuration from the tensor shapes with a sidecar <weights>.config.json merged over
// them, and binds the weights on be without copying them on the CPU backend (they stay
// memory-mapped in their stored dtype). Tensor names may carry any key prefix
// ("model.diffusion_model." in ComfyUI single files).
func Load(path string, be tensor.Backend, opt Options) (*Model, error) {
	if be == nil {
		return nil, errors.New("zimage: load: nil backend")
	}
	set, err := safetensors.OpenSet(path)
	if err != nil {
		return nil, fmt.Errorf("zimage: load %s: %w", path, err)
	}
	m, err := loadSet(path, set, be, opt)
	if err != nil {
		set.Close()
		return nil, err
	}
	m.src = set
	return m, nil
}

func loadSet(path string, set safetensors.Source, be tensor.Backend, opt Options) (*Model, error) {
	res, err := detect.DetectPath(path, set)
	if err != nil {
		return nil, fmt.Errorf("zimage: load %s: %w", path, err)
	}
	if len(opt.Overrides) > 0 {
		if res, err = detect.Merge(res, opt.Overrides, "options"); err != nil {
			return nil, fmt.Errorf("zimage: load %s: %w", path, err)
		}
	}
	var cfg Config
	if opt.Config != nil {
		if err := opt.Config.validate(); err != nil {
			return nil, fmt.Errorf("zimage: load %s: %w", path, err)
		}
		cfg = opt.Config.withDefaults()
		if cfg.KeyPrefix == "" {
			if p, ok := res.Config["key_prefix"].(string); ok {
				cfg.KeyPrefix = p
			}
		}
	} else if cfg, err = configFrom(res); err != nil {
		return nil, fmt.Errorf("zimage: load %s: %w", path, err)
	}
	var src safetensors.Source = set
	if cfg.KeyPrefix != "" {
		src = safetensors.StripPrefix(set, cfg.KeyPrefix)
	}
	get := func(name string) (*tensor.Tensor, error) {
		info, ok := src.Info(name)
		if !ok {
			return nil, safetensors.ErrNotFound
		}
		dt, err := tensor.ParseDType(string(info.DType))
		if err != nil {
			return nil, fmt.Errorf("dtype %s is not a float type a model can use", info.DType)
		}
		data, err := src.Data(name)
		if err != nil {
			return nil, err
		}
		return tensor.FromBytes(data, dt, info.Shape...)
	}
	has := func(name string) bool { _, ok := src.Info(name); return ok }
	m, err := newModel(cfg, be, opt, get, has, src.Names())
	if err != nil {
		return nil, fmt.Errorf("zimage: load %s: %w", path, err)
	}
	m.path = path
	return m, nil
}

// NewFromTensors builds a model from host (or backend) tensors under their ComfyUI names
// (without prefix), e.g. weights made in memory for tests and benchmarks. The tensors must stay
// valid for the model's lifetime.
func NewFromTensors(cfg Config, tensors map[string]*tensor.Tensor, be tensor.Backend, opt Options) (*Model, error) {
	if be == nil {
		return nil, errors.New("zimage: nil backend")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	get := func(name string) (*tensor.Tensor, error) { return tensors[name], nil }
	has := func(name string) bool { return tensors[name] != nil }
	m, err := newModel(cfg, be, opt, get, has, names)
	if err != nil {
		return nil, fmt.Errorf("zimage: %w", err)
	}
	return m, nil
}

func newModel(cfg Config, be tensor.Backend, opt Options, get func(string) (*tensor.Tensor, error), has func(string) bool, names []string) (*Model, error) {
	if opt.WeightDType != tensor.InvalidDType && !opt.WeightDType.Valid() {
		return nil, fmt.Errorf("weight dtype %v is not a tensor dtype", opt.WeightDType)
	}
	for _, n := range names {
		if n == "scaled_fp8" || strings.HasSuffix(n, ".scale_weight") || strings.HasSuffix(n, ".weight_scale") {
			return nil, fmt.Errorf("tensor %s: scaled-FP8 checkpoints (per-tensor weight scales) are not supported; use the BF16 file, optionally with weight dtype fp8", n)
		}
	}
	b := &binder{cfg: cfg, has: has, used: map[string]bool{}, conv: opt.WeightDType, be: be}
	b.get = func(name string) (*tensor.Tensor, error) {
		t, err := get(name)
		if err != nil {
			return nil, err
		}
		switch t.DType() {
		case tensor.F32, tensor.F16, tensor.BF16, tensor.F8E4M3, tensor.F8E5M2:
		default:
			return nil, fmt.Errorf("dtype %v is not supported", t.DType())
		}
		d, err := be.ToDevice(t)
		if err != nil {
			return nil, err
		}
		if d != t {
			b.owned = append(b.owned, d)
		}
		return d, nil
	}
	w, unused, err := b.bind(names)
	if err != nil {
		be.Free(b.owned...)
		return nil, err
	}
	return &Model{cfg: cfg, be: be, w: w, unused: unused, owned: b.owned}, nil
}

// Config returns the model configuration.
func (m *Model) Config() Config { return m.cfg }

// Backend returns the backend the model runs on.
func (m *Model) Backend() tensor.Backend { return m.be }

// RopeSpec is the model's RoPE for dype.New.
func (m *Model) RopeSpec() dype.RopeSpec { return m.cfg.RopeSpec() }

// Path returns the checkpoint path ("" for in-memory models).
func (m *Model) Path() string { return m.path }

// UnusedTensors lists checkpoint tensors the model does not use (ComfyUI ignores such keys
// with a warning; a long list usually means a config that does not fit the file).
func (m *Model) UnusedTensors() []string { return append([]string(nil), m.unused...) }

// Close frees converted weights and unmaps the checkpoint (for a patched view: frees the
// view's patched tensors only). The model must not be used afterwards; closing twice is a
// no-op.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.be.Free(m.owned...)
	m.owned = nil
	if m.src != nil {
		return m.src.Close()
	}
	return nil
}
