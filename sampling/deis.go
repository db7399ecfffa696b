package sampling

import "math"

// DEIS (ComfyUI's sample_deis with comfy/k_diffusion/deis.py, max_order 3, deis_mode "tab"):
// the sigmas are mapped to the VP time t of EDM's default schedule (σ_min 0.002, σ_max 80,
// ε_s 1e-3), and each step of order 2 or 3 uses the integrals of the Lagrange basis over the
// previous times against −½·d log α/dτ / sqrt(α(1 − α)), which upstream approximates by a
// 10000-point sum over torch.linspace; this file reproduces that sum (its float32 terms, the
// total accumulated in float64 where torch sums in float32).

const deisPoints = 10000

// deisTime is edm2t: vp_sigma_inv of the VP-SDE fitted to EDM's default sigma range, evaluated
// in float32 on the float32 sigmas, with β_d and β_min as torch computes them (one float32 log,
// one float64 log, float64 arithmetic).
type deisTime struct {
	betaD, betaMin float64
}

func newDEISTime() deisTime {
	sMin := float32(0.002)
	a := float32(math.Log(float64(float32(sMin*sMin) + 1)))
	a /= float32(1e-3)
	b := math.Log(80*80 + 1)
	betaD := 2 * (float64(a) - b) / (1e-3 - 1)
	return deisTime{betaD: betaD, betaMin: b - 0.5*betaD}
}

func (d deisTime) t(sigma float32) float32 {
	l := log32(float32(sigma*sigma) + 1)
	v := float32(d.betaMin*d.betaMin) + float32(float32(2*d.betaD)*l)
	return float32(sqrt32(v)-float32(d.betaMin)) / float32(d.betaD)
}

// deisCoeffs is get_deis_coeff_list(sigmas, maxOrder, N = 10000, "tab"): for step i of order
// min(i+1, maxOrder) > 1, coefficient j = Σ integrand(τ)·L_j(τ)·dτ over the linspace of
// [t_i, t_{i+1}], L_j the Lagrange basis over t_i, t_{i−1}, ….
func deisCoeffs(sigmas []float32, maxOrder int) [][]float32 {
	dt := newDEISTime()
	ts := make([]float32, len(sigmas))
	for i, s := range sigmas {
		ts[i] = dt.t(s)
	}
	b0 := float32(dt.betaMin)
	bDiff := float32((dt.betaD + dt.betaMin) - dt.betaMin)
	out := make([][]float32, len(ts)-1)
	for i := 0; i+1 < len(ts); i++ {
		order := min(i+1, maxOrder)
		if order == 1 {
			continue
		}
		tCur, tNext := ts[i], ts[i+1]
		taus := linspace32(float64(tCur), float64(tNext), deisPoints)
		dtau := (tNext - tCur) / deisPoints
		integrand := make([]float32, len(taus))
		for k, tau := range taus {
			// alpha = exp(−½τ²(β1 − β0) − τβ0) and its log-derivative as autograd computes it.
			u := float32(float32(-0.5*float32(tau*tau))*bDiff) - float32(tau*b0)
			alpha := exp32(u)
			g := float32(float32(1/alpha) * alpha)
			term1 := float32(float32(float32(g*bDiff)*-0.5) * float32(2*tau))
			term2 := float32(-g * b0)
			grad := term1 + term2
			integrand[k] = float32(-0.5*grad) / sqrt32(float32(alpha*float32(1-alpha)))
		}
		prev := make([]float32, order)
		for k := range prev {
			prev[k] = ts[i-k]
		}
		coeffs := make([]float32, order)
		for j := range coeffs {
			var sum float64
			for k, tau := range taus {
				poly := float32(1)
				for m := 0; m < order; m++ {
					if m == j {
						continue
					}
					poly = float32(poly * float32(float32(tau-prev[m])/float32(prev[j]-prev[m])))
				}
				sum += float64(float32(integrand[k] * poly))
			}
			coeffs[j] = float32(sum) * dtau
		}
		out[i] = coeffs
	}
	return out
}

// sampleDEIS is sample_deis (max_order 3, tab): Euler for the first step and into σ ≤ 0,
// otherwise x + Σ c_j·d_j over the current and stored slopes d = (x − x0)/σ.
func sampleDEIS(r *run, x *Latent, sigmas []float32) (*Latent, error) {
	const maxOrder = 3
	coeffs := deisCoeffs(sigmas, maxOrder)
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
		if sn <= 0 {
			order = 1
		}
		if order == 1 {
			x = addScaled(x, d, sn-s)
		} else {
			c := coeffs[i]
			next := x.like()
			for k, v := range x.Data {
				acc := v + float32(c[0]*d.Data[k])
				for m := 1; m < order; m++ {
					acc += float32(c[m] * buf[len(buf)-m].Data[k])
				}
				next.Data[k] = acc
			}
			x = next
		}
		buf = historyPush(buf, d, maxOrder-1)
	}
	return x, nil
}
