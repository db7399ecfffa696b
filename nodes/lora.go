package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/models/qwen3"
	"github.com/dypegraph/dypegraph/models/zimage"
)

// LoRA: LoraLoaderModelOnly and LoraLoader (ComfyUI nodes.py). A LoRA node clones the MODEL
// (and CLIP) handle and records the patches on the clone; the cached handle it got is never
// changed. The patched transformer / encoder is built from the loaded one the first time a
// sampler (or CLIPTextEncode) uses the handle, only for the patched tensors, and shared by
// every handle cloned from it; it is freed when the executor's cache releases the last of
// those handles.

// loraState is the LoRA patch set of a MODEL or CLIP handle and the patched model built from
// it on first use. Handles cloned from one another share it and its reference count.
type loraState[T interface{ Close() error }] struct {
	patches []lora.Patch // in application order, strengths applied
	files   []string     // the LoRA files, in load order

	mu     sync.Mutex
	view   T
	built  bool
	closed bool
	ref    *sharedModel
}

func newLoraState[T interface{ Close() error }](patches []lora.Patch, files []string) *loraState[T] {
	s := &loraState[T]{patches: patches, files: files}
	s.ref = newSharedModel(s.close)
	return s
}

// stacked returns the patches and files of s (nil: none) followed by the new ones.
func stacked[T interface{ Close() error }](s *loraState[T], ps []lora.Patch, file string) ([]lora.Patch, []string) {
	if s == nil {
		return ps, []string{file}
	}
	return append(slices.Clone(s.patches), ps...), append(slices.Clone(s.files), file)
}

// get returns the patched model, building it with build on the first call.
func (s *loraState[T]) get(build func([]lora.Patch) (T, error)) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero T
	if s.closed {
		return zero, errors.New("the LoRA-patched model was already released")
	}
	if !s.built {
		v, err := build(s.patches)
		if err != nil {
			return zero, fmt.Errorf("applying LoRA %s: %w", strings.Join(s.files, ", "), err)
		}
		s.view, s.built = v, true
	}
	return s.view, nil
}

// close frees the patched model (when the last handle is released).
func (s *loraState[T]) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if !s.built {
		return nil
	}
	var zero T
	err := s.view.Close()
	s.view, s.built = zero, false
	return err
}

// Transformer returns the transformer a sampler runs: the loaded one, or for a handle that
// carries LoRA patches the patched view (built on the first call, ctx checked while building).
func (m *Model) Transformer(ctx context.Context) (*zimage.Model, error) {
	if m.lora == nil {
		return m.DiT(), nil
	}
	return m.lora.get(func(ps []lora.Patch) (*zimage.Model, error) { return m.DiT().WithPatches(ctx, ps) })
}

// LoRAs lists the LoRA files applied to the handle, in order.
func (m *Model) LoRAs() []string {
	if m.lora == nil {
		return nil
	}
	return slices.Clone(m.lora.files)
}

// clone returns a copy of the handle that shares the loaded encoder (and its LoRA state).
func (c *Clip) clone() *Clip {
	d := *c
	return &d
}

// PatchedEncoder returns the encoder CLIPTextEncode runs: the loaded one, or for a handle that
// carries LoRA patches the patched view (built on the first call).
func (c *Clip) PatchedEncoder(ctx context.Context) (*qwen3.Encoder, error) {
	if c.lora == nil {
		return c.Encoder(), nil
	}
	return c.lora.get(func(ps []lora.Patch) (*qwen3.Encoder, error) { return c.Encoder().WithPatches(ctx, ps) })
}

// LoRAs lists the LoRA files applied to the handle, in order.
func (c *Clip) LoRAs() []string {
	if c.lora == nil {
		return nil
	}
	return slices.Clone(c.lora.files)
}

// warner is implemented by runtimes that can show a warning to the user (the executor may
// send it as an event); otherwise warnings go to the process log, never nowhere.
type warner interface {
	Warn(msg string)
}

func warn(rt Runtime, msg string) {
	if w, ok := rt.(warner); ok {
		w.Warn(msg)
		return
	}
	slog.Warn(msg, "node", rt.NodeID())
}

func listLoras(env Env) []string { return ListModels(env, "loras") }

// loraFingerprint is the identity of the LoRA file, so a replaced file re-runs the node.
func loraFingerprint(in *Inputs, env Env) (string, error) {
	path, err := ModelPath(env, "loras", in.String("lora_name"))
	if err != nil {
		return "", err
	}
	return fileIdentity(path)
}

// resolveLoRA opens the named LoRA and resolves it against km, warning about what it leaves
// out (ComfyUI logs "lora key not loaded" for each such tensor).
func resolveLoRA(node string, in *Inputs, rt Runtime, km *lora.KeyMap) (*lora.Result, string, error) {
	name := in.String("lora_name")
	path, err := ModelPath(rt.Env(), "loras", name)
	if err != nil {
		return nil, "", Errorf("FileNotFoundError", "%v", err)
	}
	f, err := lora.Open(path)
	if err != nil {
		return nil, "", Errorf("ValueError", "%s: %v", node, err)
	}
	defer f.Close()
	res, err := f.Resolve(km)
	if err != nil {
		return nil, "", Errorf("ValueError", "%s: %v", node, err)
	}
	if len(res.NotLoaded) > 0 {
		warn(rt, fmt.Sprintf("%s: %s: LoRA keys not loaded (another model's, or a naming ComfyUI does not map either): %s",
			node, name, lora.Summary(res.NotLoaded, 5)))
	}
	if len(res.Ignored) > 0 {
		warn(rt, fmt.Sprintf("%s: %s: %d patches not applied: %s", node, name, len(res.Ignored), strings.Join(res.Ignored, "; ")))
	}
	return res, name, nil
}

// patchModel returns m cloned with ps stacked on its patches (m itself when there are none).
func patchModel(m *Model, ps []lora.Patch, file string) (*Model, error) {
	c := m.clone()
	if len(ps) == 0 {
		return c, nil
	}
	if err := m.DiT().CheckPatches(ps); err != nil {
		return nil, Errorf("ValueError", "LoRA %s does not fit this diffusion model: %v", file, err)
	}
	all, files := stacked(m.lora, ps, file)
	c.lora = newLoraState[*zimage.Model](all, files)
	return c, nil
}

func patchClip(c *Clip, ps []lora.Patch, file string) (*Clip, error) {
	d := c.clone()
	if len(ps) == 0 {
		return d, nil
	}
	if err := c.Encoder().CheckPatches(ps); err != nil {
		return nil, Errorf("ValueError", "LoRA %s does not fit this text encoder: %v", file, err)
	}
	all, files := stacked(c.lora, ps, file)
	d.lora = newLoraState[*qwen3.Encoder](all, files)
	return d, nil
}

// ---- LoraLoader

type loraLoader struct{}

func (loraLoader) Schema() *Schema {
	return &Schema{
		Name: "LoraLoader", DisplayName: "Load LoRA (Model and CLIP)", Category: "model/loaders",
		Description: "This LoRA loader is used to modify both diffusion and CLIP models, altering the way in which latents are denoised such as applying styles. Multiple LoRA nodes can be linked together.",
		Inputs: []InputSpec{
			{Name: "model", Type: TypeModel, Extra: []KV{{"tooltip", "The diffusion model the LoRA will be applied to."}}},
			{Name: "clip", Type: TypeClip, Extra: []KV{{"tooltip", "The CLIP model the LoRA will be applied to."}}},
			{Name: "lora_name", Type: TypeCombo, OptionsFrom: listLoras, Extra: []KV{{"tooltip", "The name of the LoRA."}}},
			{Name: "strength_model", Type: TypeFloat, Default: 1.0, Min: -100.0, Max: 100.0, Step: 0.01, Extra: []KV{{"tooltip", "How strongly to modify the diffusion model. This value can be negative."}}},
			{Name: "strength_clip", Type: TypeFloat, Default: 1.0, Min: -100.0, Max: 100.0, Step: 0.01, Extra: []KV{{"tooltip", "How strongly to modify the CLIP model. This value can be negative."}}},
		},
		Outputs:            []OutputSpec{{Type: TypeModel}, {Type: TypeClip}},
		OutputTooltips:     []string{"The modified diffusion model.", "The modified CLIP model."},
		SearchAliases:      []string{"lora", "load lora", "apply lora", "lora loader", "lora model"},
		EssentialsCategory: "Image Generation",
	}
}

func (loraLoader) Fingerprint(in *Inputs, env Env) (string, error) { return loraFingerprint(in, env) }

func (loraLoader) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	m, err := inputModel(in, "model")
	if err != nil {
		return nil, err
	}
	clip, ok := in.Value("clip").(*Clip)
	if !ok || clip == nil {
		return nil, Errorf("TypeError", "input \"clip\" is not a CLIP")
	}
	sm, sc := in.Float("strength_model"), in.Float("strength_clip")
	if sm == 0 && sc == 0 {
		return &Outputs{Values: []any{m, clip}}, nil
	}
	km := m.DiT().LoRAKeyMap()
	km.Merge(clip.Encoder().LoRAKeyMap())
	res, name, err := resolveLoRA("LoraLoader", in, rt, km)
	if err != nil {
		return nil, err
	}
	mc, err := patchModel(m, lora.WithStrength(res.Patches, lora.ModelDiffusion, sm), name)
	if err != nil {
		return nil, err
	}
	cc, err := patchClip(clip, lora.WithStrength(res.Patches, lora.ModelClip, sc), name)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{mc, cc}}, nil
}

// ---- LoraLoaderModelOnly

type loraLoaderModelOnly struct{}

func (loraLoaderModelOnly) Schema() *Schema {
	return &Schema{
		Name: "LoraLoaderModelOnly", DisplayName: "Load LoRA", Category: "model/loaders",
		Description: "This LoRAs loader is used to modify the diffusion model, altering the way in which latents are denoised such as applying styles. Multiple LoRA nodes can be linked together.",
		Inputs: []InputSpec{
			{Name: "model", Type: TypeModel},
			{Name: "lora_name", Type: TypeCombo, OptionsFrom: listLoras},
			{Name: "strength_model", Type: TypeFloat, Default: 1.0, Min: -100.0, Max: 100.0, Step: 0.01},
		},
		Outputs: []OutputSpec{{Type: TypeModel}},
		// Inherited from LoraLoader in ComfyUI, both tooltips included.
		OutputTooltips:     []string{"The modified diffusion model.", "The modified CLIP model."},
		SearchAliases:      []string{"lora", "load lora", "apply lora", "lora loader", "lora model"},
		EssentialsCategory: "Image Generation",
	}
}

func (loraLoaderModelOnly) Fingerprint(in *Inputs, env Env) (string, error) {
	return loraFingerprint(in, env)
}

func (loraLoaderModelOnly) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	m, err := inputModel(in, "model")
	if err != nil {
		return nil, err
	}
	s := in.Float("strength_model")
	if s == 0 {
		return &Outputs{Values: []any{m}}, nil
	}
	res, name, err := resolveLoRA("LoraLoaderModelOnly", in, rt, m.DiT().LoRAKeyMap())
	if err != nil {
		return nil, err
	}
	mc, err := patchModel(m, lora.WithStrength(res.Patches, lora.ModelDiffusion, s), name)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{mc}}, nil
}

func init() {
	register(loraLoader{})
	register(loraLoaderModelOnly{})
}
