package sampling

import (
	"errors"
	"fmt"
	"math"
)

// TableSize is the number of entries of ComfyUI's discrete sigma table (timesteps = 1000).
const TableSize = 1000

// ErrParam reports an invalid sampling parameter (steps, denoise, shift, names, ranges).
var ErrParam = errors.New("sampling: invalid parameter")

// FlowSampling is ComfyUI's ModelSamplingDiscreteFlow with the CONST prediction type: the
// model sampling of flow-matching models (Z-Image, SD3, AuraFlow, Flux-like). The
// ModelSamplingAuraFlow node makes one with multiplier 1, ModelSamplingSD3 with multiplier 1000;
// the sigmas are the same, only Timestep differs.
type FlowSampling struct {
	shift      float64
	multiplier float64
	table      [TableSize]float32
}

// NewFlowSampling builds the table sigmas[i] = shift·t/(1 + (shift−1)·t), t = (i+1)/1000,
// in float32 as torch computes it.
func NewFlowSampling(shift, multiplier float64) (*FlowSampling, error) {
	if !(shift > 0) || math.IsInf(shift, 0) {
		return nil, fmt.Errorf("%w: shift %v (must be a positive finite number)", ErrParam, shift)
	}
	if !(multiplier > 0) || math.IsInf(multiplier, 0) {
		return nil, fmt.Errorf("%w: multiplier %v (must be a positive finite number)", ErrParam, multiplier)
	}
	m := &FlowSampling{shift: shift, multiplier: multiplier}
	mul := float32(multiplier)
	for i := range m.table {
		t := float32(i+1) / TableSize // torch.arange(1, 1001) / 1000 in float32
		m.table[i] = m.Sigma(float32(t * mul))
	}
	return m, nil
}

// Shift is the shift the table was built with.
func (m *FlowSampling) Shift() float64 { return m.shift }

// Multiplier is the timestep multiplier (1 for ModelSamplingAuraFlow, 1000 for SD3).
func (m *FlowSampling) Multiplier() float64 { return m.multiplier }

// Table returns a copy of the 1000 sigmas, lowest first (model_sampling.sigmas).
func (m *FlowSampling) Table() []float32 { return append([]float32(nil), m.table[:]...) }

// SigmaMin is sigmas[0].
func (m *FlowSampling) SigmaMin() float32 { return m.table[0] }

// SigmaMax is sigmas[999] (1 for any shift).
func (m *FlowSampling) SigmaMax() float32 { return m.table[TableSize-1] }

// Timestep is sigma·multiplier, the value the model embeds.
func (m *FlowSampling) Timestep(sigma float32) float32 { return sigma * float32(m.multiplier) }

// Sigma is time_snr_shift(shift, timestep/multiplier) in float32.
func (m *FlowSampling) Sigma(timestep float32) float32 {
	t := timestep / float32(m.multiplier)
	if m.shift == 1 {
		return t
	}
	num := float32(float32(m.shift) * t)
	den := 1 + float32(float32(m.shift-1)*t)
	return num / den
}

// PercentToSigma is ModelSamplingDiscreteFlow.percent_to_sigma (float64, as in Python).
func (m *FlowSampling) PercentToSigma(percent float64) float64 {
	if percent <= 0 {
		return 1
	}
	if percent >= 1 {
		return 0
	}
	t := 1 - percent
	if m.shift == 1 {
		return t
	}
	return m.shift * t / (1 + (m.shift-1)*t)
}

// NoiseScaling is CONST.noise_scaling: sigma·noise + (1 − sigma)·latent (latent in model
// space). With a zero latent this is sigma·noise.
func (m *FlowSampling) NoiseScaling(sigma float32, noise, latent *Latent) (*Latent, error) {
	if err := noise.Validate(); err != nil {
		return nil, fmt.Errorf("noise scaling: noise: %w", err)
	}
	if err := checkSame("noise scaling: latent", noise, latent); err != nil {
		return nil, err
	}
	out := noise.like()
	keep := 1 - sigma
	for i := range out.Data {
		out.Data[i] = float32(sigma*noise.Data[i]) + float32(keep*latent.Data[i])
	}
	return out, nil
}

// InverseNoiseScaling is CONST.inverse_noise_scaling: x/(1 − sigma) with the last sigma of the
// run (identity for sigma 0; a run stopped with leftover noise is rescaled).
func (m *FlowSampling) InverseNoiseScaling(sigma float32, x *Latent) *Latent {
	out := x.like()
	d := 1 - sigma
	for i, v := range x.Data {
		out.Data[i] = v / d
	}
	return out
}
