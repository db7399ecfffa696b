package dype

import "math"

// KT is the DyPE time factor k_t = dypeScale·σ^dypeExponent (compute_k_t). As in Python,
// 0^0 = 1, so an exponent of 0 gives k_t = dypeScale at every σ.
func KT(sigma, dypeScale, dypeExponent float64) float64 {
	return dypeScale * math.Pow(sigma, dypeExponent)
}

// TNorm is the normalised time used by mscale and the comfy blend: 1 when σ > startSigma,
// else σ/startSigma.
func TNorm(sigma, startSigma float64) float64 {
	if sigma > startSigma {
		return 1.0
	}
	return sigma / startSigma
}

// MScale is LD's compute_mscale (the attention-temperature amplitude of vision_yarn):
// 1 when scaleGlobal ≤ 1, else 1 + (0.1·ln s)·t_norm^λt.
func MScale(scaleGlobal, sigma float64, cfg Config) float64 {
	if scaleGlobal <= 1.0 {
		return 1.0
	}
	return mscaleSchedule(0.1, scaleGlobal, sigma, cfg)
}

// mscaleSchedule evaluates 1 + (coef·ln s + 1 − 1)·t_norm^λt in upstream's operation order.
func mscaleSchedule(coef, scale, sigma float64, cfg Config) float64 {
	start := float64(coef*math.Log(scale)) + 1.0
	const end = 1.0
	tn := TNorm(sigma, cfg.DypeStartSigma)
	return end + float64((start-end)*math.Pow(tn, cfg.DypeExponent))
}

// ComfyMScale is CD's Z-Image mscale: 1 + (0.05·ln s)·t_norm^λt when s > 1 and the embedder's
// DyPE flag is on, else 1.
func ComfyMScale(scaleHint, sigma float64, dypeFlag bool, cfg Config) float64 {
	if scaleHint > 1.0 && dypeFlag {
		return mscaleSchedule(0.05, scaleHint, sigma, cfg)
	}
	return 1.0
}

// BlendToFullScale is the factor that blends stretched (PI) positions towards integer ones:
// 0 when disabled, else 1 − t_norm^λt (LD _blend_to_full_scale; CD gates it with its DyPE flag).
func BlendToFullScale(sigma float64, enabled bool, cfg Config) float64 {
	if !enabled {
		return 0.0
	}
	tn := TNorm(sigma, cfg.DypeStartSigma)
	return 1.0 - math.Pow(tn, cfg.DypeExponent)
}

// ComputeDypeShift is LD's compute_dype_shift: base_shift when maxSeqLen ≤ baseSeqLen, else the
// line through (baseSeqLen, base_shift) and (maxSeqLen, max_shift) evaluated at imageSeqLen
// (extrapolating outside, no clamp). Call it with maxSeqLen = imageSeqLen for ComfyUI/official
// behaviour (max_shift whenever the image exceeds the base).
func ComputeDypeShift(imageSeqLen, baseSeqLen, maxSeqLen int, cfg Config) float64 {
	if maxSeqLen <= baseSeqLen {
		return cfg.BaseShift
	}
	slope := (cfg.MaxShift - cfg.BaseShift) / float64(maxSeqLen-baseSeqLen)
	intercept := cfg.BaseShift - float64(slope*float64(baseSeqLen))
	return float64(float64(imageSeqLen)*slope) + intercept
}

// LLMDiTShift is the μ reported for llm_dit mode: ComputeDypeShift(n, n_base, n) with
// n = ((H/8)/2)·((W/8)/2) and n_base = ((R/8)/2)².
func LLMDiTShift(cfg Config, width, height int) float64 {
	n := ((height / 8) / 2) * ((width / 8) / 2)
	g := cfg.BasePatchGrid()
	return ComputeDypeShift(n, g*g, n, cfg)
}

// ComfyShift is the μ that ComfyUI-DyPE's node sets on the model sampling (Flux-style
// σ(t) = e^μ/(e^μ + 1/t − 1)), from the node's width and height in pixels. baseSeqLen is
// axes_lens[1]·axes_lens[2] (262144 for Z-Image), or ((R/8)/2)² for a model without axes_lens.
// ok is false when the node sets none (enable_dype off).
func ComfyShift(cfg Config, width, height, baseSeqLen int) (mu float64, ok bool) {
	if !cfg.Enabled {
		return 0, false
	}
	lh, lw := height/8, width/8
	n := ceilDiv(lh, PatchSize) * ceilDiv(lw, PatchSize)
	mu = ComputeDypeShift(n, baseSeqLen, n, cfg)
	if mu < 0 {
		mu = 0
	}
	return mu, true
}

// LLMDiTScaleHint is LD patch_zimage_rope's scale hint: max(1, ((h/8)/2)/g, ((w/8)/2)/g) with
// g = (R/8)/2 (integer floors). Upstream stores it but never computes with it.
func LLMDiTScaleHint(cfg Config, width, height int) float64 {
	g := float64(cfg.BasePatchGrid())
	th := float64((height / 8) / 2)
	tw := float64((width / 8) / 2)
	return math.Max(1.0, math.Max(th/g, tw/g))
}

// ClampScaleHint is set_scale_hint's clamp: max(1, v) (NaN gives 1, as Python's max does).
func ClampScaleHint(v float64) float64 {
	if v > 1.0 {
		return v
	}
	return 1.0
}

// ComfyScaleHint is the scale CD's patched patchify sets: 1/min(R/max(1,h), R/max(1,w)) from the
// node's requested width and height, clamped to ≥ 1. It also returns the isotropic position
// scale min(R/h, R/w).
func ComfyScaleHint(baseResolution, width, height int) (hint, iso float64) {
	sy := float64(baseResolution) / math.Max(1.0, float64(height))
	sx := float64(baseResolution) / math.Max(1.0, float64(width))
	iso = math.Min(sy, sx)
	return ClampScaleHint(1.0 / iso), iso
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
