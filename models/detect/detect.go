// Package detect says which model a set of weights holds — the Z-Image DiT, the Qwen3 text
// encoder or the Flux 16-channel VAE — from tensor names and shapes alone, and infers the model
// configuration from those shapes the way ComfyUI's model detection does, merging a sidecar
// <weights>.config.json over the inferred values when one sits beside the file.
//
// It owns: signature keys and prefixes of each supported checkpoint layout (ComfyUI / HF / LDM
// single files, diffusers folders), shape-to-config arithmetic, the family defaults that shapes
// cannot give (RoPE theta, norm epsilons), and the sidecar format.
//
// It must not read tensor data, convert dtypes or build models: it sees names and shapes only
// (through safetensors.Source or a plain map), and the model packages turn its Config into their
// own typed configs (Result.Decode).
package detect

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// Model names, as printed by `dypegraph models inspect --detect` and written in sidecars.
const (
	ZImageDiT = "zimage_dit"
	Qwen3     = "qwen3"
	FluxVAE   = "flux_vae"
	Unknown   = "unknown"
)

// Result is what detection found.
type Result struct {
	// Model is ZImageDiT, Qwen3, FluxVAE or Unknown.
	Model string `json:"model"`
	// Config holds the model configuration under the key names of the sidecar files
	// ("dim", "n_layers", "hidden_size", "ch_mult", ...). Values are JSON-shaped: int, bool,
	// float64, string, []int, []any or json.Number (from a sidecar).
	Config map[string]any `json:"config"`
	// Defaults lists the Config keys that shapes cannot give and that were filled with the
	// model family's values (RoPE theta, epsilons); a sidecar overrides them.
	Defaults []string `json:"-"`
	// Missing lists configuration keys the model needs that neither shapes, defaults nor a
	// sidecar gave (e.g. "axes_dims" for a DiT whose head size is not the real model's).
	Missing []string `json:"missing,omitempty"`
	// Conflicts describes sidecar values that contradict what the shapes say.
	Conflicts []string `json:"conflicts,omitempty"`
	// Sidecar is the path of the sidecar merged into Config, "" when none.
	Sidecar string `json:"sidecar,omitempty"`
	// Reason says why Model is Unknown.
	Reason string `json:"reason,omitempty"`
}

// Decode fills v (a pointer to the caller's config struct with JSON tags) from Config.
func (r Result) Decode(v any) error {
	b, err := json.Marshal(r.Config)
	if err != nil {
		return fmt.Errorf("detect: encoding %s config: %w", r.Model, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("detect: decoding %s config: %w", r.Model, err)
	}
	return nil
}

// Shapes maps tensor names (as stored) to their shapes.
type Shapes map[string][]int

// ShapesOf collects the names and shapes of a source.
func ShapesOf(src safetensors.Source) Shapes {
	s := Shapes{}
	for _, name := range src.Names() {
		if info, ok := src.Info(name); ok {
			s[name] = info.Shape
		}
	}
	return s
}

// detector recognises one model layout: sig is a key (without prefix) whose presence marks the
// layout; infer builds the result from the keys under the prefix found.
type detector struct {
	sig   string
	infer func(v view) (Result, bool)
}

// detectors in priority order: a combined checkpoint reports its diffusion model first.
var detectors = []detector{
	{"cap_embedder.1.weight", inferDiT},
	{"embed_tokens.weight", inferQwen3},
	{"decoder.conv_in.weight", inferVAE},
	{"encoder.conv_in.weight", inferVAE},
}

// Detect says which model the tensors form and infers its configuration from their shapes.
func Detect(shapes Shapes) Result {
	names := slices.Sorted(maps.Keys(shapes))
	var reasons []string
	for _, d := range detectors {
		for _, prefix := range prefixesFor(names, d.sig) {
			r, ok := d.infer(view{shapes: shapes, prefix: prefix})
			if ok {
				sort.Strings(r.Defaults)
				return r
			}
			if r.Reason != "" {
				reasons = append(reasons, r.Reason)
			}
		}
	}
	reason := "no tensor layout of a Z-Image DiT, Qwen3 text encoder or Flux VAE"
	if len(reasons) > 0 {
		reason = strings.Join(reasons, "; ")
	}
	return Result{Model: Unknown, Config: map[string]any{}, Reason: reason}
}

// prefixesFor returns the prefixes p (empty or ending in '.') such that p+sig is a name, shortest
// first.
func prefixesFor(names []string, sig string) []string {
	var out []string
	for _, n := range names {
		if !strings.HasSuffix(n, sig) {
			continue
		}
		p := n[:len(n)-len(sig)]
		if p == "" || strings.HasSuffix(p, ".") {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}

// view reads shapes under a prefix.
type view struct {
	shapes Shapes
	prefix string
}

// shape returns the shape of prefix+name and whether it exists with the given rank (rank < 0:
// any rank).
func (v view) shape(name string, rank int) ([]int, bool) {
	s, ok := v.shapes[v.prefix+name]
	if !ok || (rank >= 0 && len(s) != rank) {
		return nil, false
	}
	return s, true
}

func (v view) has(name string) bool {
	_, ok := v.shapes[v.prefix+name]
	return ok
}

// count returns how many blocks stem.N.* exist (N = 0, 1, ... without gaps).
func (v view) count(stem string) int {
	seen := map[int]bool{}
	p := v.prefix + stem
	for name := range v.shapes {
		rest, ok := strings.CutPrefix(name, p)
		if !ok {
			continue
		}
		idx, _, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(idx); err == nil && n >= 0 && strconv.Itoa(n) == idx {
			seen[n] = true
		}
	}
	n := 0
	for seen[n] {
		n++
	}
	return n
}

// builder accumulates a Result.
type builder struct {
	r Result
}

func newBuilder(model string) *builder {
	return &builder{r: Result{Model: model, Config: map[string]any{}}}
}

func (b *builder) set(key string, v any) { b.r.Config[key] = v }

func (b *builder) def(key string, v any) {
	b.r.Config[key] = v
	b.r.Defaults = append(b.r.Defaults, key)
}

func unknown(format string, args ...any) (Result, bool) {
	return Result{Model: Unknown, Reason: fmt.Sprintf(format, args...)}, false
}

// finish records which required keys are absent.
func (b *builder) finish(required []string) (Result, bool) {
	for _, k := range required {
		if _, ok := b.r.Config[k]; !ok {
			b.r.Missing = append(b.r.Missing, k)
		}
	}
	return b.r, true
}
