package nodes

import (
	"context"
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/zimage"
	"github.com/dypegraph/dypegraph/sampling"
	"github.com/dypegraph/dypegraph/tensor"
)

// The diffusion model nodes: UNETLoader, ModelSamplingAuraFlow and DyPE_FLUX. A MODEL is a
// handle (*Model) onto a loaded DiT plus its patches; patching clones the handle and never
// mutates one that a cached node output holds.

// Model is ComfyUI's MODEL for Z-Image.
type Model struct {
	dit  *loadedDiT
	Name string
	// Sampling is the model sampling (flow, shift 3 for Z-Image unless patched).
	Sampling *sampling.FlowSampling
	// DyPE is the DyPE patch, nil when the model has none.
	DyPE *DyPEPatch
	// lora holds the LoRA patches (LoraLoader, LoraLoaderModelOnly) and the patched
	// transformer built from them; nil without LoRA. Clones share it.
	lora *loraState[*zimage.Model]
}

// DyPEPatch is what DyPE_FLUX records on a MODEL.
type DyPEPatch struct {
	Config dype.Config
	// RequestedWidth/Height are the node's width and height (comfy mode uses them for δ, the
	// scale hint and μ); the sampled size comes from the latent.
	RequestedWidth, RequestedHeight int
}

// DiT returns the loaded transformer, without LoRA patches (configuration, RoPE); samplers
// run Transformer.
func (m *Model) DiT() *zimage.Model { return m.dit.m }

// clone returns a copy of the handle that shares the loaded weights.
func (m *Model) clone() *Model {
	c := *m
	if m.DyPE != nil {
		d := *m.DyPE
		c.DyPE = &d
	}
	return &c
}

// loadedDiT owns a transformer's weights and memory map; it is closed when the last cached
// MODEL handle that refers to it is released.
type loadedDiT struct {
	m   *zimage.Model
	ref *sharedModel
}

// Retain and Release count the executor's cached references (see Releaser), of the loaded
// transformer and of the LoRA-patched one.
func (m *Model) Retain() {
	m.dit.ref.retain()
	if m.lora != nil {
		m.lora.ref.retain()
	}
}

func (m *Model) Release() {
	if m.lora != nil {
		m.lora.ref.release()
	}
	m.dit.ref.release()
}

// ZImageShift is Z-Image's default model sampling shift (ComfyUI's sampling_settings).
const ZImageShift = 3.0

func inputModel(in *Inputs, name string) (*Model, error) {
	m, ok := in.Value(name).(*Model)
	if !ok || m == nil {
		return nil, Errorf("TypeError", "input %q is not a MODEL", name)
	}
	return m, nil
}

// ---- UNETLoader

type unetLoader struct{}

var weightDTypes = []string{"default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"}

func listDiffusionModels(env Env) []string { return ListModels(env, "diffusion_models") }

func (unetLoader) Schema() *Schema {
	return &Schema{
		Name: "UNETLoader", DisplayName: "Load Diffusion Model", Category: "model/loaders",
		Inputs: []InputSpec{
			{Name: "unet_name", Type: TypeCombo, OptionsFrom: listDiffusionModels},
			{Name: "weight_dtype", Type: TypeCombo, Options: weightDTypes, Extra: []KV{{"advanced", true}}},
		},
		Outputs: []OutputSpec{{Type: TypeModel}},
	}
}

func (unetLoader) Fingerprint(in *Inputs, env Env) (string, error) {
	path, err := ModelPath(env, "diffusion_models", in.String("unet_name"))
	if err != nil {
		return "", err
	}
	return fileIdentity(path)
}

func (unetLoader) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	env := rt.Env()
	name := in.String("unet_name")
	path, err := ModelPath(env, "diffusion_models", name)
	if err != nil {
		return nil, Errorf("FileNotFoundError", "%v", err)
	}
	if err := requireFamily(path, detect.ZImageDiT, "UNETLoader", "a Z-Image diffusion model (z_image_turbo_bf16.safetensors)"); err != nil {
		return nil, err
	}
	be, err := env.ComputeBackend()
	if err != nil {
		return nil, err
	}
	var opts zimage.Options
	switch in.String("weight_dtype") {
	case "fp8_e4m3fn", "fp8_e4m3fn_fast":
		opts.WeightDType = tensor.F8E4M3
	case "fp8_e5m2":
		opts.WeightDType = tensor.F8E5M2
	}
	m, err := zimage.Load(path, be, opts)
	if err != nil {
		return nil, Errorf("ValueError", "UNETLoader: %v", err)
	}
	ld := &loadedDiT{m: m, ref: newSharedModel(m.Close)}
	ms, err := sampling.NewFlowSampling(ZImageShift, 1)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{&Model{dit: ld, Name: name, Sampling: ms}}}, nil
}

// ---- ModelSamplingAuraFlow

type modelSamplingAuraFlow struct{}

func (modelSamplingAuraFlow) Schema() *Schema {
	return &Schema{
		Name: "ModelSamplingAuraFlow", Category: "model/patch", PythonModule: "comfy_extras.nodes_model_advanced",
		Inputs: []InputSpec{
			{Name: "model", Type: TypeModel},
			{Name: "shift", Type: TypeFloat, Default: 1.73, Min: 0.0, Max: 100.0, Step: 0.01},
		},
		Outputs: []OutputSpec{{Type: TypeModel}},
	}
}

func (modelSamplingAuraFlow) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	m, err := inputModel(in, "model")
	if err != nil {
		return nil, err
	}
	ms, err := sampling.NewFlowSampling(in.Float("shift"), 1)
	if err != nil {
		return nil, Errorf("ValueError", "ModelSamplingAuraFlow: %v", err)
	}
	c := m.clone()
	c.Sampling = ms // replaces any earlier sampling patch, DyPE's μ included
	return &Outputs{Values: []any{c}}, nil
}

// ---- DyPE_FLUX (ComfyUI-DyPE v2.3.0's node)

type dypeNode struct{}

func (dypeNode) Schema() *Schema {
	return &Schema{
		Name: "DyPE_FLUX", DisplayName: "DyPE", Category: "model_patches/unet",
		Description:  "Applies DyPE (Dynamic Position Extrapolation) to a models for ultra-high-resolution generation.",
		PythonModule: "custom_nodes.ComfyUI-DyPE", V3: true,
		Inputs: []InputSpec{
			{Name: "model", Type: TypeModel},
			{Name: "width", Type: TypeInt, Default: int64(1024), Min: int64(16), Max: int64(8192), Step: int64(8)},
			{Name: "height", Type: TypeInt, Default: int64(1024), Min: int64(16), Max: int64(8192), Step: int64(8)},
			{Name: "model_type", Type: TypeCombo, Default: "auto", Options: []string{"auto", "flux", "nunchaku", "qwen", "zimage"}},
			{Name: "method", Type: TypeCombo, Default: "vision_yarn", Options: []string{"vision_yarn", "yarn", "ntk", "base"}},
			{Name: "yarn_alt_scaling", Type: TypeBoolean, Default: false, Extra: []KV{{"label_on", "Anisotropic (High-Res)"}, {"label_off", "Isotropic (Stable Default)"}}},
			{Name: "enable_dype", Type: TypeBoolean, Default: true, Extra: []KV{{"label_on", "Enabled"}, {"label_off", "Disabled"}}},
			{Name: "base_resolution", Type: TypeInt, Default: int64(1024), Min: int64(256), Max: int64(4096), Step: int64(16)},
			{Name: "dype_start_sigma", Type: TypeFloat, Default: 1.0, Min: 0.0, Max: 1.0, Step: 0.01},
			{Name: "dype_scale", Type: TypeFloat, Default: 2.0, Min: 0.0, Max: 8.0, Step: 0.1, Optional: true},
			{Name: "dype_exponent", Type: TypeFloat, Default: 2.0, Min: 0.0, Max: 1000.0, Step: 0.1, Optional: true},
			{Name: "base_shift", Type: TypeFloat, Default: 0.5, Min: 0.0, Max: 10.0, Step: 0.01, Optional: true},
			{Name: "max_shift", Type: TypeFloat, Default: 1.15, Min: 0.0, Max: 10.0, Step: 0.01, Optional: true},
			// Not in ComfyUI-DyPE: dypegraph's choice of position mode; comfy reproduces the node.
			{Name: "position_mode", Type: TypeCombo, Default: "comfy", Options: []string{"comfy", "llm_dit"}, Optional: true,
				Extra: []KV{{"tooltip", "comfy: ComfyUI-DyPE's exact Z-Image positions (shared workflows give the same images). llm_dit: integer positions, plain Z-Image at or below the base resolution."}}},
		},
		Outputs: []OutputSpec{{Type: TypeModel, Name: "Patched Model"}},
	}
}

func (dypeNode) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	m, err := inputModel(in, "model")
	if err != nil {
		return nil, err
	}
	cfg := dype.ComfyNodeDefaults()
	method, err := dype.ParseMethod(in.String("method"))
	if err != nil {
		return nil, Errorf("ValueError", "DyPE: %v", err)
	}
	cfg.Method = method
	cfg.Enabled = in.Bool("enable_dype")
	cfg.Anisotropic = in.Bool("yarn_alt_scaling")
	cfg.BaseResolution = int(in.Int("base_resolution"))
	cfg.DypeStartSigma = dype.ClampStartSigma(in.Float("dype_start_sigma"))
	cfg.DypeScale = in.Float("dype_scale")
	cfg.DypeExponent = in.Float("dype_exponent")
	cfg.BaseShift = in.Float("base_shift")
	cfg.MaxShift = in.Float("max_shift")
	if in.Has("position_mode") {
		mode, err := dype.ParseMode(in.String("position_mode"))
		if err != nil {
			return nil, Errorf("ValueError", "DyPE: %v", err)
		}
		cfg.Mode = mode
	}
	if err := cfg.Validate(); err != nil {
		return nil, Errorf("ValueError", "DyPE: %v", err)
	}
	width, height := int(in.Int("width")), int(in.Int("height"))
	c := m.clone()
	c.DyPE = &DyPEPatch{Config: cfg, RequestedWidth: width, RequestedHeight: height}
	// With enable_dype the node also installs its own model sampling (Flux-style shift μ,
	// equal to the SD3 shift e^μ); a later ModelSamplingAuraFlow replaces it.
	spec := c.DiT().RopeSpec()
	baseSeq := spec.AxesLens[1] * spec.AxesLens[2]
	var mu float64
	var ok bool
	if cfg.Mode == dype.ModeComfy {
		mu, ok = dype.ComfyShift(cfg, width, height, baseSeq)
	} else if cfg.Enabled {
		mu, ok = dype.LLMDiTShift(cfg, width, height), true
	}
	if ok {
		ms, err := sampling.NewFlowSampling(math.Exp(mu), 1)
		if err != nil {
			return nil, Errorf("ValueError", "DyPE: model sampling for μ=%v: %v", mu, err)
		}
		c.Sampling = ms
	}
	return &Outputs{Values: []any{c}}, nil
}

// newRope builds the per-generation DyPE state for a latent of h×w cells, or nil without a patch.
func (m *Model) newRope(latentH, latentW, downscale int) (*dype.Rope, error) {
	if m.DyPE == nil {
		return nil, nil
	}
	geom := dype.Geometry{Width: latentW * downscale, Height: latentH * downscale,
		RequestedWidth: m.DyPE.RequestedWidth, RequestedHeight: m.DyPE.RequestedHeight}
	r, err := dype.New(m.DyPE.Config, m.DiT().RopeSpec(), geom)
	if err != nil {
		return nil, fmt.Errorf("DyPE for %dx%d: %w", geom.Width, geom.Height, err)
	}
	return r, nil
}

func init() {
	register(unetLoader{})
	register(modelSamplingAuraFlow{})
	register(dypeNode{})
}
