// Package build turns generation settings (prompt, size, sampler, DyPE, tiled VAE, img2img,
// multipass) into ComfyUI API-format workflows for Z-Image Turbo. It is the one place where the
// CLI's `generate`, the DyPE test tools (`bench dype`, `sweep dype`) and the bundled example
// workflows get their graphs from, so everything they make runs through graph.Validate and the
// executor like any workflow a user loads.
//
// It owns: Params (every knob of the original tool's CLI, with its defaults and checks),
// Build (Params → API prompt), the multipass plan (Passes), TOML profiles (LoadProfile: the
// [NAME.generation], [NAME.dype], [NAME.pytorch] ... tables of a config file) and UIWorkflow (an
// API prompt rendered as an editor-format workflow, for the PNG "workflow" chunk).
//
// It must not run anything, touch model files or know about terminals: callers validate and
// execute what it builds.
package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// Model file names the official Z-Image Turbo workflows use.
const (
	DefaultDiT         = "z_image_turbo_bf16.safetensors"
	DefaultTextEncoder = "qwen_3_4b.safetensors"
	DefaultVAE         = "ae.safetensors"
)

// Multipass modes (the original tool's dype.multipass).
const (
	Single    = "single"
	TwoPass   = "twopass"
	ThreePass = "threepass"
)

// Size limits: EmptySD3LatentImage's range and step, DyPE_FLUX's maximum.
const (
	SizeStep     = 16
	MinSize      = 16
	MaxSize      = 16384
	MaxDyPESize  = 8192
	MinTileSize  = 64
	TileStep     = 32
	MaxTileSize  = 4096
	UpscaleImage = "lanczos"
)

// DyPE is the DyPE_FLUX node's settings (the original tool's DyPEConfig plus the position mode).
type DyPE struct {
	Enabled        bool
	Method         string  // vision_yarn | yarn | ntk | base
	Scale          float64 // dype_scale (λs)
	Exponent       float64 // dype_exponent (λt)
	StartSigma     float64
	BaseShift      float64
	MaxShift       float64
	BaseResolution int
	Anisotropic    bool
	// Mode is llm_dit or comfy; "" leaves the node's position_mode input out (ComfyUI-DyPE's
	// behaviour, comfy), which keeps a workflow portable to ComfyUI.
	Mode string
}

// DefaultDyPE is the original tool's DyPEConfig (disabled) with dypegraph's CLI position mode.
func DefaultDyPE() DyPE {
	d := dype.DefaultConfig()
	return DyPE{
		Enabled: false, Method: string(d.Method), Scale: d.DypeScale, Exponent: d.DypeExponent,
		StartSigma: d.DypeStartSigma, BaseShift: d.BaseShift, MaxShift: d.MaxShift,
		BaseResolution: d.BaseResolution, Anisotropic: d.Anisotropic, Mode: string(dype.ModeLLMDiT),
	}
}

// Params are the settings of one generation.
type Params struct {
	Prompt string
	// LoRAs are applied in order after the diffusion model loader (LoraLoaderModelOnly), by name
	// under models/loras.
	LoRAs []LoRA
	// NegativePrompt empty: the negative conditioning is ConditioningZeroOut(positive), as the
	// official template; otherwise its own CLIPTextEncode (used only when CFG ≠ 1).
	NegativePrompt string
	Width, Height  int
	Steps          int
	Seed           uint64
	CFG            float64
	// Shift is ModelSamplingAuraFlow's shift. 0 leaves the node out: the model's own shift (3)
	// applies, or with DyPE the DyPE node's μ (base_shift/max_shift).
	Shift     float64
	Sampler   string
	Scheduler string

	// Model files, as named in the models folder (defaults: the official file names).
	DiT, TextEncoder, VAE string
	// WeightDType is UNETLoader's weight_dtype (default "default").
	WeightDType string

	DyPE DyPE

	TiledVAE    bool
	TileSize    int // pixels
	TileOverlap int // pixels

	// Image, when set, makes an img2img generation from this input-folder image (LoadImage),
	// scaled to Width×Height, with KSampler denoise = Strength.
	Image    string
	Strength float64

	// Multipass is single, twopass or threepass; Pass2Strength is the denoise of the last pass.
	Multipass     string
	Pass2Strength float64
	// UpscaleModel, when set, is a file in models/upscale_models (ESRGAN family): between
	// multipass passes the decoded image goes through it (ImageUpscaleWithModel) before it is
	// scaled to the next pass's size, as ComfyUI's upscale workflows do.
	UpscaleModel string

	// FilenamePrefix is SaveImage's prefix.
	FilenamePrefix string
}

// Defaults returns the original tool's defaults: 1024², 9 steps, shift 3, cfg 1 (Z-Image Turbo
// needs no guidance), seed 42, the flow-matching Euler sampler with the simple schedule (what
// the diffusers pipeline runs), 512/64 px VAE tiles, strength 0.75 for img2img, pass2 strength
// 0.5. The official ComfyUI template differs only in sampler and steps (res_multistep, 8).
func Defaults() Params {
	return Params{
		Width: 1024, Height: 1024, Steps: 9, Seed: 42, CFG: 1, Shift: 3,
		Sampler: "euler", Scheduler: "simple",
		DiT: DefaultDiT, TextEncoder: DefaultTextEncoder, VAE: DefaultVAE, WeightDType: "default",
		DyPE:     DefaultDyPE(),
		TileSize: 512, TileOverlap: 64,
		Strength: 0.75, Multipass: Single, Pass2Strength: 0.5,
		FilenamePrefix: "dypegraph",
	}
}

// Pass is one sampling pass of a (multipass) generation.
type Pass struct {
	Width, Height int
	// Denoise is 1 for a txt2img pass, the strength for an img2img pass.
	Denoise float64
}

// Passes returns the passes of p: one for single (and img2img), two for twopass (half size,
// then full size at Pass2Strength), three for threepass (a quarter, half at 0.6, full at
// Pass2Strength). Pass sizes are floored to multiples of 16, as the original tool does.
func Passes(p Params) ([]Pass, error) {
	first := 1.0
	if p.Image != "" {
		first = p.Strength
	}
	var plan []struct{ scale, denoise float64 }
	switch p.Multipass {
	case Single, "":
		plan = append(plan, struct{ scale, denoise float64 }{1, first})
	case TwoPass:
		plan = append(plan, struct{ scale, denoise float64 }{0.5, 1}, struct{ scale, denoise float64 }{1, p.Pass2Strength})
	case ThreePass:
		plan = append(plan, struct{ scale, denoise float64 }{0.25, 1}, struct{ scale, denoise float64 }{0.5, 0.6},
			struct{ scale, denoise float64 }{1, p.Pass2Strength})
	default:
		return nil, fmt.Errorf("multipass %q: want single, twopass or threepass", p.Multipass)
	}
	out := make([]Pass, len(plan))
	for i, s := range plan {
		w := int(float64(p.Width)*s.scale) / SizeStep * SizeStep
		h := int(float64(p.Height)*s.scale) / SizeStep * SizeStep
		if w < MinSize || h < MinSize {
			return nil, fmt.Errorf("%s: pass %d would be %d×%d, below the %d px minimum; use a larger size or fewer passes", p.Multipass, i+1, w, h, MinSize)
		}
		out[i] = Pass{Width: w, Height: h, Denoise: s.denoise}
	}
	return out, nil
}

// samplerOptions are KSampler's sampler and scheduler choices from the node registry.
func samplerOptions() (samplers, schedulers []string) {
	n, ok := nodes.Default().Get("KSampler")
	if !ok {
		return nil, nil
	}
	s := n.Schema()
	if in, ok := s.Input("sampler_name"); ok {
		samplers = in.Options
	}
	if in, ok := s.Input("scheduler"); ok {
		schedulers = in.Options
	}
	return samplers, schedulers
}

// Validate checks p and says, for each problem, what was wrong and what is allowed. It checks
// what the nodes would refuse (ranges, steps, options) so that callers can report errors in
// their own terms before any workflow runs.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, l := range p.LoRAs {
		if l.Name == "" {
			bad("a LoRA needs a file name (NAME:STRENGTH, NAME relative to models/loras)")
		}
		if l.Strength < -100 || l.Strength > 100 || l.Strength != l.Strength {
			bad("LoRA %s: strength %v is outside -100..100", l.Name, l.Strength)
		}
	}
	if p.UpscaleModel != "" && (p.Multipass == Single || p.Multipass == "") {
		bad("upscale model %s is used between the passes of a multipass generation: choose multipass twopass or threepass, or leave the upscale model out", p.UpscaleModel)
	}
	maxSide := MaxSize
	if p.DyPE.Enabled {
		maxSide = MaxDyPESize
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"width", p.Width}, {"height", p.Height}} {
		switch {
		case d.v < MinSize || d.v > maxSide:
			bad("%s %d is out of range: it must be %d to %d pixels", d.name, d.v, MinSize, maxSide)
		case d.v%SizeStep != 0:
			bad("%s %d is not a multiple of %d (Z-Image works on 16-pixel tokens); try %d or %d",
				d.name, d.v, SizeStep, d.v/SizeStep*SizeStep, (d.v/SizeStep+1)*SizeStep)
		}
	}
	if p.Steps < 1 || p.Steps > 10000 {
		bad("steps %d must be 1 to 10000", p.Steps)
	}
	if !(p.CFG >= 0 && p.CFG <= 100) {
		bad("cfg %v must be 0 to 100", p.CFG)
	}
	if !(p.Shift >= 0 && p.Shift <= 100) {
		bad("shift %v must be 0 to 100 (0 leaves the model's own shift)", p.Shift)
	}
	samplers, schedulers := samplerOptions()
	if !slices.Contains(samplers, p.Sampler) {
		bad("sampler %q is not available; choose one of %s", p.Sampler, strings.Join(samplers, ", "))
	}
	if !slices.Contains(schedulers, p.Scheduler) {
		bad("scheduler %q is not available; choose one of %s", p.Scheduler, strings.Join(schedulers, ", "))
	}
	for _, m := range []struct{ what, name string }{{"diffusion model", p.DiT}, {"text encoder", p.TextEncoder}, {"VAE", p.VAE}} {
		if m.name == "" {
			bad("no %s file name", m.what)
		}
	}
	if !slices.Contains([]string{"default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"}, p.WeightDType) {
		bad("weight dtype %q: want default, fp8_e4m3fn, fp8_e4m3fn_fast or fp8_e5m2", p.WeightDType)
	}
	if p.DyPE.Enabled {
		errs = append(errs, p.DyPE.validate()...)
	}
	if p.TiledVAE {
		if p.TileSize < MinTileSize || p.TileSize > MaxTileSize || p.TileSize%TileStep != 0 {
			bad("tile size %d must be a multiple of %d from %d to %d pixels", p.TileSize, TileStep, MinTileSize, MaxTileSize)
		}
		if p.TileOverlap < 0 || p.TileOverlap%TileStep != 0 || p.TileOverlap >= p.TileSize {
			bad("tile overlap %d must be a multiple of %d, at least 0 and below the tile size %d", p.TileOverlap, TileStep, p.TileSize)
		}
	}
	if p.Image != "" && !(p.Strength > 0 && p.Strength <= 1) {
		bad("strength %v must be above 0 and at most 1", p.Strength)
	}
	switch p.Multipass {
	case Single, "":
	case TwoPass, ThreePass:
		if p.Image != "" {
			bad("img2img cannot be combined with multipass %s; use multipass single", p.Multipass)
		}
		if !(p.Pass2Strength > 0 && p.Pass2Strength <= 1) {
			bad("pass2 strength %v must be above 0 and at most 1", p.Pass2Strength)
		}
	default:
		bad("multipass %q: want single, twopass or threepass", p.Multipass)
	}
	if len(errs) == 0 {
		if _, err := Passes(p); err != nil {
			errs = append(errs, err)
		}
	}
	if p.FilenamePrefix == "" {
		bad("empty filename prefix")
	}
	return errors.Join(errs...)
}

// validate checks the DyPE settings against DyPE_FLUX's input ranges and the dype package.
func (d DyPE) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, err := dype.ParseMethod(d.Method); err != nil {
		bad("DyPE method %q: want vision_yarn, yarn, ntk or base", d.Method)
	}
	if d.Mode != "" {
		if _, err := dype.ParseMode(d.Mode); err != nil {
			bad("DyPE mode %q: want llm_dit or comfy", d.Mode)
		}
	}
	rng := func(name string, v, lo, hi float64) {
		if !(v >= lo && v <= hi) {
			bad("DyPE %s %v must be %v to %v", name, v, lo, hi)
		}
	}
	if !(d.Scale > 0 && d.Scale <= 8) {
		bad("DyPE scale %v must be above 0 and at most 8", d.Scale)
	}
	rng("exponent", d.Exponent, 0, 1000)
	rng("start sigma", d.StartSigma, 0, 1)
	rng("base shift", d.BaseShift, 0, 10)
	rng("max shift", d.MaxShift, 0, 10)
	if d.BaseResolution < 256 || d.BaseResolution > 4096 || d.BaseResolution%16 != 0 {
		bad("DyPE base resolution %d must be a multiple of 16 from 256 to 4096", d.BaseResolution)
	}
	return errs
}

// graphBuilder accumulates nodes with sequential ids.
type graphBuilder struct {
	prompt *ojson.Object
	next   int
}

func (g *graphBuilder) add(class, title string, inputs ...any) []any {
	g.next++
	id := strconv.Itoa(g.next)
	in := ojson.NewObject()
	for i := 0; i+1 < len(inputs); i += 2 {
		in.Set(inputs[i].(string), inputs[i+1])
	}
	g.prompt.Set(id, ojson.NewObject().Set("inputs", in).Set("class_type", class).
		Set("_meta", ojson.NewObject().Set("title", title)))
	return []any{id, json.Number("0")}
}

func num(v int) json.Number     { return json.Number(strconv.Itoa(v)) }
func flt(v float64) json.Number { return json.Number(ojson.FormatFloat(v)) }
func u64(v uint64) json.Number  { return json.Number(strconv.FormatUint(v, 10)) }
func size(w, h int) string      { return fmt.Sprintf("%d×%d", w, h) }
func passTitle(i, n int) string { return fmt.Sprintf("pass %d/%d", i+1, n) }

// LoRA is one LoRA file applied to the diffusion model.
type LoRA struct {
	Name     string
	Strength float64
}

// ParseLoRA reads "NAME" or "NAME:STRENGTH" (strength 1 when absent; the last colon splits, so
// names may contain colons).
func ParseLoRA(s string) (LoRA, error) {
	name, strength := s, 1.0
	if i := strings.LastIndex(s, ":"); i >= 0 {
		v, err := strconv.ParseFloat(s[i+1:], 64)
		if err != nil {
			return LoRA{}, fmt.Errorf("--lora %q: the strength after ':' is not a number", s)
		}
		name, strength = s[:i], v
	}
	if name == "" {
		return LoRA{}, fmt.Errorf("--lora %q: no file name", s)
	}
	return LoRA{Name: name, Strength: strength}, nil
}

// Build validates p and returns its API-format workflow. Node ids are "1", "2" ... in the order
// below; titles say what each node is for:
//
//	UNETLoader → [DyPE_FLUX per pass] → [ModelSamplingAuraFlow] → KSampler
//	CLIPLoader → CLIPTextEncode → ConditioningZeroOut (or a negative CLIPTextEncode)
//	VAELoader; EmptySD3LatentImage (txt2img) or LoadImage → ImageScale → VAEEncode(Tiled) (img2img)
//	later passes: VAEDecode(Tiled) → ImageScale (lanczos) → VAEEncode(Tiled) → KSampler(denoise)
//	VAEDecode or VAEDecodeTiled → SaveImage
func Build(p Params) (*ojson.Object, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	passes, err := Passes(p)
	if err != nil {
		return nil, err
	}
	g := &graphBuilder{prompt: ojson.NewObject()}
	unet := g.add("UNETLoader", "Load Diffusion Model", "unet_name", p.DiT, "weight_dtype", p.WeightDType)
	for _, l := range p.LoRAs {
		unet = g.add("LoraLoaderModelOnly", "LoRA "+l.Name, "model", unet, "lora_name", l.Name, "strength_model", flt(l.Strength))
	}
	clip := g.add("CLIPLoader", "Load CLIP", "clip_name", p.TextEncoder, "type", "lumina2", "device", "default")
	vaeNode := g.add("VAELoader", "Load VAE", "vae_name", p.VAE)
	pos := g.add("CLIPTextEncode", "Positive prompt", "text", p.Prompt, "clip", clip)
	var neg []any
	if p.NegativePrompt == "" {
		neg = g.add("ConditioningZeroOut", "Negative (zeroed positive)", "conditioning", pos)
	} else {
		neg = g.add("CLIPTextEncode", "Negative prompt", "text", p.NegativePrompt, "clip", clip)
	}

	var plainModel []any // the model of every pass without a DyPE patch
	modelFor := func(i int, ps Pass) []any {
		if !passDyPE(p, passes, i) {
			if plainModel == nil {
				plainModel = unet
				if p.Shift > 0 {
					plainModel = g.add("ModelSamplingAuraFlow", "Model sampling shift", "model", unet, "shift", flt(p.Shift))
				}
			}
			return plainModel
		}
		suffix := ""
		if len(passes) > 1 {
			suffix = " (" + passTitle(i, len(passes)) + ")"
		}
		in := []any{"model", unet, "width", num(ps.Width), "height", num(ps.Height), "model_type", "auto",
			"method", p.DyPE.Method, "yarn_alt_scaling", p.DyPE.Anisotropic, "enable_dype", true,
			"base_resolution", num(p.DyPE.BaseResolution), "dype_start_sigma", flt(p.DyPE.StartSigma),
			"dype_scale", flt(p.DyPE.Scale), "dype_exponent", flt(p.DyPE.Exponent),
			"base_shift", flt(p.DyPE.BaseShift), "max_shift", flt(p.DyPE.MaxShift)}
		if p.DyPE.Mode != "" {
			in = append(in, "position_mode", p.DyPE.Mode)
		}
		m := g.add("DyPE_FLUX", "DyPE "+size(ps.Width, ps.Height)+suffix, in...)
		if p.Shift > 0 {
			m = g.add("ModelSamplingAuraFlow", "Model sampling shift"+suffix, "model", m, "shift", flt(p.Shift))
		}
		return m
	}
	decode := func(latent []any, title string) []any {
		if p.TiledVAE {
			return g.add("VAEDecodeTiled", title+" (tiled)", "samples", latent, "vae", vaeNode,
				"tile_size", num(p.TileSize), "overlap", num(p.TileOverlap), "temporal_size", num(64), "temporal_overlap", num(8))
		}
		return g.add("VAEDecode", title, "samples", latent, "vae", vaeNode)
	}
	encode := func(pixels []any, title string) []any {
		if p.TiledVAE {
			return g.add("VAEEncodeTiled", title+" (tiled)", "pixels", pixels, "vae", vaeNode,
				"tile_size", num(p.TileSize), "overlap", num(p.TileOverlap), "temporal_size", num(64), "temporal_overlap", num(8))
		}
		return g.add("VAEEncode", title, "pixels", pixels, "vae", vaeNode)
	}

	var latent, upscaleModel []any
	for i, ps := range passes {
		suffix := ""
		if len(passes) > 1 {
			suffix = " (" + passTitle(i, len(passes)) + ")"
		}
		switch {
		case i == 0 && p.Image != "":
			img := g.add("LoadImage", "Input image", "image", p.Image)
			scaled := g.add("ImageScale", "Scale input to "+size(ps.Width, ps.Height), "image", img,
				"upscale_method", UpscaleImage, "width", num(ps.Width), "height", num(ps.Height), "crop", "center")
			latent = encode(scaled, "Encode input image")
		case i == 0:
			latent = g.add("EmptySD3LatentImage", "Empty latent "+size(ps.Width, ps.Height)+suffix,
				"width", num(ps.Width), "height", num(ps.Height), "batch_size", num(1))
		default:
			img := decode(latent, "Decode"+" ("+passTitle(i-1, len(passes))+")")
			if p.UpscaleModel != "" {
				if upscaleModel == nil {
					upscaleModel = g.add("UpscaleModelLoader", "Upscale model", "model_name", p.UpscaleModel)
				}
				img = g.add("ImageUpscaleWithModel", "Upscale with model"+suffix, "upscale_model", upscaleModel, "image", img)
			}
			up := g.add("ImageScale", "Upscale to "+size(ps.Width, ps.Height), "image", img,
				"upscale_method", UpscaleImage, "width", num(ps.Width), "height", num(ps.Height), "crop", "disabled")
			latent = encode(up, "Encode"+suffix)
		}
		model := modelFor(i, ps)
		latent = g.add("KSampler", "KSampler"+suffix, "model", model, "seed", u64(p.Seed), "steps", num(p.Steps),
			"cfg", flt(p.CFG), "sampler_name", p.Sampler, "scheduler", p.Scheduler, "positive", pos, "negative", neg,
			"latent_image", latent, "denoise", flt(ps.Denoise))
	}
	img := decode(latent, "Decode")
	g.add("SaveImage", "Save image", "images", img, "filename_prefix", p.FilenamePrefix)
	return g.prompt, nil
}

// passDyPE reports whether pass i gets a DyPE patch: with DyPE on, a single pass always does;
// in a multipass generation the last pass and every pass larger than the base resolution do,
// while small early passes (where the model needs no extrapolation) keep plain RoPE.
func passDyPE(p Params, passes []Pass, i int) bool {
	if !p.DyPE.Enabled {
		return false
	}
	if i == len(passes)-1 {
		return true
	}
	return max(passes[i].Width, passes[i].Height) > p.DyPE.BaseResolution
}

// KSamplers returns the ids of the KSampler nodes of a built workflow, in pass order.
func KSamplers(prompt *ojson.Object) []string {
	var ids []string
	for _, id := range prompt.Keys() {
		v, _ := prompt.Get(id)
		if n, ok := v.(*ojson.Object); ok {
			if c, _ := n.Get("class_type"); c == "KSampler" || c == "KSamplerAdvanced" {
				ids = append(ids, id)
			}
		}
	}
	return ids
}
