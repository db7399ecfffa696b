package sampling

import (
	"context"
	"fmt"
	"math"
)

// This file holds the single-step samplers of k-diffusion beyond euler/heun: the DPM-Solver-2
// family, DPM-Solver++(2S) ancestral, LCM, Heun++, gradient estimation and the CFG++ Euler
// samplers, each on ComfyUI's path for a CONST (flow) model.

// rfAncestral is the re-noising step of k-diffusion's *_RF ancestral samplers (ComfyUI's choice
// for CONST models): the step goes down to σ_down = σ_next·(1 + (σ_next/σ − 1)·eta), the
// result is scaled by (1 − σ_next)/(1 − σ_down) and noise·renoise is added.
type rfAncestral struct {
	down, alphaNext, alphaDown, renoise float32
}

func newRFAncestral(s, sn, eta float32) rfAncestral {
	ratio := 1 + float32(float32(sn/s-1)*eta)
	down := sn * ratio
	aNext := 1 - sn
	aDown := 1 - down
	num := float32(float32(down*down)*float32(aNext*aNext)) / float32(aDown*aDown)
	return rfAncestral{down: down, alphaNext: aNext, alphaDown: aDown, renoise: sqrt32(float32(sn*sn) - num)}
}

// renoiseInto is x = (α_next/α_down)·x + noise·renoise.
func (a rfAncestral) renoiseInto(x, noise *Latent) *Latent {
	scale := a.alphaNext / a.alphaDown
	out := x.like()
	for k, v := range x.Data {
		out.Data[k] = float32(scale*v) + float32(noise.Data[k]*a.renoise)
	}
	return out
}

// lin is a·x + b·y element-wise (each product rounded, as torch evaluates it).
func lin(a float32, x *Latent, b float32, y *Latent) *Latent {
	out := x.like()
	for k, v := range x.Data {
		out.Data[k] = float32(a*v) + float32(b*y.Data[k])
	}
	return out
}

// logMidpoint is exp(lerp(log σ, log σ', 0.5)), torch's lerp taking its weight ≥ 0.5 branch
// end − (end − start)·(1 − w).
func logMidpoint(s, sn float32) float32 {
	a, b := log32(s), log32(sn)
	return exp32(b - float32((b-a)*0.5))
}

// dpm2Step is the DPM-Solver-2 step of sample_dpm_2 from σ to target: an Euler half step to the
// log-midpoint, a second model call there, and the full step with the midpoint slope.
func dpm2Step(r *run, x, d *Latent, s, target float32, i int) (*Latent, error) {
	mid := logMidpoint(s, target)
	x2 := addScaled(x, d, mid-s)
	den2, err := r.denoise(x2, mid, i)
	if err != nil {
		return nil, err
	}
	return addScaled(x, toD(x2, den2, mid), target-s), nil
}

// sampleDPM2 is sample_dpm_2 with s_churn = 0 (Euler into σ = 0).
func sampleDPM2(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		d := toD(x, den, s)
		r.report(i, s, x, den)
		if sn == 0 {
			x = addScaled(x, d, sn-s)
			continue
		}
		if x, err = dpm2Step(r, x, d, s, sn, i); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// sampleDPM2AncestralRF is sample_dpm_2_ancestral_RF with eta = 1, s_noise = 1 (ComfyUI's
// dpm_2_ancestral for CONST models): the DPM-Solver-2 step down to σ_down, then the RF
// re-noising; Euler and no noise when σ_down is 0.
func sampleDPM2AncestralRF(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		a := newRFAncestral(s, sn, 1)
		r.report(i, s, x, den)
		d := toD(x, den, s)
		if a.down == 0 {
			x = addScaled(x, d, a.down-s)
			continue
		}
		if x, err = dpm2Step(r, x, d, s, a.down, i); err != nil {
			return nil, err
		}
		x = a.renoiseInto(x, r.nextNoise(x))
	}
	return x, nil
}

// sampleDPMPP2SAncestralRF is sample_dpmpp_2s_ancestral_RF with eta = 1, s_noise = 1 (ComfyUI's
// dpmpp_2s_ancestral for CONST models): a second model call at σ_s, the midpoint of σ and
// σ_down in λ = log((1 − σ)/σ) (0.9999 when σ is 1), interpolating x and the predictions
// linearly in σ, then the RF re-noising; Euler into σ = 0.
func sampleDPMPP2SAncestralRF(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	lambda := func(s float32) float32 { return log32(float32(1-s) / s) }
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		a := newRFAncestral(s, sn, 1)
		r.report(i, s, x, den)
		if sn == 0 {
			x = addScaled(x, toD(x, den, s), a.down-s)
		} else {
			sigmaS := float32(0.9999)
			if s != 1 {
				ti, td := lambda(s), lambda(a.down)
				h := td - ti
				mid := ti + float32(0.5*h)
				sigmaS = 1 / (exp32(mid) + 1)
			}
			ratio := sigmaS / s
			u := lin(ratio, x, 1-ratio, den)
			di, err := r.denoise(u, sigmaS, i)
			if err != nil {
				return nil, err
			}
			rd := a.down / s
			x = lin(rd, x, 1-rd, di)
		}
		if sn > 0 {
			x = a.renoiseInto(x, r.nextNoise(x))
		}
	}
	return x, nil
}

// sampleLCM is sample_lcm with its defaults (s_noise 1, no clipping): x becomes the prediction,
// re-noised to σ_next with fresh noise by CONST noise scaling σ·ε + (1 − σ)·x0.
func sampleLCM(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		r.report(i, s, x, den)
		x = den.Clone()
		if sn > 0 {
			x = lin(sn, r.nextNoise(x), 1-sn, x)
		}
	}
	return x, nil
}

// sampleHeunPP2 is sample_heunpp2 with s_churn = 0: Euler into the last sigma, Heun with the
// weights (1 − σ_next/2σ_0, σ_next/2σ_0) into the second-to-last, otherwise a third model call
// at σ_{i+2} and the weights (1 − w2 − w3, σ_{i+1}/3σ_0, σ_{i+2}/3σ_0).
func sampleHeunPP2(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	end := sigmas[len(sigmas)-1]
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		d := toD(x, den, s)
		r.report(i, s, x, den)
		dt := sn - s
		if sn == end {
			x = addScaled(x, d, dt)
			continue
		}
		x2 := addScaled(x, d, dt)
		den2, err := r.denoise(x2, sn, i)
		if err != nil {
			return nil, err
		}
		d2 := toD(x2, den2, sn)
		var dp *Latent
		if sigmas[i+2] == end {
			w2 := sn / (2 * sigmas[0])
			dp = lin(1-w2, d, w2, d2)
		} else {
			s2 := sigmas[i+2]
			x3 := addScaled(x2, d2, s2-sn)
			den3, err := r.denoise(x3, s2, i)
			if err != nil {
				return nil, err
			}
			d3 := toD(x3, den3, s2)
			w := 3 * sigmas[0]
			w2, w3 := sn/w, s2/w
			w1 := 1 - w2 - w3
			dp = lin(w1, d, w2, d2)
			for k, v := range d3.Data {
				dp.Data[k] += float32(w3 * v)
			}
		}
		x = addScaled(x, dp, dt)
	}
	return x, nil
}

// sampleGradientEstimation is sample_gradient_estimation with ge_gamma 2 (cfg_pp off): Euler
// plus (γ − 1)·(d − d_prev)·dt from the second step on; the last step into 0 returns x0.
func sampleGradientEstimation(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	const gamma = 2
	var old *Latent
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		d := toD(x, den, s)
		r.report(i, s, x, den)
		dt := sn - s
		if sn == 0 {
			x = den.Clone()
		} else {
			x = addScaled(x, d, dt)
			if i >= 1 {
				bar := d.like()
				for k, v := range d.Data {
					bar.Data[k] = float32((gamma - 1) * float32(v-old.Data[k]))
				}
				x = addScaled(x, bar, dt)
			}
		}
		old = d
	}
	return x, nil
}

// uncondDenoiser is a guided model that also returns the unconditional prediction of a call,
// as ComfyUI's post-CFG hook gives it to the CFG++ samplers (with the cfg 1 shortcut off).
type uncondDenoiser interface {
	denoiseWithUncond(ctx context.Context, x *Latent, sigma float32, step int) (denoised, uncond *Latent, err error)
}

// sampleEulerAncestralCFGPP is sample_euler_ancestral_cfg_pp with s_noise = 1 (eta 1:
// euler_ancestral_cfg_pp; eta 0 and no noise: euler_cfg_pp) for a CONST model:
// α = σ·e^{λ(σ)} with λ = −logit σ, d = (x − α_σ·uncond)/σ, get_ancestral_step on σ/α,
// x = α_next·x0 + α_next·σ_down·d, plus α_next·σ_up·noise; the last step returns x0.
func eulerAncestralCFGPP(r *run, x *Latent, sigmas []float32, eta float32) (*Latent, error) {
	name := "euler_ancestral_cfg_pp"
	if eta == 0 {
		name = "euler_cfg_pp"
	}
	m, ok := r.model.(uncondDenoiser)
	if !ok {
		return nil, fmt.Errorf("%w: %s needs the unconditional prediction: guide the model with CFG and a negative model (also at cfg 1)", ErrParam, name)
	}
	alpha := func(s float32) float32 { return s * exp32(-log32(s/(1-s))) }
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		if err := r.ctx.Err(); err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		den, unc, err := m.denoiseWithUncond(r.ctx, x, s, i)
		if err != nil {
			return nil, fmt.Errorf("step %d (sigma %g): %w", i, s, err)
		}
		if err := checkSame(fmt.Sprintf("step %d: model output", i), x, den); err != nil {
			return nil, err
		}
		if err := checkSame(fmt.Sprintf("step %d: unconditional output", i), x, unc); err != nil {
			return nil, err
		}
		r.report(i, s, x, den)
		if sn == 0 {
			x = den.Clone()
			continue
		}
		aS, aT := alpha(s), alpha(sn)
		d := x.like()
		for k, v := range x.Data {
			d.Data[k] = float32(v-float32(aS*unc.Data[k])) / s
		}
		down, up := ancestralStep(s/aS, sn/aT, eta)
		down = aT * down
		x = lin(aT, den, down, d)
		if eta > 0 {
			noise := r.nextNoise(x)
			for k, v := range noise.Data {
				x.Data[k] += float32(float32(aT*v) * up)
			}
		}
	}
	return x, nil
}

// gaussLegendre4 are the nodes and weights of the 4-point Gauss–Legendre rule on [−1, 1], exact
// for polynomials up to degree 7.
var gaussLegendre4 = [4][2]float64{
	{-0.8611363115940526, 0.3478548451374538},
	{-0.3399810435848563, 0.6521451548625461},
	{0.3399810435848563, 0.6521451548625461},
	{0.8611363115940526, 0.3478548451374538},
}

// lmsCoeff is k-diffusion's linear_multistep_coeff: the integral over [t_i, t_{i+1}] of the
// Lagrange basis polynomial ∏_{k≠j} (τ − t_{i−k})/(t_{i−j} − t_{i−k}). ComfyUI integrates it
// with scipy's quad; the integrand is a polynomial of degree order−1 ≤ 3, which the Gauss rule
// integrates exactly. The differences of the float32 sigmas are float32, as in numpy.
func lmsCoeff(order int, t []float32, i, j int) float64 {
	f := func(tau float64) float64 {
		prod := 1.0
		for k := 0; k < order; k++ {
			if k == j {
				continue
			}
			prod *= (tau - float64(t[i-k])) / float64(t[i-j]-t[i-k])
		}
		return prod
	}
	a, b := float64(t[i]), float64(t[i+1])
	half, mid := (b-a)/2, (a+b)/2
	sum := 0.0
	for _, nw := range gaussLegendre4 {
		sum += nw[1] * f(mid+half*nw[0])
	}
	return half * sum
}

// sampleLMS is sample_lms with order 4: the linear multistep method on the slopes
// d = (x − x0)/σ of the last up to four steps, with the Lagrange-interpolation coefficients
// of lmsCoeff; the last step into σ = 0 returns x0.
func sampleLMS(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	const order = 4
	var ds []*Latent
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		ds = append(ds, toD(x, den, s))
		if len(ds) > order {
			ds = ds[1:]
		}
		r.report(i, s, x, den)
		if sn == 0 {
			x = den.Clone()
			continue
		}
		cur := min(i+1, order)
		acc := x.like()
		for j := 0; j < cur; j++ {
			c := float32(lmsCoeff(cur, sigmas, i, j))
			d := ds[len(ds)-1-j]
			for k, v := range d.Data {
				if j == 0 {
					acc.Data[k] = c * v
				} else {
					acc.Data[k] += float32(c * v)
				}
			}
		}
		next := x.like()
		for k, v := range x.Data {
			next.Data[k] = v + acc.Data[k]
		}
		x = next
	}
	return x, nil
}

// historyPush appends d to a slope history of at most n entries, dropping the oldest.
func historyPush(buf []*Latent, d *Latent, n int) []*Latent {
	if len(buf) == n {
		copy(buf, buf[1:])
		buf[n-1] = d
		return buf
	}
	return append(buf, d)
}

// multistepUpdate is x + dt·(Σ c_k·d_k) with the sum taken left to right (d_0 the newest
// slope), then scaled by 1/div (the ipndm form dt·(Σ)/div when div ≠ 1, else dt·Σ).
func multistepUpdate(x *Latent, dt float32, coeffs []float32, ds []*Latent, div float32) *Latent {
	out := x.like()
	for k, v := range x.Data {
		acc := float32(coeffs[0] * ds[0].Data[k])
		for m := 1; m < len(coeffs); m++ {
			acc += float32(coeffs[m] * ds[m].Data[k])
		}
		step := float32(dt * acc)
		if div != 1 {
			step /= div
		}
		out.Data[k] = v + step
	}
	return out
}

// sampleIPNDM is sample_ipndm with max_order 4: Adams–Bashforth steps in σ with the fixed
// coefficients (3, −1)/2, (23, −16, 5)/12, (55, −59, 37, −9)/24 over the stored slopes; the
// last step into σ = 0 returns x0.
func sampleIPNDM(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	const maxOrder = 4
	var buf []*Latent
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		r.report(i, s, x, den)
		d := toD(x, den, s)
		order := min(maxOrder, i+1)
		dt := sn - s
		n := len(buf)
		switch {
		case sn == 0:
			x = den.Clone()
		case order == 1:
			x = addScaled(x, d, dt)
		case order == 2:
			x = multistepUpdate(x, dt, []float32{3, -1}, []*Latent{d, buf[n-1]}, 2)
		case order == 3:
			x = multistepUpdate(x, dt, []float32{23, -16, 5}, []*Latent{d, buf[n-1], buf[n-2]}, 12)
		default:
			x = multistepUpdate(x, dt, []float32{55, -59, 37, -9}, []*Latent{d, buf[n-1], buf[n-2], buf[n-3]}, 24)
		}
		buf = historyPush(buf, d, maxOrder-1)
	}
	return x, nil
}

// ipndmVCoeffs are the variable-step coefficients of sample_ipndm_v for the step from t[i] to
// t[i+1] with the given order (2 to 4), computed in float32 in upstream's order of operations.
func ipndmVCoeffs(t []float32, i, order int) []float32 {
	hn := t[i+1] - t[i]
	hn1 := t[i] - t[i-1]
	c1base := float32(2+hn/hn1) / 2
	c2base := -(hn / hn1) / 2
	if order == 2 {
		return []float32{c1base, c2base}
	}
	hn2 := t[i-1] - t[i-2]
	// temp = (1 − h_n/(3(h_n + h_{n−1}))·(h_n(h_n + h_{n−1}))/(h_{n−1}(h_{n−1} + h_{n−2})))/2
	q := hn / float32(3*float32(hn+hn1))
	q = float32(q * float32(hn*float32(hn+hn1)))
	q /= float32(hn1 * float32(hn1+hn2))
	temp1 := float32(1-q) / 2
	if order == 3 {
		c1 := c1base + temp1
		c2 := c2base - float32(float32(1+hn1/hn2)*temp1)
		c3 := float32(temp1*hn1) / hn2
		return []float32{c1, c2, c3}
	}
	hn3 := t[i-2] - t[i-3]
	s01 := float32(hn + hn1)
	s012 := float32(s01 + hn2)
	a := float32(1-hn/float32(3*s01)) / 2
	b := float32(float32(1-hn/float32(2*s01))*hn) / float32(6*s012)
	num := float32(float32(hn*s01) * s012)
	den := float32(float32(hn1*float32(hn1+hn2)) * float32(float32(hn1+hn2)+hn3))
	temp2 := float32(float32(a+b)*num) / den
	ratio := float32(hn1*float32(hn1+hn2)) / float32(hn2*float32(hn2+hn3))
	c1 := float32(c1base+temp1) + temp2
	c2 := float32(c2base-float32(float32(1+hn1/hn2)*temp1)) - float32(float32(float32(1+hn1/hn2)+ratio)*temp2)
	c3 := float32(float32(temp1*hn1)/hn2) + float32(float32(hn1/hn2+float32(ratio*float32(1+hn2/hn3)))*temp2)
	c4 := float32(float32(float32(-temp2*ratio)*hn1) / hn2)
	return []float32{c1, c2, c3, c4}
}

// sampleIPNDMV is sample_ipndm_v with max_order 4: the variable-step version of ipndm.
func sampleIPNDMV(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	const maxOrder = 4
	var buf []*Latent
	for i := 0; i < len(sigmas)-1; i++ {
		s, sn := sigmas[i], sigmas[i+1]
		den, err := r.denoise(x, s, i)
		if err != nil {
			return nil, err
		}
		r.report(i, s, x, den)
		d := toD(x, den, s)
		order := min(maxOrder, i+1)
		switch {
		case sn == 0:
			x = den.Clone()
		case order == 1:
			x = addScaled(x, d, sn-s)
		default:
			ds := []*Latent{d}
			for k := 1; k < order; k++ {
				ds = append(ds, buf[len(buf)-k])
			}
			x = multistepUpdate(x, sn-s, ipndmVCoeffs(sigmas, i, order), ds, 1)
		}
		buf = historyPush(buf, d, maxOrder-1)
	}
	return x, nil
}

// logit32 is torch.logit of a 0-dim float32 tensor: +Inf at 1, else log(σ/(1 − σ)) with
// glibc's logf, as torch's scalar kernel computes it.
func logit32(s float32) float32 {
	if s == 1 {
		return float32(math.Inf(1))
	}
	return glibcLogf(s / (1 - s))
}
