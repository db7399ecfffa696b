package sampling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestReferenceRuns replays sampling runs recorded from ComfyUI's own code
// (testdata/gen_reference.py: KSampler sigmas and step range, prepare_noise, KSAMPLER.sample
// with the k-diffusion sampler, sampling_function/cfg_function, latent format): the recorded
// model outputs stand in for the model, every model input x is compared with the recorded one,
// and the final latent and the callbacks with ComfyUI's.
func TestReferenceRuns(t *testing.T) {
	ref := loadReference(t)
	ms, err := NewFlowSampling(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	const tol = 2e-6 // float32 rounding of torch's SLEEF log/exp vs correctly rounded ones
	seen := map[string]bool{}
	for k, run := range ref.Runs {
		name := fmt.Sprintf("%d_%s_%s_steps%d_denoise%v_cfg%v", k, run.Sampler, run.Scheduler, run.Steps, run.Denoise, run.CFG)
		if run.Start != nil {
			name += fmt.Sprintf("_range%d-%d", *run.Start, *run.End)
		}
		t.Run(name, func(t *testing.T) {
			seen[run.Sampler] = true
			replays := map[string]*replay{}
			for _, c := range run.Calls {
				r := replays[c.Cond]
				if r == nil {
					r = &replay{t: t, name: c.Cond, xTol: tol}
					replays[c.Cond] = r
				}
				r.xs = append(r.xs, ref.latent(t, c.X))
				r.outs = append(r.outs, ref.latent(t, c.Out))
				r.sigmas = append(r.sigmas, c.Sigma)
			}
			pos := replays["pos"]
			if pos == nil {
				pos = &replay{t: t, name: "pos"}
			}
			var neg Denoiser
			if r := replays["neg"]; r != nil {
				neg = r
			} else if run.CFG != 1 {
				neg = &replay{t: t, name: "neg"}
			}
			p := DefaultKSamplerParams(ms, Flux)
			p.Seed, p.Steps, p.CFG, p.Sampler, p.Scheduler, p.Denoise = run.Seed, run.Steps, run.CFG, run.Sampler, run.Scheduler, run.Denoise
			p.BatchIndex = run.BatchIndex
			if run.Start != nil {
				p.Range = &StepRange{Start: *run.Start, End: *run.End, LeftoverNoise: run.LeftoverNoise}
				p.DisableNoise = run.AddNoise != nil && !*run.AddNoise
			}
			var steps []Step
			p.Callback = func(s Step) {
				s.Denoised = s.Denoised.Clone()
				steps = append(steps, s)
			}
			out, err := KSample(context.Background(), pos, neg, ref.latent(t, run.Latent), p)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range replays {
				if r.next != len(r.outs) {
					t.Errorf("%s model called %d times, ComfyUI %d", r.name, r.next, len(r.outs))
				}
			}
			want := ref.tensor(t, run.Output)
			if d := maxAbsDiff(out.Data, want.Data); d > tol {
				t.Errorf("output: max |diff| %g > %g", d, tol)
			} else {
				t.Logf("output: max |diff| %g, inputs: %g", d, pos.maxDx)
			}
			if len(steps) != len(run.Callbacks) {
				t.Fatalf("%d callbacks, ComfyUI %d", len(steps), len(run.Callbacks))
			}
			for i, cb := range run.Callbacks {
				s := steps[i]
				if s.Index != cb.Step || s.Total != cb.Total {
					t.Errorf("callback %d: step %d/%d, ComfyUI %d/%d", i, s.Index, s.Total, cb.Step, cb.Total)
				}
				if d := maxAbsDiff(s.Denoised.Data, ref.tensor(t, cb.Denoised).Data); d > tol {
					t.Errorf("callback %d: denoised max |diff| %g", i, d)
				}
			}
		})
	}
	for _, c := range loadSamplersRef(t).Cases {
		seen[c.Sampler] = true
	}
	for _, name := range Samplers() {
		if !seen[name] {
			t.Errorf("sampler %s has no reference run (testdata/reference.json or samplers.json)", name)
		}
	}
}

// TestSamplersFollowTheFlowLine checks every deterministic sampler against the exact solution
// of the flow ODE for a model that always predicts the same x0: x(σ) = x0 + σ/σ0·(x_init − x0),
// which each of these methods integrates exactly (up to float32 rounding), landing on x0 at σ = 0.
func TestSamplersFollowTheFlowLine(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	x0, _ := NewLatent(1, 4, 2, 3)
	xInit, _ := NewLatent(1, 4, 2, 3)
	for i := range x0.Data {
		x0.Data[i] = float32(math.Sin(float64(i))) * 0.8
		xInit.Data[i] = float32(math.Cos(float64(3*i))) * 1.3
	}
	constant := DenoiserFunc(func(_ context.Context, x *Latent, _ float32, _ int) (*Latent, error) { return x0.Clone(), nil })
	// Not here: ipndm_v, whose order-4 coefficients in ComfyUI do not sum to 1 (reproduced as
	// they are), deis (its coefficients are a 10000-point quadrature), uni_pc (it stops at
	// σ = 0.001), the CFG++ samplers (they need an unconditional model) and the stochastic ones.
	for _, sampler := range []string{"euler", "heun", "dpmpp_2m", "res_multistep", "ddim", "dpm_2", "heunpp2", "lms",
		"ipndm", "gradient_estimation"} {
		for _, scheduler := range []string{"simple", "karras", "beta"} {
			t.Run(sampler+"_"+scheduler, func(t *testing.T) {
				sigmas, err := KSamplerSigmas(ms, scheduler, 7, 1)
				if err != nil {
					t.Fatal(err)
				}
				var worst float64
				cb := func(s Step) {
					for i, v := range s.X.Data {
						want := float64(x0.Data[i]) + float64(s.Sigma)/float64(sigmas[0])*float64(xInit.Data[i]-x0.Data[i])
						worst = math.Max(worst, math.Abs(float64(v)-want))
					}
				}
				out, err := RunSampler(context.Background(), sampler, constant, xInit, sigmas, SamplerOptions{Callback: cb})
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(out.Data, x0.Data); d > 1e-5 {
					t.Errorf("final x differs from x0 by %g", d)
				}
				if worst > 1e-5 {
					t.Errorf("trajectory leaves the flow line by %g", worst)
				}
			})
		}
	}
}

// TestEulerAncestralRFStep checks one step of euler_ancestral against the closed form of
// sample_euler_ancestral_RF with eta 1: σ_down = σ_next²/σ, x' = (1−σ_next)/(1−σ_down)·
// (σ_down/σ·x + (1−σ_down/σ)·x0) + ε·sqrt(σ_next² − σ_down²(1−σ_next)²/(1−σ_down)²).
func TestEulerAncestralRFStep(t *testing.T) {
	x, _ := NewLatent(1, 16, 1, 2)
	den, _ := NewLatent(1, 16, 1, 2)
	for i := range x.Data {
		x.Data[i] = float32(i%7) - 3
		den.Data[i] = float32(i%5) * 0.25
	}
	const s, sn = 0.9, 0.6
	model := DenoiserFunc(func(_ context.Context, _ *Latent, _ float32, _ int) (*Latent, error) { return den.Clone(), nil })
	out, err := RunSampler(context.Background(), "euler_ancestral", model, x, []float32{s, sn}, SamplerOptions{Seed: 10})
	if err != nil {
		t.Fatal(err)
	}
	eps := make([]float32, x.Numel())
	NewGenerator(11).Randn(eps)
	down := float64(float32(sn)) * float64(float32(sn)) / float64(float32(s))
	a1, ad := 1-float64(float32(sn)), 1-down
	re := math.Sqrt(float64(float32(sn))*float64(float32(sn)) - down*down*a1*a1/(ad*ad))
	for i := range x.Data {
		r := down / float64(float32(s))
		want := a1/ad*(r*float64(x.Data[i])+(1-r)*float64(den.Data[i])) + float64(eps[i])*re
		if math.Abs(float64(out.Data[i])-want) > 1e-5 {
			t.Fatalf("element %d: %v, want %v", i, out.Data[i], want)
		}
	}
	// Into σ = 0 the step returns the prediction.
	out, err = RunSampler(context.Background(), "euler_ancestral", model, x, []float32{s, 0}, SamplerOptions{Seed: 10})
	if err != nil || maxAbsDiff(out.Data, den.Data) != 0 {
		t.Fatalf("last step: %v, diff %g", err, maxAbsDiff(out.Data, den.Data))
	}
}

func TestCFG(t *testing.T) {
	x, _ := NewLatent(1, 2, 1, 2)
	cond, _ := LatentFrom([]float32{1, 2, 3, 4}, 1, 2, 1, 2)
	uncond, _ := LatentFrom([]float32{0.5, 0.5, -1, 4}, 1, 2, 1, 2)
	calls := map[string]int{}
	mk := func(name string, v *Latent) Denoiser {
		return DenoiserFunc(func(_ context.Context, _ *Latent, _ float32, _ int) (*Latent, error) {
			calls[name]++
			return v.Clone(), nil
		})
	}
	cases := []struct {
		scale     float64
		want      []float32
		negCalled bool
	}{
		{1, []float32{1, 2, 3, 4}, false},
		{1 + 1e-12, []float32{1, 2, 3, 4}, false},
		{3, []float32{0.5 + 0.5*3, 0.5 + 1.5*3, -1 + 4*3, 4}, true},
		{0, []float32{0.5, 0.5, -1, 4}, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.scale), func(t *testing.T) {
			clear(calls)
			d, err := CFG(mk("pos", cond), mk("neg", uncond), c.scale)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Denoise(context.Background(), x, 0.5, 0)
			if err != nil {
				t.Fatal(err)
			}
			if maxAbsDiff(got.Data, c.want) != 0 {
				t.Errorf("got %v, want %v", got.Data, c.want)
			}
			if (calls["neg"] > 0) != c.negCalled || calls["pos"] != 1 {
				t.Errorf("calls %v", calls)
			}
		})
	}
	if _, err := CFG(mk("pos", cond), nil, 1); err != nil {
		t.Errorf("cfg 1 without a negative: %v", err)
	}
	for _, bad := range []struct {
		pos, neg Denoiser
		scale    float64
	}{{nil, nil, 1}, {mk("pos", cond), nil, 2}, {mk("pos", cond), mk("neg", uncond), math.NaN()}} {
		if _, err := CFG(bad.pos, bad.neg, bad.scale); !errors.Is(err, ErrCFG) {
			t.Errorf("CFG(%v, %v, %v) err = %v, want ErrCFG", bad.pos != nil, bad.neg != nil, bad.scale, err)
		}
	}
}

func TestContextCancelledBetweenSteps(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	model := DenoiserFunc(func(_ context.Context, x *Latent, _ float32, _ int) (*Latent, error) {
		calls++
		return x.Clone(), nil
	})
	p := DefaultKSamplerParams(ms, Flux)
	p.Steps, p.CFG = 8, 1
	p.Callback = func(s Step) {
		if s.Index == 2 {
			cancel()
		}
	}
	latent, _ := NewLatent(1, 16, 2, 2)
	_, err := KSample(ctx, model, nil, latent, p)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if calls != 3 {
		t.Fatalf("model called %d times after cancelling at step 2, want 3", calls)
	}
}

func TestSamplerErrors(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	good, _ := NewLatent(1, 16, 2, 2)
	identity := DenoiserFunc(func(_ context.Context, x *Latent, _ float32, _ int) (*Latent, error) { return x.Clone(), nil })
	wrongShape := DenoiserFunc(func(_ context.Context, _ *Latent, _ float32, _ int) (*Latent, error) { return NewLatent(1, 16, 2, 3) })
	failing := DenoiserFunc(func(_ context.Context, _ *Latent, _ float32, _ int) (*Latent, error) {
		return nil, errors.New("out of memory")
	})
	sigmas := []float32{1, 0.5, 0}
	cases := []struct {
		name    string
		sampler string
		model   Denoiser
		x       *Latent
		sigmas  []float32
		want    string
	}{
		{"unknown sampler", "euler_a", identity, good, sigmas, "unknown or unimplemented sampler"},
		{"unimplemented sampler", "dpm_fast", identity, good, sigmas, "unknown or unimplemented sampler"},
		{"nil model", "euler", nil, good, sigmas, "no model"},
		{"bad latent", "euler", identity, &Latent{Shape: []int{1, 2}, Data: []float32{1}}, sigmas, "bad latent shape"},
		{"NaN sigma", "heun", identity, good, []float32{1, float32(math.NaN()), 0}, "sigma[1]"},
		{"negative sigma", "dpmpp_2m", identity, good, []float32{1, -0.5, 0}, "sigma[1]"},
		{"model output shape", "euler", wrongShape, good, sigmas, "model output"},
		{"model error", "res_multistep", failing, good, sigmas, "out of memory"},
		{"sde without model sampling", "dpmpp_2m_sde", identity, good, sigmas, "needs the model sampling"},
		{"sde 3m without model sampling", "dpmpp_3m_sde", identity, good, sigmas, "needs the model sampling"},
		{"cfg_pp without uncond", "euler_cfg_pp", identity, good, sigmas, "needs the unconditional prediction"},
		{"uni_pc model error", "uni_pc", failing, good, sigmas, "out of memory"},
		{"uni_pc repeated sigmas", "uni_pc", identity, good, []float32{1, 0.5, 0.5, 0.5, 0}, "singular"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := RunSampler(context.Background(), c.sampler, c.model, c.x, c.sigmas, SamplerOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.want)
			}
		})
	}

	p := DefaultKSamplerParams(ms, Flux)
	p.CFG = 1
	for _, c := range []struct {
		name string
		edit func(*KSamplerParams)
	}{
		{"steps 0", func(p *KSamplerParams) { p.Steps = 0 }},
		{"denoise 2", func(p *KSamplerParams) { p.Denoise = 2 }},
		{"unknown scheduler", func(p *KSamplerParams) { p.Scheduler = "cosine" }},
		{"unknown sampler", func(p *KSamplerParams) { p.Sampler = "dpm_adaptive" }},
		{"no model sampling", func(p *KSamplerParams) { p.Sampling = nil }},
		{"negative start", func(p *KSamplerParams) { p.Range = &StepRange{Start: -1, End: 3} }},
		{"batch index count", func(p *KSamplerParams) { p.BatchIndex = []int{0, 1} }},
		{"cfg without negative", func(p *KSamplerParams) { p.CFG = 4 }},
	} {
		t.Run("ksample "+c.name, func(t *testing.T) {
			q := p
			c.edit(&q)
			if _, err := KSample(context.Background(), identity, nil, good, q); err == nil {
				t.Fatal("no error")
			}
		})
	}
	noise, _ := NewLatent(1, 16, 2, 3)
	if _, err := Sample(context.Background(), identity, ms, Flux, "euler", sigmas, noise, good, SamplerOptions{}); !errors.Is(err, ErrShape) {
		t.Errorf("noise of another shape: err = %v, want ErrShape", err)
	}
}

// TestEmptyScheduleReturnsInput covers denoise 0 and a start step past the end: ComfyUI returns
// the input latent untouched and never calls the model.
func TestEmptyScheduleReturnsInput(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	latent, _ := NewLatent(1, 16, 2, 2)
	for i := range latent.Data {
		latent.Data[i] = float32(i) / 10
	}
	never := DenoiserFunc(func(_ context.Context, _ *Latent, _ float32, _ int) (*Latent, error) {
		return nil, errors.New("model called")
	})
	for _, edit := range []func(*KSamplerParams){
		func(p *KSamplerParams) { p.Denoise = 0 },
		func(p *KSamplerParams) { p.Range = &StepRange{Start: 20, End: 10000} },
		func(p *KSamplerParams) { p.Range = &StepRange{Start: 0, End: 0} },
	} {
		p := DefaultKSamplerParams(ms, Flux)
		p.CFG = 1
		edit(&p)
		out, err := KSample(context.Background(), never, nil, latent, p)
		if err != nil {
			t.Fatal(err)
		}
		if maxAbsDiff(out.Data, latent.Data) != 0 {
			t.Fatal("input latent changed")
		}
	}
}

func TestLatentFormat(t *testing.T) {
	z, _ := LatentFrom([]float32{0.1159, 1.1159, -0.8841, 0}, 1, 4, 1, 1)
	in := Flux.ProcessIn(z)
	want := []float32{0, 0.3611, -0.3611, float32(-0.1159) * 0.3611}
	if d := maxAbsDiff(in.Data, want); d > 1e-7 {
		t.Errorf("process_in %v, want %v", in.Data, want)
	}
	back := Flux.ProcessOut(in)
	if d := maxAbsDiff(back.Data, z.Data); d > 1e-6 {
		t.Errorf("process_out(process_in(z)) differs by %g", d)
	}
}

func TestLatentValidate(t *testing.T) {
	for _, c := range []struct {
		shape []int
		n     int
		ok    bool
	}{{[]int{1, 16, 2, 2}, 64, true}, {[]int{1, 16, 2, 2}, 63, false}, {nil, 0, false}, {[]int{2, 0}, 0, false}} {
		_, err := LatentFrom(make([]float32, c.n), c.shape...)
		if (err == nil) != c.ok {
			t.Errorf("shape %v with %d values: err = %v", c.shape, c.n, err)
		}
	}
	var nilLatent *Latent
	if nilLatent.Validate() == nil {
		t.Error("nil latent validated")
	}
}

func TestNanToNum(t *testing.T) {
	cases := []struct{ in, want float32 }{
		{float32(math.NaN()), 0},
		{float32(math.Inf(1)), math.MaxFloat32},
		{float32(math.Inf(-1)), -math.MaxFloat32},
		{-2.5, -2.5},
	}
	for _, c := range cases {
		if got := nanToNum(c.in); got != c.want {
			t.Errorf("nanToNum(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
