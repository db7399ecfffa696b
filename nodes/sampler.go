package nodes

import (
	"context"
	"fmt"
	"image"
	"image/color"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/models/zimage"
	"github.com/dypegraph/dypegraph/sampling"
	"github.com/dypegraph/dypegraph/tensor"
)

// KSampler and KSamplerAdvanced: ComfyUI's common_ksampler on a Z-Image MODEL.

// ditDenoiser evaluates the DiT for the samplers: x0 = x − σ·v for one conditioning.
type ditDenoiser struct {
	model *Model
	dit   *zimage.Model // the transformer to run (LoRA-patched when the model has LoRAs)
	be    tensor.Backend
	cond  *tensor.Tensor
	lens  []int
	rope  ropeState
}

// ropeState is the DyPE state of one generation (nil *dype.Rope for plain RoPE).
type ropeState interface {
	zimage.RopeProvider
	SetSigma(float64) error
}

func (d *ditDenoiser) Denoise(ctx context.Context, x *sampling.Latent, sigma float32, _ int) (*sampling.Latent, error) {
	xt, err := hostTensor(d.be, x.Data, x.Shape...)
	if err != nil {
		return nil, fmt.Errorf("upload latent: %w", err)
	}
	defer d.be.Free(xt)
	in := zimage.Input{X: xt, Sigma: []float32{sigma}, Context: d.cond, CaptionLens: d.lens}
	if d.rope != nil {
		if err := d.rope.SetSigma(dype.NormalizeSigma(float64(sigma), float64(d.model.Sampling.SigmaMax()))); err != nil {
			return nil, err
		}
		in.Rope = d.rope
	}
	v, err := d.dit.Forward(ctx, in)
	if err != nil {
		return nil, err
	}
	x0, err := zimage.Denoised(d.be, xt, v, []float32{sigma})
	d.be.Free(v)
	if err != nil {
		return nil, err
	}
	defer d.be.Free(x0)
	out, err := sampling.NewLatent(x.Shape...)
	if err != nil {
		return nil, err
	}
	if err := d.be.Read(out.Data, x0); err != nil {
		return nil, fmt.Errorf("read denoised latent: %w", err)
	}
	return out, nil
}

// conditioningTensor uploads the first entry of a CONDITIONING as the DiT context [1, L, D].
func conditioningTensor(be tensor.Backend, c *Conditioning, capDim int) (*tensor.Tensor, error) {
	if c == nil || len(c.Entries) == 0 {
		return nil, Errorf("ValueError", "empty conditioning")
	}
	e := c.Entries[0]
	if e.Dim != capDim {
		return nil, Errorf("ValueError", "the conditioning has %d features per token but the diffusion model expects %d: use the text encoder that belongs to this model", e.Dim, capDim)
	}
	return hostTensor(be, e.Hidden, 1, e.Tokens, e.Dim)
}

// latent2RGB are ComfyUI's Flux / Z-Image latent preview factors (16 channels × RGB) and bias.
var latent2RGB = [16][3]float32{
	{-0.0346, 0.0244, 0.0681}, {0.0034, 0.0210, 0.0687}, {0.0275, -0.0668, -0.0433}, {-0.0174, 0.0160, 0.0617},
	{0.0859, 0.0721, 0.0329}, {0.0004, 0.0383, 0.0115}, {0.0405, 0.0861, 0.0915}, {-0.0236, -0.0185, -0.0259},
	{-0.0245, 0.0250, 0.1180}, {0.1008, 0.0755, -0.0421}, {-0.0515, 0.0201, 0.0011}, {0.0428, -0.0012, -0.0036},
	{0.0817, 0.0765, 0.0749}, {-0.1264, -0.0522, -0.1103}, {-0.0280, -0.0881, -0.0499}, {-0.1262, -0.0982, -0.0778},
}
var latent2RGBBias = [3]float32{-0.0329, -0.0718, -0.0851}

// PreviewLatent renders the first batch item of a model-space latent [B, 16, H, W] with the
// latent→RGB factors, as ComfyUI's Latent2RGBPreviewer does (one pixel per latent cell).
func PreviewLatent(l *sampling.Latent) (image.Image, error) {
	if len(l.Shape) != 4 || l.Shape[1] != 16 {
		return nil, fmt.Errorf("latent preview needs [B, 16, H, W], got %v", l.Shape)
	}
	h, w := l.Shape[2], l.Shape[3]
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	plane := h * w
	for p := 0; p < plane; p++ {
		var rgb [3]float32
		for c := 0; c < 3; c++ {
			rgb[c] = latent2RGBBias[c]
		}
		for ch := 0; ch < 16; ch++ {
			v := l.Data[ch*plane+p]
			for c := 0; c < 3; c++ {
				rgb[c] += v * latent2RGB[ch][c]
			}
		}
		var px [3]uint8
		for c := 0; c < 3; c++ {
			f := (rgb[c] + 1) / 2
			f = min(max(f, 0), 1)
			px[c] = uint8(f * 255)
		}
		img.SetRGBA(p%w, p/w, color.RGBA{px[0], px[1], px[2], 255})
	}
	return img, nil
}

// previewer is the executor's optional preview interface (see executor.Previewer).
type previewer interface {
	PreviewMethod() string
	Preview(format string, img image.Image, fullSize bool) error
}

type ksamplerCall struct {
	model              *Model
	positive, negative *Conditioning
	latent             *Latent
	params             sampling.KSamplerParams
}

// run is common_ksampler: it builds the denoisers, runs the sampler with progress and
// previews, and returns the new LATENT.
func (k *ksamplerCall) run(ctx context.Context, rt Runtime) (*Outputs, error) {
	be, err := rt.Env().ComputeBackend()
	if err != nil {
		return nil, err
	}
	dit, err := k.model.Transformer(ctx)
	if err != nil {
		return nil, Errorf("ValueError", "%v", err)
	}
	cfg := dit.Config()
	lat := k.latent
	if lat.C != cfg.InChannels {
		if !lat.IsAllZero() {
			return nil, Errorf("ValueError", "the latent has %d channels but the diffusion model expects %d: encode the image with the model's VAE", lat.C, cfg.InChannels)
		}
		lat = NewLatent(lat.B, cfg.InChannels, lat.H, lat.W) // ComfyUI widens empty latents
	}
	if lat.B == 0 || lat.H == 0 || lat.W == 0 {
		return nil, Errorf("ValueError", "the latent is empty (%dx%dx%d)", lat.B, lat.H, lat.W)
	}
	samples, err := sampling.LatentFrom(lat.Samples, lat.B, lat.C, lat.H, lat.W)
	if err != nil {
		return nil, err
	}
	mk := func(c *Conditioning) (*ditDenoiser, func(), error) {
		ct, err := conditioningTensor(be, c, cfg.CapFeatDim)
		if err != nil {
			return nil, nil, err
		}
		d := &ditDenoiser{model: k.model, dit: dit, be: be, cond: ct}
		r, err := k.model.newRope(lat.H, lat.W, max(lat.DownscaleRatio, 8))
		if err != nil {
			be.Free(ct)
			return nil, nil, Errorf("ValueError", "%v", err)
		}
		if r != nil {
			d.rope = r
		}
		return d, func() { be.Free(ct) }, nil
	}
	pos, freePos, err := mk(k.positive)
	if err != nil {
		return nil, err
	}
	defer freePos()
	var neg sampling.Denoiser
	// The CFG++ samplers use the unconditional prediction themselves, even at cfg 1.
	if k.params.CFG != 1 || sampling.NeedsUncond(k.params.Sampler) {
		n, freeNeg, err := mk(k.negative)
		if err != nil {
			return nil, err
		}
		defer freeNeg()
		neg = n
	}
	p := k.params
	p.Sampling = k.model.Sampling
	p.Format = sampling.Flux
	pv, _ := rt.(previewer)
	var cbErr error
	p.Callback = func(s sampling.Step) {
		if cbErr != nil {
			return
		}
		if pv != nil && pv.PreviewMethod() != "none" && s.Denoised != nil {
			if img, err := PreviewLatent(s.Denoised); err == nil {
				if err := pv.Preview("JPEG", img, false); err != nil {
					cbErr = err
					return
				}
			}
		}
		if err := rt.Progress(s.Index+1, s.Total); err != nil {
			cbErr = err
		}
	}
	out, err := sampling.KSample(ctx, pos, neg, samples, p)
	if cbErr != nil {
		return nil, cbErr
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Errorf("ValueError", "KSampler: %v", err)
	}
	res := &Latent{B: out.Shape[0], C: out.Shape[1], H: out.Shape[2], W: out.Shape[3], Samples: out.Data, DownscaleRatio: max(lat.DownscaleRatio, 8)}
	return &Outputs{Values: []any{res}}, nil
}

func samplingInputs(in *Inputs) (*Model, *Conditioning, *Conditioning, *Latent, error) {
	m, err := inputModel(in, "model")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pos, ok1 := in.Value("positive").(*Conditioning)
	neg, ok2 := in.Value("negative").(*Conditioning)
	lat, ok3 := in.Value("latent_image").(*Latent)
	if !ok1 || !ok2 || !ok3 || pos == nil || neg == nil || lat == nil {
		return nil, nil, nil, nil, Errorf("TypeError", "KSampler inputs: positive/negative must be CONDITIONING and latent_image a LATENT")
	}
	return m, pos, neg, lat, nil
}

var seedMax = uint64(0xffffffffffffffff)

// ---- KSampler

type ksampler struct{}

func (ksampler) Schema() *Schema {
	return &Schema{
		Name: "KSampler", DisplayName: "KSampler", Category: "model/sampling",
		Description: "Uses the provided model, positive and negative conditioning to denoise the latent image.",
		Inputs: []InputSpec{
			{Name: "model", Type: TypeModel, Extra: []KV{{"tooltip", "The model used for denoising the input latent."}}},
			{Name: "seed", Type: TypeInt, Default: int64(0), Min: int64(0), Max: seedMax, ControlAfterGenerate: true, Extra: []KV{{"tooltip", "The random seed used for creating the noise."}}},
			{Name: "steps", Type: TypeInt, Default: int64(20), Min: int64(1), Max: int64(10000), Extra: []KV{{"tooltip", "The number of steps used in the denoising process."}}},
			{Name: "cfg", Type: TypeFloat, Default: 8.0, Min: 0.0, Max: 100.0, Step: 0.1, Round: 0.01, Extra: []KV{{"tooltip", "The Classifier-Free Guidance scale balances creativity and adherence to the prompt. Higher values result in images more closely matching the prompt however too high values will negatively impact quality."}}},
			{Name: "sampler_name", Type: TypeCombo, Options: sampling.Samplers(), Extra: []KV{{"tooltip", "The algorithm used when sampling, this can affect the quality, speed, and style of the generated output."}}},
			{Name: "scheduler", Type: TypeCombo, Options: sampling.Schedulers(), Extra: []KV{{"tooltip", "The scheduler controls how noise is gradually removed to form the image."}}},
			{Name: "positive", Type: TypeConditioning, Extra: []KV{{"tooltip", "The conditioning describing the attributes you want to include in the image."}}},
			{Name: "negative", Type: TypeConditioning, Extra: []KV{{"tooltip", "The conditioning describing the attributes you want to exclude from the image."}}},
			{Name: "latent_image", Type: TypeLatent, Extra: []KV{{"tooltip", "The latent image to denoise."}}},
			{Name: "denoise", Type: TypeFloat, Default: 1.0, Min: 0.0, Max: 1.0, Step: 0.01, Extra: []KV{{"tooltip", "The amount of denoising applied, lower values will maintain the structure of the initial image allowing for image to image sampling."}}},
		},
		Outputs:        []OutputSpec{{Type: TypeLatent}},
		OutputTooltips: []string{"The denoised latent."},
		SearchAliases:  []string{"sampler", "sample", "generate", "denoise", "diffuse", "txt2img", "img2img"},
	}
}

func (ksampler) Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	m, pos, neg, lat, err := samplingInputs(in)
	if err != nil {
		return nil, err
	}
	p := sampling.KSamplerParams{Seed: in.Uint64("seed"), Steps: int(in.Int("steps")), CFG: in.Float("cfg"),
		Sampler: in.String("sampler_name"), Scheduler: in.String("scheduler"), Denoise: in.Float("denoise")}
	return (&ksamplerCall{model: m, positive: pos, negative: neg, latent: lat, params: p}).run(ctx, rt)
}

// ---- KSamplerAdvanced

type ksamplerAdvanced struct{}

func (ksamplerAdvanced) Schema() *Schema {
	return &Schema{
		Name: "KSamplerAdvanced", DisplayName: "KSampler (Advanced)", Category: "model/sampling",
		Inputs: []InputSpec{
			{Name: "model", Type: TypeModel},
			{Name: "add_noise", Type: TypeCombo, Options: []string{"enable", "disable"}, Extra: []KV{{"advanced", true}}},
			{Name: "noise_seed", Type: TypeInt, Default: int64(0), Min: int64(0), Max: seedMax, ControlAfterGenerate: true},
			{Name: "steps", Type: TypeInt, Default: int64(20), Min: int64(1), Max: int64(10000)},
			{Name: "cfg", Type: TypeFloat, Default: 8.0, Min: 0.0, Max: 100.0, Step: 0.1, Round: 0.01},
			{Name: "sampler_name", Type: TypeCombo, Options: sampling.Samplers()},
			{Name: "scheduler", Type: TypeCombo, Options: sampling.Schedulers()},
			{Name: "positive", Type: TypeConditioning},
			{Name: "negative", Type: TypeConditioning},
			{Name: "latent_image", Type: TypeLatent},
			{Name: "start_at_step", Type: TypeInt, Default: int64(0), Min: int64(0), Max: int64(10000), Extra: []KV{{"advanced", true}}},
			{Name: "end_at_step", Type: TypeInt, Default: int64(10000), Min: int64(0), Max: int64(10000), Extra: []KV{{"advanced", true}}},
			{Name: "return_with_leftover_noise", Type: TypeCombo, Options: []string{"disable", "enable"}, Extra: []KV{{"advanced", true}}},
		},
		Outputs: []OutputSpec{{Type: TypeLatent}},
	}
}

func (ksamplerAdvanced) Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	m, pos, neg, lat, err := samplingInputs(in)
	if err != nil {
		return nil, err
	}
	p := sampling.KSamplerParams{Seed: in.Uint64("noise_seed"), Steps: int(in.Int("steps")), CFG: in.Float("cfg"),
		Sampler: in.String("sampler_name"), Scheduler: in.String("scheduler"), Denoise: 1,
		DisableNoise: in.String("add_noise") == "disable",
		Range: &sampling.StepRange{Start: int(in.Int("start_at_step")), End: int(in.Int("end_at_step")),
			LeftoverNoise: in.String("return_with_leftover_noise") == "enable"}}
	return (&ksamplerCall{model: m, positive: pos, negative: neg, latent: lat, params: p}).run(ctx, rt)
}

func init() {
	register(ksampler{})
	register(ksamplerAdvanced{})
}
