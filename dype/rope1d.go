package dype

import (
	"errors"
	"fmt"
	"math"
)

// YaRN ramp ratios (β0, β1) and (γ0, γ1) of the community Dy-YaRN form.
const (
	Beta0  = 1.25
	Beta1  = 0.75
	Gamma0 = 16.0
	Gamma1 = 2.0
)

// maxRampIndex bounds correction-range indices; upstream's Python ints are unbounded, ours are
// not, and anything this far outside [0, dim) only means "all lanes on one side of the ramp".
const maxRampIndex = 1 << 30

// FindCorrectionFactor is the fractional frequency index whose wavelength fits numRotations
// full turns into maxPositions positions: d·ln(L/(2πr)) / (2·ln θ). Upstream raises
// ZeroDivisionError for r = 0 (or θ = 1) and ValueError when L/(2πr) ≤ 0; both are errors here.
func FindCorrectionFactor(numRotations float64, dim int, base, maxPositions float64) (float64, error) {
	if numRotations == 0 {
		return 0, errors.New("find_correction_factor: num_rotations is 0 (division by zero)")
	}
	den := 2 * math.Log(base)
	if den == 0 || math.IsNaN(den) {
		return 0, fmt.Errorf("find_correction_factor: base %v gives ln(base) = %v", base, den/2)
	}
	arg := maxPositions / (numRotations * 2 * math.Pi)
	if !(arg > 0) {
		return 0, fmt.Errorf("find_correction_factor: L/(2π·r) = %v is not positive (L=%v, r=%v)", arg, maxPositions, numRotations)
	}
	return (float64(dim) * math.Log(arg)) / den, nil
}

// FindCorrectionRange returns (max(⌊cf(lowRatio)⌋, 0), min(⌈cf(highRatio)⌉, dim−1)).
func FindCorrectionRange(lowRatio, highRatio float64, dim int, base, maxPositions float64) (low, high int, err error) {
	lo, err := FindCorrectionFactor(lowRatio, dim, base, maxPositions)
	if err != nil {
		return 0, 0, err
	}
	hi, err := FindCorrectionFactor(highRatio, dim, base, maxPositions)
	if err != nil {
		return 0, 0, err
	}
	lf, hf := math.Floor(lo), math.Ceil(hi)
	if math.IsNaN(lf) || math.IsNaN(hf) || math.Abs(lf) > maxRampIndex || math.Abs(hf) > maxRampIndex {
		return 0, 0, fmt.Errorf("find_correction_range: correction factors %v, %v out of range", lo, hi)
	}
	low, high = int(lf), int(hf)
	if low < 0 {
		low = 0
	}
	if high > dim-1 {
		high = dim - 1
	}
	return low, high, nil
}

// LinearRampMask is clamp((j − lo)/(hi − lo), 0, 1) for j = 0..n−1, computed in float32 as
// upstream (hi += 0.001 when lo == hi; hi < lo is not guarded).
func LinearRampMask(lo, hi float64, n int) []float32 {
	if lo == hi {
		hi += 0.001
	}
	den := float32(hi - lo)
	l := float32(lo)
	out := make([]float32, max(n, 0))
	for j := range out {
		v := (float32(j) - l) / den
		if v < 0 {
			v = 0
		} else if v > 1 {
			v = 1
		}
		out[j] = v
	}
	return out
}

// FindNewbaseNTK is the NTK-scaled base θ·s^(d/(d−2)).
func FindNewbaseNTK(dim int, base, scale float64) float64 {
	return base * math.Pow(scale, float64(dim)/float64(dim-2))
}

// freqIndices returns e_k = 2k/d, k = 0..d/2−1 (arange(0, d, 2)/d in float64).
func freqIndices(dim int) []float64 {
	e := make([]float64, dim/2)
	for k := range e {
		e[k] = float64(2*k) / float64(dim)
	}
	return e
}

// NTKFreqs is get_1d_ntk_pos_embed's angular frequencies ω_k = 1/(θ·f)^(2k/d), k < d/2 (no
// mscale). factor 1 is the vanilla RoPE frequency.
func NTKFreqs(dim int, theta, factor float64) []float64 {
	thetaNTK := theta * factor
	e := freqIndices(dim)
	for k, ek := range e {
		e[k] = 1.0 / math.Pow(thetaNTK, ek)
	}
	return e
}

// VanillaFreqs is the plain RoPE frequency θ^(−2k/d) (NTKFreqs with factor 1).
func VanillaFreqs(dim int, theta float64) []float64 { return NTKFreqs(dim, theta, 1.0) }

// VisionYarnParams are the inputs of get_1d_vision_yarn_pos_embed (CD get_1d_dype_yarn_pos_embed).
type VisionYarnParams struct {
	Dim          int
	Theta        float64
	LinearScale  float64 // s_lin, clamped to ≥ 1
	NTKScale     float64 // s_ntk, clamped to ≥ 1
	OriMaxPELen  float64 // L: the training length of this axis in tokens
	DyPE         bool    // raise the ramp ratios to the power k_t
	Sigma        float64 // current σ (used only with DyPE)
	DypeScale    float64 // λs
	DypeExponent float64 // λt
	// MScaleOverride, when set, replaces the default amplitude 1 + 0.1·ln(s_ntk)/√s_ntk.
	MScaleOverride *float64
}

// checkYarnDims rejects dims the YaRN formulas cannot handle (d/(d−2) needs d > 2).
func checkYarnDims(dim int, theta float64) error {
	if dim <= 2 || dim%2 != 0 {
		return fmt.Errorf("dim must be an even number > 2, got %d", dim)
	}
	if !(theta > 0) || theta == 1 || math.IsInf(theta, 0) {
		return fmt.Errorf("theta must be positive, finite and ≠ 1, got %v", theta)
	}
	return nil
}

// rampBlend returns ω_a·(1−M) + ω_b·M with M = 1 − ramp(range(r0, r1)) clamped to [0, K].
func rampBlend(omegaA, omegaB []float64, r0, r1 float64, dim int, theta, L float64) error {
	k := dim / 2
	low, high, err := FindCorrectionRange(r0, r1, dim, theta, L)
	if err != nil {
		return err
	}
	low = max(0, low)
	high = min(k, high)
	ramp := LinearRampMask(float64(low), float64(high), k)
	for i := range omegaA {
		m := 1 - float64(ramp[i])
		omegaA[i] = float64(omegaA[i]*(1-m)) + float64(omegaB[i]*m) // conversions forbid FMA fusion
	}
	return nil
}

// VisionYarnFreqs returns the per-lane angular frequencies and the amplitude of Vision-YaRN:
// lanes below the γ ramp keep θ^(−e_k), the band between the ramps uses NTK by s_ntk, lanes
// above the β ramp are divided by s_lin.
func VisionYarnFreqs(p VisionYarnParams) (omega []float64, mscale float64, err error) {
	if err := checkYarnDims(p.Dim, p.Theta); err != nil {
		return nil, 0, fmt.Errorf("vision_yarn: %w", err)
	}
	sLin := math.Max(p.LinearScale, 1.0)
	sNTK := math.Max(p.NTKScale, 1.0)
	if math.IsNaN(p.LinearScale) || math.IsNaN(p.NTKScale) || math.IsInf(sLin, 0) || math.IsInf(sNTK, 0) {
		return nil, 0, fmt.Errorf("vision_yarn: scales must be finite, got linear %v ntk %v", p.LinearScale, p.NTKScale)
	}
	b0, b1, g0, g1 := Beta0, Beta1, Gamma0, Gamma1
	if p.DyPE {
		kt := KT(p.Sigma, p.DypeScale, p.DypeExponent)
		b0, b1 = math.Pow(b0, kt), math.Pow(b1, kt)
		g0, g1 = math.Pow(g0, kt), math.Pow(g1, kt)
	}
	e := freqIndices(p.Dim)
	base := make([]float64, len(e))
	lin := make([]float64, len(e))
	ntk := make([]float64, len(e))
	newBase := FindNewbaseNTK(p.Dim, p.Theta, sNTK)
	for k, ek := range e {
		base[k] = 1.0 / math.Pow(p.Theta, ek)
		lin[k] = base[k] / sLin
		ntk[k] = 1.0 / math.Pow(newBase, ek)
	}
	// β: blend linear (PI) and NTK.
	if err := rampBlend(lin, ntk, b0, b1, p.Dim, p.Theta, p.OriMaxPELen); err != nil {
		return nil, 0, fmt.Errorf("vision_yarn: beta ramp: %w", err)
	}
	// γ: keep the highest frequencies original.
	if err := rampBlend(lin, base, g0, g1, p.Dim, p.Theta, p.OriMaxPELen); err != nil {
		return nil, 0, fmt.Errorf("vision_yarn: gamma ramp: %w", err)
	}
	if p.MScaleOverride != nil {
		mscale = *p.MScaleOverride
	} else {
		mscale = 1.0 + 0.1*math.Log(sNTK)/math.Sqrt(sNTK)
	}
	return lin, mscale, nil
}

// YarnParams are the inputs of get_1d_yarn_pos_embed.
type YarnParams struct {
	Dim          int
	Theta        float64
	MaxPELen     float64 // current length; s = max(MaxPELen/OriMaxPELen, 1)
	OriMaxPELen  float64 // training length L
	DyPE         bool
	Sigma        float64
	DypeScale    float64
	DypeExponent float64
	// Aggressive selects mscale 1 + 0.1·ln s (anisotropic / official v1) instead of
	// 1 + 0.1·ln(s)/√s.
	Aggressive bool
}

// YarnFreqs returns the per-lane angular frequencies and the (time-independent) amplitude of
// YaRN with one scale s for the linear and the NTK part.
func YarnFreqs(p YarnParams) (omega []float64, mscale float64, err error) {
	if err := checkYarnDims(p.Dim, p.Theta); err != nil {
		return nil, 0, fmt.Errorf("yarn: %w", err)
	}
	s := math.Max(p.MaxPELen/p.OriMaxPELen, 1.0)
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, 0, fmt.Errorf("yarn: scale max_pe_len/ori_max_pe_len = %v/%v is not finite", p.MaxPELen, p.OriMaxPELen)
	}
	e := freqIndices(p.Dim)
	base := make([]float64, len(e))
	lin := make([]float64, len(e))
	ntk := make([]float64, len(e))
	newBase := FindNewbaseNTK(p.Dim, p.Theta, s)
	for k, ek := range e {
		tp := math.Pow(p.Theta, ek)
		base[k] = 1.0 / tp
		lin[k] = 1.0 / (s * tp)
		ntk[k] = 1.0 / math.Pow(newBase, ek)
	}
	b0, b1, g0, g1 := Beta0, Beta1, Gamma0, Gamma1
	if p.DyPE {
		kt := KT(p.Sigma, p.DypeScale, p.DypeExponent)
		b0, b1 = math.Pow(b0, kt), math.Pow(b1, kt)
		g0, g1 = math.Pow(g0, kt), math.Pow(g1, kt)
	}
	if err := rampBlend(lin, ntk, b0, b1, p.Dim, p.Theta, p.OriMaxPELen); err != nil {
		return nil, 0, fmt.Errorf("yarn: beta ramp: %w", err)
	}
	if err := rampBlend(lin, base, g0, g1, p.Dim, p.Theta, p.OriMaxPELen); err != nil {
		return nil, 0, fmt.Errorf("yarn: gamma ramp: %w", err)
	}
	switch {
	case s <= 1.0:
		mscale = 1.0
	case p.Aggressive:
		mscale = float64(0.1*math.Log(s)) + 1.0
	default:
		mscale = 1.0 + 0.1*math.Log(s)/math.Sqrt(s)
	}
	return lin, mscale, nil
}

// Table returns the float32 cos and sin of mscale·exp(i·p·ω) for every position (rows) and
// lane (columns): len(positions)·len(omega) values each, row-major. The angle p·ω is formed in
// float64 and rounded to float32 before cos/sin, as diffusers' Z-Image RoPE does, so vanilla
// frequencies with mscale 1 give exactly the plain Z-Image table.
func Table(omega []float64, mscale float64, positions []float64) (cos, sin []float32) {
	k := len(omega)
	cos = make([]float32, len(positions)*k)
	sin = make([]float32, len(positions)*k)
	for i, p := range positions {
		fillRow(cos[i*k:(i+1)*k], sin[i*k:(i+1)*k], omega, mscale, p)
	}
	return cos, sin
}

// fillRow writes one row of lanes.
func fillRow(cos, sin []float32, omega []float64, mscale, p float64) {
	for j, w := range omega {
		a := float64(float32(p * w))
		s, c := math.Sincos(a)
		if mscale != 1 {
			c *= mscale
			s *= mscale
		}
		cos[j] = float32(c)
		sin[j] = float32(s)
	}
}
