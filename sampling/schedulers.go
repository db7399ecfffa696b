package sampling

import (
	"fmt"
	"math"
	"slices"
)

// schedulerNames lists ComfyUI's schedulers in its SCHEDULER_HANDLERS order.
var schedulerNames = []string{
	"simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
	"linear_quadratic", "kl_optimal",
}

// Schedulers returns the scheduler names, in ComfyUI's order (all of them are implemented).
func Schedulers() []string { return slices.Clone(schedulerNames) }

// maxScheduleSteps bounds a schedule's length (denoise makes it steps/denoise long).
const maxScheduleSteps = 1_000_000

// CalculateSigmas is comfy.samplers.calculate_sigmas: the sigma schedule of steps steps (plus
// the trailing 0; ddim_uniform may give a different count, as in ComfyUI), highest first.
func CalculateSigmas(ms *FlowSampling, scheduler string, steps int) ([]float32, error) {
	if ms == nil {
		return nil, fmt.Errorf("%w: scheduler %q: no model sampling", ErrParam, scheduler)
	}
	if steps < 1 || steps > maxScheduleSteps {
		return nil, fmt.Errorf("%w: scheduler %q: steps %d (must be 1..%d)", ErrParam, scheduler, steps, maxScheduleSteps)
	}
	switch scheduler {
	case "simple":
		return simpleScheduler(ms, steps), nil
	case "sgm_uniform":
		return normalScheduler(ms, steps, true), nil
	case "karras":
		return karrasSigmas(steps, ms.SigmaMin(), ms.SigmaMax(), 7), nil
	case "exponential":
		return exponentialSigmas(steps, ms.SigmaMin(), ms.SigmaMax()), nil
	case "ddim_uniform":
		return ddimUniformScheduler(ms, steps), nil
	case "beta":
		return betaScheduler(ms, steps, 0.6, 0.6)
	case "normal":
		return normalScheduler(ms, steps, false), nil
	case "linear_quadratic":
		return linearQuadraticScheduler(ms, steps, 0.025), nil
	case "kl_optimal":
		if steps < 2 {
			return nil, fmt.Errorf("%w: scheduler kl_optimal needs at least 2 steps (ComfyUI divides by steps-1)", ErrParam)
		}
		return klOptimalSigmas(steps, ms.SigmaMin(), ms.SigmaMax()), nil
	}
	return nil, fmt.Errorf("%w: unknown scheduler %q (known: %v)", ErrParam, scheduler, schedulerNames)
}

// simpleScheduler picks steps sigmas evenly by index from the table, highest first, then 0.
func simpleScheduler(ms *FlowSampling, steps int) []float32 {
	ss := float64(TableSize) / float64(steps)
	out := make([]float32, 0, steps+1)
	for x := 0; x < steps; x++ {
		out = append(out, ms.table[TableSize-1-int(float64(x)*ss)])
	}
	return append(out, 0)
}

// ddimUniformScheduler takes every (1000/steps)-th table entry from index 1 upwards, reversed,
// with a trailing 0 unless the table starts at ~0.
func ddimUniformScheduler(ms *FlowSampling, steps int) []float32 {
	var sigs []float32
	if math.Abs(float64(ms.table[1])) <= 1e-5 { // math.isclose(sigmas[1], 0, abs_tol=1e-5)
		steps++
	} else {
		sigs = []float32{0}
	}
	ss := max(TableSize/steps, 1)
	for x := 1; x < TableSize; x += ss {
		sigs = append(sigs, ms.table[x])
	}
	slices.Reverse(sigs)
	return sigs
}

// normalScheduler is normal_scheduler: timesteps linear between timestep(sigma_max) and
// timestep(sigma_min) (sgm: steps+1 points, the last dropped), mapped through Sigma, then 0.
func normalScheduler(ms *FlowSampling, steps int, sgm bool) []float32 {
	start := float64(ms.Timestep(ms.SigmaMax()))
	end := float64(ms.Timestep(ms.SigmaMin()))
	appendZero := true
	var ts []float32
	if sgm {
		ts = linspace32(start, end, steps+1)
		ts = ts[:len(ts)-1]
	} else {
		if math.Abs(float64(ms.Sigma(float32(end)))) <= 1e-5 {
			steps++
			appendZero = false
		}
		ts = linspace32(start, end, steps)
	}
	out := make([]float32, 0, len(ts)+1)
	for _, t := range ts {
		out = append(out, ms.Sigma(t))
	}
	if appendZero {
		out = append(out, 0)
	}
	return out
}

// karrasSigmas is k-diffusion get_sigmas_karras (rho 7) with the trailing 0.
func karrasSigmas(n int, sigmaMin, sigmaMax float32, rho float64) []float32 {
	ramp := linspace32(0, 1, n)
	minInv := math.Pow(float64(sigmaMin), 1/rho)
	maxInv := math.Pow(float64(sigmaMax), 1/rho)
	diff := float32(minInv - maxInv)
	out := make([]float32, n+1)
	for i, r := range ramp {
		b := float32(maxInv) + float32(r*diff)
		out[i] = float32(math.Pow(float64(b), rho))
	}
	return out
}

// exponentialSigmas is get_sigmas_exponential: exp of a float32 linspace from log(sigma_max)
// to log(sigma_min), then 0.
func exponentialSigmas(n int, sigmaMin, sigmaMax float32) []float32 {
	ls := linspace32(math.Log(float64(sigmaMax)), math.Log(float64(sigmaMin)), n)
	out := make([]float32, n+1)
	for i, v := range ls {
		out[i] = exp32(v)
	}
	return out
}

// linearQuadraticScheduler is linear_quadratic_schedule (Mochi): linear to threshold_noise over
// the first half, quadratic after, computed in float64, scaled by sigma_max in float32.
func linearQuadraticScheduler(ms *FlowSampling, steps int, threshold float64) []float32 {
	var sched []float64
	if steps == 1 {
		sched = []float64{1, 0}
	} else {
		linear := steps / 2
		for i := 0; i < linear; i++ {
			sched = append(sched, float64(i)*threshold/float64(linear))
		}
		diff := float64(linear) - threshold*float64(steps)
		quadSteps := float64(steps - linear)
		quadCoef := diff / (float64(linear) * quadSteps * quadSteps)
		linCoef := threshold/float64(linear) - 2*diff/(quadSteps*quadSteps)
		konst := quadCoef * float64(linear) * float64(linear)
		for i := linear; i < steps; i++ {
			fi := float64(i)
			sched = append(sched, quadCoef*(fi*fi)+linCoef*fi+konst)
		}
		sched = append(sched, 1)
		for i := range sched {
			sched[i] = 1 - sched[i]
		}
	}
	out := make([]float32, len(sched))
	for i, v := range sched {
		out[i] = float32(v) * ms.SigmaMax()
	}
	return out
}

// klOptimalSigmas is kl_optimal_scheduler: tan of a float32 interpolation between
// atan(sigma_max) and atan(sigma_min), then 0.
func klOptimalSigmas(n int, sigmaMin, sigmaMax float32) []float32 {
	aMin := float32(math.Atan(float64(sigmaMin)))
	aMax := float32(math.Atan(float64(sigmaMax)))
	div := float32(n - 1)
	out := make([]float32, n+1)
	for i := 0; i < n; i++ {
		adj := float32(i) / div
		v := float32(adj*aMin) + float32(float32(1-adj)*aMax)
		out[i] = float32(math.Tan(float64(v)))
	}
	return out
}

// betaScheduler is beta_scheduler: table indices at rint(ppf(1 − i/steps)·999) of a
// Beta(alpha, beta) distribution, consecutive duplicates dropped, then 0.
func betaScheduler(ms *FlowSampling, steps int, alpha, beta float64) ([]float32, error) {
	total := float64(TableSize - 1)
	out := make([]float32, 0, steps+1)
	last := math.NaN()
	for i := 0; i < steps; i++ {
		p := 1 - float64(i)*(1/float64(steps)) // 1 - numpy.linspace(0, 1, steps, endpoint=False)
		x, err := betaPPF(p, alpha, beta)
		if err != nil {
			return nil, fmt.Errorf("beta scheduler: %w", err)
		}
		t := math.RoundToEven(x * total)
		if t != last {
			out = append(out, ms.table[int(t)])
		}
		last = t
	}
	return append(out, 0), nil
}

// linspace32 is torch.linspace(start, end, steps) in float32 on the CPU as torch's AVX2 kernel
// computes it: whole chunks of 16 values (two vectors of 8) from a base value plus k·step
// (separately rounded), the rest one value at a time as start + step·i (first half) or
// end − step·(steps−1−i) (second half), each a fused multiply-add in that build. Checked bit
// for bit against torch 1.13 (testdata).
func linspace32(start, end float64, steps int) []float32 {
	if steps <= 0 {
		return nil
	}
	s, e := float32(start), float32(end)
	if steps == 1 {
		return []float32{s}
	}
	step := (e - s) / float32(steps-1)
	half := steps / 2
	out := make([]float32, steps)
	scalar := func(idx int) float32 {
		if idx < half {
			return fmaf(step, float32(idx), s)
		}
		return fmaf(-step, float32(steps-idx-1), e)
	}
	const vec = 8
	i := 0
	for ; i <= steps-2*vec; i += 2 * vec {
		for h := 0; h < 2; h++ {
			idx := i + h*vec
			base := scalar(idx)
			out[idx] = base
			for k := 1; k < vec; k++ {
				out[idx+k] = base + float32(float32(k)*step)
			}
		}
	}
	for ; i < steps; i++ {
		out[i] = scalar(i)
	}
	return out
}

func exp32(v float32) float32 { return float32(math.Exp(float64(v))) }
