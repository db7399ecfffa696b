package sampling

import (
	"fmt"
	"slices"

	"github.com/dypegraph/dypegraph/sampling/brownian"
)

// The SDE samplers of k-diffusion (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde) for a CONST model,
// in half-log-SNR time λ = −logit σ. Their noise comes from the run's NoiseFunc (see
// SamplerOptions.SDENoise): by default ComfyUI's BrownianTreeNoiseSampler, reproduced bit for
// bit by package brownian.

// torchRandn is the brownian.RandnFunc of this package's generator: torch.randn of len(dst)
// float32 values on a CPU generator freshly seeded with seed (torch.Generator().manual_seed).
func torchRandn(seed uint32, dst []float32) { NewGenerator(uint64(seed)).Randn(dst) }

// BrownianTreeNoise is the default SamplerOptions.SDENoise: ComfyUI's
// BrownianTreeNoiseSampler(x, sigmaMin, sigmaMax, seed=seed, cpu=True), the torchsde
// BrownianTree the SDE samplers build from the KSampler seed (all 64 bits), whose
// noise(σ, σ_next) = W(σ, σ_next)/sqrt(|σ_next − σ|) is bit-identical to ComfyUI's on an x86-64
// CPU. It keeps a few tree nodes and at most 46 noise tensors shaped like like. An interval of
// zero length, or one finer than the tree's 1e-6 time resolution, is an error where ComfyUI
// divides 0 by 0 or recurses forever.
func BrownianTreeNoise(like *Latent, sigmaMin, sigmaMax float32, seed uint64) (NoiseFunc, error) {
	if err := like.Validate(); err != nil {
		return nil, fmt.Errorf("brownian tree noise: %w", err)
	}
	ns, err := brownian.NewTreeNoiseSampler(seed, like.Shape, sigmaMin, sigmaMax, torchRandn)
	if err != nil {
		return nil, err
	}
	return func(sigma, sigmaNext float32) (*Latent, error) {
		data, err := ns.Sample(sigma, sigmaNext)
		if err != nil {
			return nil, err
		}
		return &Latent{Shape: slices.Clone(like.Shape), Data: data}, nil
	}, nil
}

// halfLogSNR is sigma_to_half_log_snr for a CONST model: −logit σ.
func halfLogSNR(s float32) float32 { return -logit32(s) }

// halfLogSNRToSigma is half_log_snr_to_sigma for a CONST model: sigmoid(−λ), which torch's
// scalar kernel computes as 1/(1 + exp(λ)) with glibc's expf (the midpoint sigma of dpmpp_sde,
// where the Brownian tree is queried, is bit-identical only so).
func halfLogSNRToSigma(l float32) float32 { return 1 / (1 + glibcExpf(l)) }

// offsetFirstSigma is offset_first_sigma_for_snr: a first sigma of 1 or more (λ = −∞) becomes
// percent_to_sigma(1e-4). It returns a copy.
func offsetFirstSigma(ms *FlowSampling, sigmas []float32) []float32 {
	sig := slices.Clone(sigmas)
	if len(sig) > 1 && sig[0] >= 1 {
		sig[0] = float32(ms.PercentToSigma(1e-4))
	}
	return sig
}

// sampleDPMPPSDE is sample_dpmpp_sde (DPM-Solver++ stochastic, eta 1, s_noise 1, r = 1/2):
// per step a first-order ancestral half step to λ_s + h/2 (model call there), then the
// ancestral step to σ_next with the second prediction; noise over (σ, σ_s1) and (σ, σ_next);
// the last step into σ = 0 returns x0.
func sampleDPMPPSDE(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	ms, err := r.modelSampling("dpmpp_sde")
	if err != nil {
		return nil, err
	}
	noiseAt, err := r.sdeNoise(x, sigmas)
	if err != nil {
		return nil, err
	}
	const eta, rr = 1, 0.5
	const fac = 1 / (2 * rr)
	sig := offsetFirstSigma(ms, sigmas)
	for i := 0; i < len(sig)-1; i++ {
		s, sn := sig[i], sig[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		r.report(i, s, x, den)
		if sn == 0 {
			x = den.Clone()
			continue
		}
		ls, lt := halfLogSNR(s), halfLogSNR(sn)
		h := lt - ls
		ls1 := ls + float32(rr*h)
		s1 := halfLogSNRToSigma(ls1)
		alphaS := s * exp32(ls)
		alphaS1 := s1 * exp32(ls1)
		alphaT := sn * exp32(lt)

		// Step 1: ancestral step in the VE sigmas e^{−λ} to λ_s1.
		sd, su := ancestralStep(exp32(-ls), exp32(-ls1), eta)
		hh := -log32(sd) - ls
		c1 := float32(alphaS1/alphaS) * exp32(-hh)
		c2 := alphaS1 * expm132(-hh)
		x2 := x.like()
		for k, v := range x.Data {
			x2.Data[k] = float32(c1*v) - float32(c2*den.Data[k])
		}
		noise, err := noiseAt(s, s1)
		if err != nil {
			return nil, err
		}
		for k, v := range noise.Data {
			x2.Data[k] += float32(float32(alphaS1*v) * su)
		}
		den2, err := r.denoise(x2, s1, i)
		if err != nil {
			return nil, err
		}

		// Step 2.
		sd, su = ancestralStep(exp32(-ls), exp32(-lt), eta)
		hh = -log32(sd) - ls
		dd := lin(1-fac, den, fac, den2)
		c1 = float32(alphaT/alphaS) * exp32(-hh)
		c2 = alphaT * expm132(-hh)
		next := x.like()
		for k, v := range x.Data {
			next.Data[k] = float32(c1*v) - float32(c2*dd.Data[k])
		}
		if noise, err = noiseAt(s, sn); err != nil {
			return nil, err
		}
		for k, v := range noise.Data {
			next.Data[k] += float32(float32(alphaT*v) * su)
		}
		x = next
	}
	return x, nil
}

// sampleDPMPP3MSDE is sample_dpmpp_3m_sde (eta 1, s_noise 1): the data-prediction exponential
// step, the second-order correction φ2·d from the second step on and the third-order one
// φ2·d1 − φ3·d2 from the third, σ_next·sqrt(1 − e^{−2h})-scaled noise; the last step into
// σ = 0 returns x0.
func sampleDPMPP3MSDE(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	ms, err := r.modelSampling("dpmpp_3m_sde")
	if err != nil {
		return nil, err
	}
	noiseAt, err := r.sdeNoise(x, sigmas)
	if err != nil {
		return nil, err
	}
	const eta = 1
	sig := offsetFirstSigma(ms, sigmas)
	var den1, den2 *Latent
	var h, h1, h2 float32
	// hSet, have1, have2: h, h_1, h_2 are not None upstream.
	hSet, have1, have2 := false, false, false
	for i := 0; i < len(sig)-1; i++ {
		s, sn := sig[i], sig[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		r.report(i, s, x, den)
		if sn == 0 {
			x = den.Clone()
		} else {
			ls, lt := halfLogSNR(s), halfLogSNR(sn)
			h = lt - ls
			hSet = true
			hEta := h * (eta + 1)
			alphaT := sn * exp32(lt)
			decay := float32(sn/s) * exp32(float32(-h)*eta)
			c := alphaT * -expm132(-hEta)
			next := lin(decay, x, c, den)
			phi2 := expm132(-hEta)/hEta + 1
			switch {
			case have2:
				r0, r1 := h1/h, h2/h
				phi3 := phi2/hEta - 0.5
				a, b := alphaT*phi2, alphaT*phi3
				for k, v := range den.Data {
					d10 := float32(v-den1.Data[k]) / r0
					d11 := float32(den1.Data[k]-den2.Data[k]) / r1
					diff := d10 - d11
					d1 := d10 + float32(diff*r0)/(r0+r1)
					d2 := diff / (r0 + r1)
					next.Data[k] = float32(next.Data[k]+float32(a*d1)) - float32(b*d2)
				}
			case have1:
				rr := h1 / h
				a := alphaT * phi2
				for k, v := range den.Data {
					d := float32(v-den1.Data[k]) / rr
					next.Data[k] += float32(a * d)
				}
			}
			noiseScale := sqrt32(-expm132(float32(-2*h) * eta))
			noise, err := noiseAt(s, sn)
			if err != nil {
				return nil, err
			}
			for k, v := range noise.Data {
				next.Data[k] += float32(float32(v*sn) * noiseScale)
			}
			x = next
		}
		den1, den2 = den, den1
		h1, h2 = h, h1
		have1, have2 = hSet, have1
	}
	return x, nil
}
