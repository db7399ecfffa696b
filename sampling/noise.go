package sampling

import (
	"fmt"
	"slices"
)

// PrepareNoise is ComfyUI's comfy.sample.prepare_noise: torch.manual_seed(seed) and one
// torch.randn over the whole latent shape (so the batch shares one generator stream; sample b
// is not the noise of a batch-1 run with the same seed, unless b = 0).
//
// batchIndex is the optional latent["batch_index"]: when set, one [1, ...] draw is made per
// index 0..max(batchIndex) from the same generator and sample b gets the draw for
// batchIndex[b], as ComfyUI does for latents split out of a larger batch.
func PrepareNoise(shape []int, seed uint64, batchIndex []int) (*Latent, error) {
	out, err := NewLatent(shape...)
	if err != nil {
		return nil, fmt.Errorf("prepare noise: %w", err)
	}
	g := NewGenerator(seed)
	if batchIndex == nil {
		g.Randn(out.Data)
		return out, nil
	}
	if len(batchIndex) != shape[0] {
		return nil, fmt.Errorf("prepare noise: %d batch indices for a batch of %d", len(batchIndex), shape[0])
	}
	maxIdx := 0
	for _, b := range batchIndex {
		if b < 0 {
			return nil, fmt.Errorf("prepare noise: negative batch index %d", b)
		}
		maxIdx = max(maxIdx, b)
	}
	if maxIdx > 1<<20 {
		return nil, fmt.Errorf("prepare noise: batch index %d too large", maxIdx)
	}
	per := out.Numel() / shape[0]
	draws := map[int][]float32{}
	one := make([]float32, per)
	for i := 0; i <= maxIdx; i++ {
		g.Randn(one)
		if slices.Contains(batchIndex, i) {
			draws[i] = slices.Clone(one)
		}
	}
	for b, idx := range batchIndex {
		copy(out.Data[b*per:(b+1)*per], draws[idx])
	}
	return out, nil
}

// ZeroNoise is prepare_empty_noise (KSamplerAdvanced with add_noise = disable).
func ZeroNoise(shape []int) (*Latent, error) {
	out, err := NewLatent(shape...)
	if err != nil {
		return nil, fmt.Errorf("zero noise: %w", err)
	}
	return out, nil
}

// NoiseSampler draws the per-step noise of the ancestral samplers: k-diffusion's
// default_noise_sampler, which on the CPU is a torch.Generator seeded with seed+1 giving one
// torch.randn of x's size per call.
type NoiseSampler struct {
	g *Generator
}

// NewNoiseSampler returns the sampler ComfyUI builds for a run with this seed (seed + 1,
// wrapping at 2^64 where torch would refuse the seed).
func NewNoiseSampler(seed uint64) *NoiseSampler {
	return &NoiseSampler{g: NewGenerator(seed + 1)}
}

// Next returns the next noise tensor shaped like x.
func (n *NoiseSampler) Next(like *Latent) *Latent {
	out := like.like()
	n.g.Randn(out.Data)
	return out
}
