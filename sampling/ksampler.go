package sampling

import (
	"context"
	"fmt"
	"math"
)

// KSamplerSigmas is comfy.samplers.KSampler.set_steps: the schedule for steps steps, or with
// denoise < 1 (0.9999 and above count as 1) the last steps+1 sigmas of the schedule computed
// for int(steps/denoise) steps, so that a partial denoise still makes steps model calls. With
// denoise <= 0 the schedule is empty (nothing is sampled; Sample returns the latent as is).
// It is the schedule of most samplers; SamplerSigmas gives the one of a named sampler.
func KSamplerSigmas(ms *FlowSampling, scheduler string, steps int, denoise float64) ([]float32, error) {
	return ksamplerSigmas(ms, scheduler, steps, denoise, false)
}

// SamplerSigmas is KSamplerSigmas for the named sampler: for dpm_2, dpm_2_ancestral, uni_pc and
// uni_pc_bh2 ComfyUI's KSampler computes each schedule for one step more and drops its
// second-to-last sigma.
func SamplerSigmas(ms *FlowSampling, sampler, scheduler string, steps int, denoise float64) ([]float32, error) {
	return ksamplerSigmas(ms, scheduler, steps, denoise, discardPenultimate[sampler])
}

func ksamplerSigmas(ms *FlowSampling, scheduler string, steps int, denoise float64, discard bool) ([]float32, error) {
	if steps < 1 {
		return nil, fmt.Errorf("%w: steps %d (must be at least 1)", ErrParam, steps)
	}
	if math.IsNaN(denoise) || denoise > 1 || denoise < 0 {
		return nil, fmt.Errorf("%w: denoise %v (must be in [0, 1])", ErrParam, denoise)
	}
	calc := func(n int) ([]float32, error) {
		if !discard {
			return CalculateSigmas(ms, scheduler, n)
		}
		s, err := CalculateSigmas(ms, scheduler, n+1)
		if err != nil {
			return nil, err
		}
		if len(s) >= 2 {
			s = append(s[:len(s)-2], s[len(s)-1])
		}
		return s, nil
	}
	if denoise > 0.9999 {
		return calc(steps)
	}
	if denoise <= 0 {
		if _, err := calc(steps); err != nil { // still reject bad names
			return nil, err
		}
		return []float32{}, nil
	}
	full := float64(steps) / denoise
	if full > maxScheduleSteps {
		return nil, fmt.Errorf("%w: steps %d with denoise %v need a %.0f-step schedule (limit %d)", ErrParam, steps, denoise, full, maxScheduleSteps)
	}
	sigmas, err := calc(int(full))
	if err != nil {
		return nil, err
	}
	if keep := steps + 1; len(sigmas) > keep {
		sigmas = sigmas[len(sigmas)-keep:]
	}
	return sigmas, nil
}

// StepRange holds KSamplerAdvanced's start_at_step, end_at_step and
// return_with_leftover_noise.
type StepRange struct {
	Start, End    int
	LeftoverNoise bool // "enable": keep the last sigma of a truncated run (force_full_denoise off)
}

// Apply is the truncation of comfy.samplers.KSampler.sample: with End below the last step the
// schedule is cut to sigmas[:End+1] and its last sigma set to 0 unless LeftoverNoise; then
// the first Start sigmas are dropped. skip reports that nothing is left to sample (ComfyUI
// then returns the input latent unchanged).
func (r StepRange) Apply(sigmas []float32) (out []float32, skip bool, err error) {
	if r.Start < 0 || r.End < 0 {
		return nil, false, fmt.Errorf("%w: step range start %d, end %d (must be >= 0)", ErrParam, r.Start, r.End)
	}
	out = append([]float32(nil), sigmas...)
	if r.End < len(out)-1 {
		out = out[:r.End+1]
		if !r.LeftoverNoise {
			out[len(out)-1] = 0
		}
	}
	if r.Start < len(out)-1 {
		return out[r.Start:], false, nil
	}
	return nil, true, nil
}

// Sample is ComfyUI's sample path below the KSampler node (CFGGuider.sample with KSAMPLER):
// latent is in VAE space (an all-zero latent is left as is, otherwise ProcessIn),
// x = NoiseScaling(sigmas[0], noise, latent), the sampler runs over sigmas, the result is
// inverse-noise-scaled with the last sigma and returned in VAE space (ProcessOut). An empty
// schedule returns a copy of latent.
func Sample(ctx context.Context, model Denoiser, ms *FlowSampling, format LatentFormat, sampler string, sigmas []float32, noise, latent *Latent, opts SamplerOptions) (*Latent, error) {
	if err := latent.Validate(); err != nil {
		return nil, fmt.Errorf("sample: latent: %w", err)
	}
	if len(sigmas) == 0 {
		return latent.Clone(), nil
	}
	if ms == nil {
		return nil, fmt.Errorf("%w: sample: no model sampling", ErrParam)
	}
	if !HasSampler(sampler) {
		return nil, fmt.Errorf("%w: unknown or unimplemented sampler %q (implemented: %v)", ErrParam, sampler, samplerNames)
	}
	if format.Scale == 0 {
		return nil, fmt.Errorf("%w: latent format %q has scale 0", ErrParam, format.Name)
	}
	if err := checkSame("sample: noise", latent, noise); err != nil {
		return nil, err
	}
	in := latent
	if !latent.IsZero() {
		in = format.ProcessIn(latent)
	}
	x, err := ms.NoiseScaling(sigmas[0], noise, in)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	if opts.Sampling == nil {
		opts.Sampling = ms
	}
	x, last, err := runSampler(ctx, sampler, model, x, sigmas, opts)
	if err != nil {
		return nil, err
	}
	x = ms.InverseNoiseScaling(last, x)
	return format.ProcessOut(x), nil
}

// KSamplerParams are the inputs of ComfyUI's KSampler / KSamplerAdvanced nodes (common_ksampler)
// besides the model, the conditionings and the latent.
type KSamplerParams struct {
	Sampling  *FlowSampling // the model's sampling (ModelSamplingAuraFlow shift)
	Format    LatentFormat  // the model's latent format (Flux for Z-Image)
	Seed      uint64        // seed / noise_seed
	Steps     int
	CFG       float64
	Sampler   string // sampler_name
	Scheduler string
	Denoise   float64 // 1 for text to image; 0 samples nothing
	// DisableNoise is KSamplerAdvanced add_noise = disable (zero noise).
	DisableNoise bool
	// Range is KSamplerAdvanced's step range; nil for KSampler.
	Range *StepRange
	// BatchIndex is the latent's optional batch_index (see PrepareNoise).
	BatchIndex []int
	// Callback, when set, receives every step.
	Callback Callback
}

// DefaultKSamplerParams returns the KSampler node defaults (seed 0, 20 steps, cfg 8, euler,
// simple, denoise 1) for the given model sampling and latent format.
func DefaultKSamplerParams(ms *FlowSampling, format LatentFormat) KSamplerParams {
	return KSamplerParams{Sampling: ms, Format: format, Steps: 20, CFG: 8, Sampler: "euler", Scheduler: "simple", Denoise: 1}
}

// KSample is common_ksampler: noise from the seed over the latent's shape (or zeros), the
// KSampler schedule (denoise, then the advanced step range), guidance from positive and
// negative (negative unused when cfg is 1), then Sample. It returns the new latent in VAE space.
func KSample(ctx context.Context, positive, negative Denoiser, latent *Latent, p KSamplerParams) (*Latent, error) {
	if err := latent.Validate(); err != nil {
		return nil, fmt.Errorf("ksampler: latent: %w", err)
	}
	if !HasSampler(p.Sampler) {
		return nil, fmt.Errorf("%w: ksampler: unknown or unimplemented sampler %q (implemented: %v)", ErrParam, p.Sampler, samplerNames)
	}
	if p.Sampling == nil {
		return nil, fmt.Errorf("%w: ksampler: no model sampling", ErrParam)
	}
	sigmas, err := SamplerSigmas(p.Sampling, p.Sampler, p.Scheduler, p.Steps, p.Denoise)
	if err != nil {
		return nil, fmt.Errorf("ksampler: %w", err)
	}
	if p.Range != nil {
		var skip bool
		sigmas, skip, err = p.Range.Apply(sigmas)
		if err != nil {
			return nil, fmt.Errorf("ksampler: %w", err)
		}
		if skip {
			return latent.Clone(), nil
		}
	}
	model, err := CFG(positive, negative, p.CFG)
	if err != nil {
		return nil, fmt.Errorf("ksampler: %w", err)
	}
	var noise *Latent
	if p.DisableNoise {
		noise, err = ZeroNoise(latent.Shape)
	} else {
		noise, err = PrepareNoise(latent.Shape, p.Seed, p.BatchIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("ksampler: %w", err)
	}
	out, err := Sample(ctx, model, p.Sampling, p.Format, p.Sampler, sigmas, noise, latent, SamplerOptions{Seed: p.Seed, Callback: p.Callback})
	if err != nil {
		return nil, fmt.Errorf("ksampler: %w", err)
	}
	return out, nil
}
