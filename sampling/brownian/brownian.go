// Package brownian reproduces the noise of ComfyUI's BrownianTreeNoiseSampler, number for
// number: the torchsde BrownianTree (a BrownianInterval with halfway_tree, tol 1e-6,
// pool_size 24 and a 45-entry cache) that k-diffusion's SDE samplers (dpmpp_sde,
// dpmpp_2m_sde, dpmpp_3m_sde) build with cpu=True over [sigma_min, sigma_max] of the schedule,
// and its noise_sampler(sigma, sigma_next) = W(sigma, sigma_next) / sqrt(|sigma_next − sigma|).
//
// It owns the tree: numpy's SeedSequence seeding of each node, the dyadic splitting with
// torchsde's 6-decimal time rounding, the Brownian-bridge formula in torch's float32
// arithmetic and the sign and scaling of ComfyUI's wrapper. It does not own the normal
// generator: torch.randn on a freshly seeded CPU generator comes in as a RandnFunc (the
// sampling package's Generator provides it), so that sampling can use this package without an
// import cycle.
//
// With a bit-exact RandnFunc the noise is bit-identical to ComfyUI on an x86-64 CPU for the
// same seed, shape and float32 sigmas (checked against torchsde and ComfyUI in the tests).
// Differences from upstream: an interval of zero length (sigma == sigmaNext) is an error where
// ComfyUI divides 0 by 0, and queries torchsde cannot resolve at its 1e-6 time resolution
// (where it would recurse forever) are errors; batched per-sample seeds are not supported
// (ComfyUI's samplers pass one seed).
package brownian

import (
	"fmt"
	"math"
)

// RandnFunc fills dst like torch.randn(len(dst), dtype=torch.float32,
// generator=torch.Generator().manual_seed(seed)) on the CPU: a fresh generator per call.
// With the sampling package:
//
//	func(seed uint32, dst []float32) { sampling.NewGenerator(uint64(seed)).Randn(dst) }
type RandnFunc func(seed uint32, dst []float32)

// maxNumel bounds the noise tensor (4 GiB of float32).
const maxNumel = 1 << 30

// NoiseSampler is ComfyUI's BrownianTreeNoiseSampler(x, sigmaMin, sigmaMax, seed=seed,
// cpu=True) for a float32 x of the given shape. It keeps the tree's nodes (a few per query)
// and at most 46 noise tensors. It is not safe for concurrent use.
type NoiseSampler struct {
	shape []int
	tree  *tree
	sign  float32 // BatchedBrownianTree's sign of the construction interval
}

// NewTreeNoiseSampler builds the sampler ComfyUI's SDE samplers make for a run: seed is the
// KSampler seed (all 64 bits feed numpy's SeedSequence), shape that of the latent x, sigmaMin
// the smallest non-zero and sigmaMax the largest sigma of the schedule, randn the torch
// normal generator (see RandnFunc).
func NewTreeNoiseSampler(seed uint64, shape []int, sigmaMin, sigmaMax float32, randn RandnFunc) (*NoiseSampler, error) {
	if randn == nil {
		return nil, fmt.Errorf("brownian tree: no normal generator (RandnFunc is nil)")
	}
	if len(shape) == 0 {
		return nil, fmt.Errorf("brownian tree: empty shape; pass the latent's shape, e.g. [1 16 64 64]")
	}
	numel := 1
	for i, d := range shape {
		if d <= 0 {
			return nil, fmt.Errorf("brownian tree: dimension %d of shape %v is %d; every dimension must be positive", i, shape, d)
		}
		if numel > maxNumel/d {
			return nil, fmt.Errorf("brownian tree: shape %v has more than %d elements", shape, maxNumel)
		}
		numel *= d
	}
	if err := checkSigma("sigmaMin", sigmaMin); err != nil {
		return nil, fmt.Errorf("brownian tree: %w", err)
	}
	if err := checkSigma("sigmaMax", sigmaMax); err != nil {
		return nil, fmt.Errorf("brownian tree: %w", err)
	}
	if sigmaMin > sigmaMax {
		return nil, fmt.Errorf("brownian tree: sigmaMin %v is larger than sigmaMax %v; pass the schedule's smallest non-zero and its largest sigma", sigmaMin, sigmaMax)
	}
	// BatchedBrownianTree.sort: (a, b, 1) if a < b else (b, a, -1), so equal ends give -1.
	var sign float32 = -1
	if sigmaMin < sigmaMax {
		sign = 1
	}
	return &NoiseSampler{
		shape: append([]int(nil), shape...),
		tree:  newTree(seed, numel, float64(sigmaMin), float64(sigmaMax), randn),
		sign:  sign,
	}, nil
}

func checkSigma(name string, s float32) error {
	if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || s < 0 {
		return fmt.Errorf("%s is %v; sigmas must be finite and non-negative", name, s)
	}
	return nil
}

// Shape returns the shape of the noise tensors.
func (s *NoiseSampler) Shape() []int { return append([]int(nil), s.shape...) }

// Sample is noise_sampler(sigma, sigmaNext): the Brownian increment from sigma to sigmaNext
// divided by sqrt(|sigmaNext − sigma|), in float32, row-major in the sampler's shape. Times
// outside [sigmaMin, sigmaMax] are clamped to it for the increment, as torchsde does.
func (s *NoiseSampler) Sample(sigma, sigmaNext float32) ([]float32, error) {
	if err := checkSigma("sigma", sigma); err != nil {
		return nil, fmt.Errorf("brownian noise: %w", err)
	}
	if err := checkSigma("sigmaNext", sigmaNext); err != nil {
		return nil, fmt.Errorf("brownian noise: %w", err)
	}
	if sigma == sigmaNext {
		return nil, fmt.Errorf("brownian noise: sigma and sigmaNext are both %v; the noise of an empty interval is undefined (ComfyUI divides 0 by 0)", sigma)
	}
	lo, hi, sign := sigma, sigmaNext, float32(1)
	if !(lo < hi) {
		lo, hi, sign = hi, lo, -1
	}
	w, err := s.tree.query(float64(lo), float64(hi))
	if err != nil {
		return nil, fmt.Errorf("brownian noise over [%v, %v]: %w", lo, hi, err)
	}
	sign *= s.sign
	diff := sigmaNext - sigma
	denom := float32(math.Sqrt(math.Abs(float64(diff))))
	for i, v := range w {
		w[i] = float32(v*sign) / denom
	}
	return w, nil
}
