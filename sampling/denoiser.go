package sampling

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Denoiser is the model as the samplers see it: given the current latent x (model space,
// [B, C, H, W]) at noise level sigma, return the denoised estimate x0 of the same shape. For a
// flow model that is x − sigma·v(x, sigma·multiplier). step is the index of the sampler step
// making the call (a second-order sampler makes two calls with the same index).
//
// Implementations must not keep or modify x; the sampler does not modify what they return.
type Denoiser interface {
	Denoise(ctx context.Context, x *Latent, sigma float32, step int) (*Latent, error)
}

// DenoiserFunc adapts a function to Denoiser.
type DenoiserFunc func(ctx context.Context, x *Latent, sigma float32, step int) (*Latent, error)

// Denoise calls f.
func (f DenoiserFunc) Denoise(ctx context.Context, x *Latent, sigma float32, step int) (*Latent, error) {
	return f(ctx, x, sigma, step)
}

// ErrCFG reports a guidance configuration that cannot run.
var ErrCFG = errors.New("sampling: bad cfg")

// CFG combines a positive and a negative denoiser like ComfyUI's sampling_function and
// cfg_function: denoised = uncond + (cond − uncond)·scale in float32. When scale is 1 (to
// math.isclose precision) the negative pass is skipped and the positive prediction is returned
// unchanged; negative may then be nil. The CFG++ samplers (NeedsUncond) also get the
// unconditional prediction from the result, and need a negative even at scale 1, where they
// evaluate it as ComfyUI does (cfg1 optimisation disabled: uncond + (cond − uncond)·1).
func CFG(positive, negative Denoiser, scale float64) (Denoiser, error) {
	if positive == nil {
		return nil, fmt.Errorf("%w: no positive model", ErrCFG)
	}
	if math.IsNaN(scale) || math.IsInf(scale, 0) {
		return nil, fmt.Errorf("%w: scale %v", ErrCFG, scale)
	}
	if cfgIsOne(scale) {
		if negative == nil {
			return positive, nil
		}
		return &cfgDenoiser{pos: positive, neg: negative, scale: float32(scale), one: true}, nil
	}
	if negative == nil {
		return nil, fmt.Errorf("%w: scale %v needs a negative model", ErrCFG, scale)
	}
	return &cfgDenoiser{pos: positive, neg: negative, scale: float32(scale)}, nil
}

// cfgIsOne is math.isclose(scale, 1.0) with its default rel_tol 1e-9.
func cfgIsOne(scale float64) bool {
	return math.Abs(scale-1) <= 1e-9*math.Max(math.Abs(scale), 1)
}

type cfgDenoiser struct {
	pos, neg Denoiser
	scale    float32
	one      bool // scale 1: Denoise skips the negative
}

func (c *cfgDenoiser) Denoise(ctx context.Context, x *Latent, sigma float32, step int) (*Latent, error) {
	if c.one {
		return c.pos.Denoise(ctx, x, sigma, step)
	}
	out, _, err := c.denoiseWithUncond(ctx, x, sigma, step)
	return out, err
}

func (c *cfgDenoiser) denoiseWithUncond(ctx context.Context, x *Latent, sigma float32, step int) (denoised, uncond *Latent, err error) {
	cond, err := callModel(ctx, c.pos, x, sigma, step)
	if err != nil {
		return nil, nil, fmt.Errorf("cfg positive: %w", err)
	}
	uncond, err = callModel(ctx, c.neg, x, sigma, step)
	if err != nil {
		return nil, nil, fmt.Errorf("cfg negative: %w", err)
	}
	return CombineCFG(cond, uncond, c.scale), uncond, nil
}

// CombineCFG is uncond + (cond − uncond)·scale element-wise, each operation rounded to float32
// as torch does. cond and uncond must have the same shape.
func CombineCFG(cond, uncond *Latent, scale float32) *Latent {
	out := cond.like()
	for i, cv := range cond.Data {
		u := uncond.Data[i]
		out.Data[i] = u + float32(float32(cv-u)*scale)
	}
	return out
}

// callModel runs one model evaluation and checks what came back.
func callModel(ctx context.Context, m Denoiser, x *Latent, sigma float32, step int) (*Latent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("step %d: %w", step, err)
	}
	out, err := m.Denoise(ctx, x, sigma, step)
	if err != nil {
		return nil, fmt.Errorf("step %d (sigma %g): %w", step, sigma, err)
	}
	if err := checkSame(fmt.Sprintf("step %d: model output", step), x, out); err != nil {
		return nil, err
	}
	return out, nil
}
