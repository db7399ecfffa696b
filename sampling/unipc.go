package sampling

import (
	"fmt"
	"math"
)

// UniPC (ComfyUI's comfy/extra_samplers/uni_pc.py, sample_unipc): the multistep
// predictor-corrector UniPC in its B(h) variants (uni_pc: B(h) = h, "bh1"; uni_pc_bh2:
// B(h) = e^h − 1), data prediction, order min(3, steps − 1) with lower orders for the first and
// the last steps, no thresholding. ComfyUI runs it on any model by reading σ as a VE sigma:
// α_t = 1/sqrt(1 + σ²), σ_t = σ/sqrt(1 + σ²), λ = log(α_t/σ_t); x lives in the VP space
// x_VE·α_t, the model gets x_VE and its ε = (x_VE − x0)/σ. A final sigma of 0 is replaced by
// 0.001 (in ComfyUI's sigmas tensor itself, so that the inverse noise scaling afterwards
// divides by 1 − 0.001 as well).

// unipcSchedule is SigmaConvert: the VP view of a VE sigma, in float32 as torch computes it.
type unipcSchedule struct{}

func (unipcSchedule) logMeanCoeff(s float32) float32 {
	return 0.5 * log32(1/float32(float32(s*s)+1))
}

func (u unipcSchedule) alpha(s float32) float32 { return exp32(u.logMeanCoeff(s)) }

func (u unipcSchedule) std(s float32) float32 {
	return sqrt32(1 - exp32(2*u.logMeanCoeff(s)))
}

func (u unipcSchedule) lambda(s float32) float32 {
	lmc := u.logMeanCoeff(s)
	return lmc - float32(0.5*log32(1-exp32(2*lmc)))
}

// unipc is one sample_unipc run.
type unipc struct {
	r   *run
	ns  unipcSchedule
	bh2 bool
}

// modelX0 is UniPC's data_prediction_fn over predict_eps_sigma: the model sees x·sqrt(σ² + 1),
// ε = (x_VE − D)/σ, x0 = (x − σ_t·ε)/α_t.
func (u *unipc) modelX0(x *Latent, t float32, step int) (*Latent, error) {
	scale := sqrt32(float32(t*t) + 1)
	in := x.like()
	for k, v := range x.Data {
		in.Data[k] = v * scale
	}
	den, err := u.r.denoise(in, t, step)
	if err != nil {
		return nil, err
	}
	alpha, std := u.ns.alpha(t), u.ns.std(t)
	out := x.like()
	for k, v := range x.Data {
		eps := float32(in.Data[k]-den.Data[k]) / t
		out.Data[k] = float32(v-float32(std*eps)) / alpha
	}
	return out, nil
}

// update is multistep_uni_pc_bh_update (predict_x0, no given x_t): the UniP predictor of the
// given order from the stored model outputs, then, with useCorrector, a model call at the
// predicted point and the UniC corrector. It returns the new x and that model output (nil
// without the corrector).
func (u *unipc) update(x *Latent, models []*Latent, ts []float32, t float32, order int, useCorrector bool, step int) (*Latent, *Latent, error) {
	if order > len(models) || order < 1 {
		return nil, nil, fmt.Errorf("uni_pc: order %d with %d stored model outputs", order, len(models))
	}
	ns := u.ns
	last := len(models) - 1
	tp0, mp0 := ts[last], models[last]
	lp0, lt := ns.lambda(tp0), ns.lambda(t)
	sp0, st := ns.std(tp0), ns.std(t)
	alphaT := exp32(ns.logMeanCoeff(t))
	h := lt - lp0

	var rks []float32
	var d1s []*Latent
	for i := 1; i < order; i++ {
		rk := (ns.lambda(ts[last-i]) - lp0) / h
		rks = append(rks, rk)
		mi := models[last-i]
		d := x.like()
		for k, v := range mi.Data {
			d.Data[k] = float32(v-mp0.Data[k]) / rk
		}
		d1s = append(d1s, d)
	}
	rks = append(rks, 1)

	hh := -h
	hPhi1 := expm132(hh)
	hPhiK := hPhi1/hh - 1
	factorial := 1
	bh := hh
	if u.bh2 {
		bh = expm132(hh)
	}
	R := make([][]float32, order)
	b := make([]float32, order)
	for i := 1; i <= order; i++ {
		row := make([]float32, order)
		for k, v := range rks {
			row[k] = pow32Int(v, i-1)
		}
		R[i-1] = row
		b[i-1] = float32(hPhiK*float32(factorial)) / bh
		factorial *= i + 1
		hPhiK = hPhiK/hh - float32(1/float64(factorial))
	}

	var rhosP, rhosC []float32
	if len(d1s) > 0 {
		if order == 2 {
			rhosP = []float32{0.5}
		} else {
			sub := make([][]float32, order-1)
			for i := range sub {
				sub[i] = R[i][:order-1]
			}
			var err error
			if rhosP, err = solve32(sub, b[:order-1]); err != nil {
				return nil, nil, fmt.Errorf("uni_pc predictor: %w", err)
			}
		}
	}
	if useCorrector {
		if order == 1 {
			rhosC = []float32{0.5}
		} else {
			var err error
			if rhosC, err = solve32(R, b); err != nil {
				return nil, nil, fmt.Errorf("uni_pc corrector: %w", err)
			}
		}
	}

	c0 := st / sp0
	c1 := alphaT * hPhi1
	base := lin(c0, x, -c1, mp0)
	cb := alphaT * bh
	xt := base
	if len(d1s) > 0 {
		xt = x.like()
		for k, v := range base.Data {
			xt.Data[k] = v - float32(cb*dot32(d1s, rhosP, k))
		}
	}
	if !useCorrector {
		return xt, nil, nil
	}
	mt, err := u.modelX0(xt, t, step)
	if err != nil {
		return nil, nil, err
	}
	rc := rhosC[len(rhosC)-1]
	out := x.like()
	for k, v := range base.Data {
		corr := float32(rc * float32(mt.Data[k]-mp0.Data[k]))
		if len(d1s) > 0 {
			corr = dot32(d1s, rhosC[:len(d1s)], k) + corr
		}
		out.Data[k] = v - float32(cb*corr)
	}
	return out, mt, nil
}

// dot32 is Σ_m ds[m][k]·rhos[m] (torch.tensordot over the stacked differences).
func dot32(ds []*Latent, rhos []float32, k int) float32 {
	acc := float32(ds[0].Data[k] * rhos[0])
	for m := 1; m < len(ds); m++ {
		acc += float32(ds[m].Data[k] * rhos[m])
	}
	return acc
}

// pow32Int is torch.pow(v, n) for a small non-negative integer n.
func pow32Int(v float32, n int) float32 {
	switch n {
	case 0:
		return 1
	case 1:
		return v
	case 2:
		return v * v
	}
	return float32(math.Pow(float64(v), float64(n)))
}

// solve32 solves the small system a·x = b (torch.linalg.solve) by Gaussian elimination with
// partial pivoting in float64, rounding the solution to float32.
func solve32(a [][]float32, b []float32) ([]float32, error) {
	n := len(b)
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n+1)
		for j := 0; j < n; j++ {
			m[i][j] = float64(a[i][j])
		}
		m[i][n] = float64(b[i])
	}
	for c := 0; c < n; c++ {
		p := c
		for i := c + 1; i < n; i++ {
			if math.Abs(m[i][c]) > math.Abs(m[p][c]) {
				p = i
			}
		}
		if m[p][c] == 0 || math.IsNaN(m[p][c]) {
			return nil, fmt.Errorf("singular %dx%d system (repeated or degenerate sigmas?)", n, n)
		}
		m[c], m[p] = m[p], m[c]
		for i := c + 1; i < n; i++ {
			f := m[i][c] / m[c][c]
			for j := c; j <= n; j++ {
				m[i][j] -= f * m[c][j]
			}
		}
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := m[i][n]
		for j := i + 1; j < n; j++ {
			s -= m[i][j] * x[j]
		}
		x[i] = s / m[i][i]
	}
	out := make([]float32, n)
	for i, v := range x {
		out[i] = float32(v)
	}
	return out, nil
}

// sampleUniPC is sample_unipc (bh2: sample_unipc_bh2) with UniPC.sample's multistep loop
// (time_uniform over the given sigmas, lower_order_final). The callback gets, per step, the
// VP-space x and the newest data prediction, as ComfyUI's does.
func sampleUniPC(r *run, x *Latent, sigmas []float32, bh2 bool) (*Latent, error) {
	ts := sigmas // the run's own copy
	if ts[len(ts)-1] == 0 {
		ts[len(ts)-1] = 0.001
		r.lastSigma = ts[len(ts)-1]
	}
	u := &unipc{r: r, bh2: bh2}
	scale := sqrt32(1 + ts[0]*ts[0])
	xv := x.like()
	for k, v := range x.Data {
		xv.Data[k] = v / scale
	}
	x = xv
	steps := len(ts) - 1
	order := min(3, len(ts)-2)

	m0, err := u.modelX0(x, ts[0], 0)
	if err != nil {
		return nil, err
	}
	models, tPrev := []*Latent{m0}, []float32{ts[0]}
	r.report(0, ts[0], x, m0)
	for si := 1; si < steps; si++ {
		if si < order {
			t := ts[si]
			var mx *Latent
			if x, mx, err = u.update(x, models, tPrev, t, si, true, si); err != nil {
				return nil, err
			}
			models, tPrev = append(models, mx), append(tPrev, t)
		} else {
			end := si
			if si == steps-1 {
				end = steps
			}
			for step := si; step <= end; step++ {
				t := ts[step]
				stepOrder := min(order, steps+1-step)
				var mx *Latent
				if x, mx, err = u.update(x, models, tPrev, t, stepOrder, step != steps, si); err != nil {
					return nil, err
				}
				copy(models, models[1:])
				copy(tPrev, tPrev[1:])
				tPrev[len(tPrev)-1] = t
				if step < steps {
					if mx == nil {
						if mx, err = u.modelX0(x, t, si); err != nil {
							return nil, err
						}
					}
					models[len(models)-1] = mx
				}
			}
		}
		r.report(si, ts[si], x, models[len(models)-1])
	}
	alpha := u.ns.alpha(ts[len(ts)-1])
	out := x.like()
	for k, v := range x.Data {
		out.Data[k] = v / alpha
	}
	return out, nil
}
