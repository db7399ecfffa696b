package sampling

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// samplersRef is testdata/samplers.json (testdata/gen_samplers.py): ComfyUI's samplers run
// through KSampler/KSAMPLER.sample on a closed-form toy model.
type samplersRef struct {
	Cases []samplersCase `json:"cases"`
}

type samplersCase struct {
	Sampler   string         `json:"sampler"`
	Scheduler string         `json:"scheduler"`
	Steps     int            `json:"steps"`
	Denoise   float64        `json:"denoise"`
	CFG       float64        `json:"cfg"`
	Seed      uint64         `json:"seed"`
	Shape     []int          `json:"shape"`
	Latent    *string        `json:"latent"`
	Sigmas    []float32      `json:"sigmas"`
	Output    string         `json:"output"`
	Calls     map[string]int `json:"calls"`
	Callbacks []struct {
		Step     int    `json:"step"`
		Total    int    `json:"total"`
		Denoised string `json:"denoised"`
	} `json:"callbacks"`
	// Brownian (SDE samplers) holds the float32 bits of the Brownian tree's sigma_min and
	// sigma_max and of every (sigma, sigma_next) ComfyUI's noise sampler was asked for.
	Brownian *struct {
		Tree  [2]uint32   `json:"tree"`
		Calls [][2]uint32 `json:"calls"`
	} `json:"brownian"`
}

func loadSamplersRef(t testing.TB) *samplersRef {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "samplers.json"))
	if err != nil {
		t.Fatalf("samplers reference: %v", err)
	}
	var r samplersRef
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("samplers.json: %v", err)
	}
	if len(r.Cases) == 0 {
		t.Fatal("samplers.json has no cases")
	}
	return &r
}

// f32s decodes base64 little-endian float32 data.
func f32s(t testing.TB, s string) []float32 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		t.Fatalf("bad float32 data (%d bytes): %v", len(b), err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// toyModel is gen_samplers.py's toy_model in the same float32 operations:
// x·(a − b·σ)/(1 + c·x·x) + bias_ch·(1 − σ), bias_ch = ((ch + off) mod 5)·0.1 − 0.2.
func toyModel(kind string, calls map[string]int) Denoiser {
	a, b, c, off := 0.5, 0.3, 0.1, 0
	if kind == "neg" {
		a, b, c, off = 0.4, 0.2, 0.05, 2
	}
	return DenoiserFunc(func(_ context.Context, x *Latent, sigma float32, _ int) (*Latent, error) {
		calls[kind]++
		out := x.like()
		scale := float32(a) - float32(float32(b)*sigma)
		keep := 1 - sigma
		hw := x.Numel() / (x.Shape[0] * x.Shape[1])
		for i, v := range x.Data {
			ch := (i / hw) % x.Shape[1]
			bias := float32(float64((ch+off)%5)*0.1 - 0.2)
			den := 1 + float32(float32(float32(c)*v)*v)
			out.Data[i] = float32(float32(v*scale)/den) + float32(bias*keep)
		}
		return out, nil
	})
}

// relErr is max |got − want| over max(1, max |want|).
func relErr(got, want []float32) float64 {
	scale := 1.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	return maxAbsDiff(got, want) / scale
}

// TestSamplersAgainstComfyUI runs every sampler of testdata/samplers.json through KSample with
// the toy model and compares the sigmas, the number of model calls per conditioning, the final
// latent and every callback's denoised estimate with ComfyUI's. The SDE samplers run with their
// default noise, ComfyUI's Brownian tree, whose bounds and queries are also checked bit for bit
// (checkBrownianQueries).
func TestSamplersAgainstComfyUI(t *testing.T) {
	ref := loadSamplersRef(t)
	ms, err := NewFlowSampling(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	const tol = 2e-6 // relative; float32 rounding of torch's SLEEF log/exp and float32 reductions
	worst := map[string]float64{}
	for _, c := range ref.Cases {
		name := fmt.Sprintf("%s_%s_steps%d_denoise%v_cfg%v_seed%d_shape%v", c.Sampler, c.Scheduler, c.Steps, c.Denoise, c.CFG, c.Seed, c.Shape)
		t.Run(name, func(t *testing.T) {
			sigmas, err := SamplerSigmas(ms, c.Sampler, c.Scheduler, c.Steps, c.Denoise)
			if err != nil {
				t.Fatal(err)
			}
			if ulpDiff(sigmas, c.Sigmas) > 1 {
				t.Fatalf("sigmas %v, ComfyUI %v", sigmas, c.Sigmas)
			}
			latent, err := NewLatent(c.Shape...)
			if err != nil {
				t.Fatal(err)
			}
			if c.Latent != nil {
				latent.Data = f32s(t, *c.Latent)
			}
			calls := map[string]int{}
			p := DefaultKSamplerParams(ms, Flux)
			p.Seed, p.Steps, p.CFG, p.Sampler, p.Scheduler, p.Denoise = c.Seed, c.Steps, c.CFG, c.Sampler, c.Scheduler, c.Denoise
			var steps []Step
			p.Callback = func(s Step) {
				s.Denoised = s.Denoised.Clone()
				steps = append(steps, s)
			}
			out, err := KSample(context.Background(), toyModel("pos", calls), toyModel("neg", calls), latent, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{"pos", "neg"} {
				if calls[kind] != c.Calls[kind] {
					t.Errorf("%s model called %d times, ComfyUI %d", kind, calls[kind], c.Calls[kind])
				}
			}
			e := relErr(out.Data, f32s(t, c.Output))
			if e > tol {
				t.Errorf("output: relative error %g > %g", e, tol)
			}
			if len(steps) != len(c.Callbacks) {
				t.Fatalf("%d callbacks, ComfyUI %d", len(steps), len(c.Callbacks))
			}
			for i, cb := range c.Callbacks {
				s := steps[i]
				if s.Index != cb.Step || s.Total != cb.Total {
					t.Errorf("callback %d: step %d/%d, ComfyUI %d/%d", i, s.Index, s.Total, cb.Step, cb.Total)
				}
				ce := relErr(s.Denoised.Data, f32s(t, cb.Denoised))
				if ce > tol {
					t.Errorf("callback %d: denoised relative error %g > %g", i, ce, tol)
				}
				e = math.Max(e, ce)
			}
			worst[c.Sampler] = math.Max(worst[c.Sampler], e)
			sde := c.Sampler == "dpmpp_sde" || c.Sampler == "dpmpp_2m_sde" || c.Sampler == "dpmpp_3m_sde"
			if sde != (c.Brownian != nil) {
				t.Fatalf("SDE sampler %v, but Brownian tree record %v", sde, c.Brownian != nil)
			}
			if sde {
				checkBrownianQueries(t, ms, c, sigmas, latent, out)
			}
		})
	}
	for _, name := range Samplers() {
		if w, ok := worst[name]; ok {
			t.Logf("%-24s max relative error %.3g", name, w)
		}
	}
}

// TestSDENoiseHook checks SamplerOptions.SDENoise and its default, ComfyUI's Brownian tree:
// each SDE sampler builds it once with the schedule's smallest non-zero and largest sigma and
// the seed, asks it for the intervals upstream passes to its noise_sampler, and uses what it
// returns (a hook wrapping BrownianTreeNoise gives the default run bit for bit, one replaying
// the seed+1 NoiseSampler stream another one; an error or a wrongly shaped tensor stops the
// run).
func TestSDENoiseHook(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	sigmas, err := KSamplerSigmas(ms, "simple", 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	first := float32(ms.PercentToSigma(1e-4))
	x, _ := NewLatent(1, 16, 2, 2)
	for i := range x.Data {
		x.Data[i] = float32(math.Sin(float64(i)))
	}
	calls := map[string]int{}
	model := toyModel("pos", calls)
	type interval struct{ from, to float32 }
	for _, sampler := range []string{"dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"} {
		t.Run(sampler, func(t *testing.T) {
			const seed = 1<<40 + 42
			want, err := RunSampler(context.Background(), sampler, model, x, sigmas, SamplerOptions{Seed: seed, Sampling: ms})
			if err != nil {
				t.Fatal(err)
			}
			var got []interval
			built := 0
			opts := SamplerOptions{Seed: seed, Sampling: ms, SDENoise: func(like *Latent, lo, hi float32, s uint64) (NoiseFunc, error) {
				built++
				if lo != sigmas[len(sigmas)-2] || hi != sigmas[0] || s != seed || !like.SameShape(x) {
					t.Errorf("SDENoise(%v, %v, %v, %d)", like.Shape, lo, hi, s)
				}
				tree, err := BrownianTreeNoise(like, lo, hi, s)
				if err != nil {
					return nil, err
				}
				return func(a, b float32) (*Latent, error) {
					got = append(got, interval{a, b})
					return tree(a, b)
				}, nil
			}}
			out, err := RunSampler(context.Background(), sampler, model, x, sigmas, opts)
			if err != nil {
				t.Fatal(err)
			}
			if built != 1 || maxAbsDiff(out.Data, want.Data) != 0 {
				t.Errorf("built %d times, output differs from the default noise by %g", built, maxAbsDiff(out.Data, want.Data))
			}
			var expect []interval
			sig := append([]float32{first}, sigmas[1:]...)
			for i := 0; i+1 < len(sig) && sig[i+1] > 0; i++ {
				if sampler == "dpmpp_sde" {
					l := halfLogSNR(sig[i]) + float32(0.5*(halfLogSNR(sig[i+1])-halfLogSNR(sig[i])))
					expect = append(expect, interval{sig[i], halfLogSNRToSigma(l)})
				}
				expect = append(expect, interval{sig[i], sig[i+1]})
			}
			if fmt.Sprint(got) != fmt.Sprint(expect) {
				t.Errorf("noise intervals %v, want %v", got, expect)
			}

			stream := opts
			stream.SDENoise = func(like *Latent, _, _ float32, s uint64) (NoiseFunc, error) {
				ns := NewNoiseSampler(s)
				return func(float32, float32) (*Latent, error) { return ns.Next(like), nil }, nil
			}
			other, err := RunSampler(context.Background(), sampler, model, x, sigmas, stream)
			if err != nil {
				t.Fatal(err)
			}
			if maxAbsDiff(other.Data, want.Data) == 0 {
				t.Error("a hook with other noise gives the default output")
			}

			failing := opts
			failing.SDENoise = func(*Latent, float32, float32, uint64) (NoiseFunc, error) {
				return nil, fmt.Errorf("no tree")
			}
			if _, err := RunSampler(context.Background(), sampler, model, x, sigmas, failing); err == nil || !strings.Contains(err.Error(), "no tree") {
				t.Errorf("failing SDENoise: err = %v", err)
			}
			failing.SDENoise = func(*Latent, float32, float32, uint64) (NoiseFunc, error) {
				return func(float32, float32) (*Latent, error) { return NewLatent(1, 16, 2, 3) }, nil
			}
			if _, err := RunSampler(context.Background(), sampler, model, x, sigmas, failing); err == nil || !strings.Contains(err.Error(), "noise sampler output") {
				t.Errorf("wrongly shaped noise: err = %v", err)
			}
		})
	}
}

// TestSamplerSigmas checks the discard-penultimate rule of KSampler for dpm_2, dpm_2_ancestral,
// uni_pc and uni_pc_bh2 (the schedule of steps+1 steps without its second-to-last sigma, also
// before a partial denoise's tail is taken) and that other samplers get KSamplerSigmas.
func TestSamplerSigmas(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	for _, c := range []struct {
		sampler, scheduler string
		steps              int
		denoise            float64
		discard            bool
	}{
		{"dpm_2", "simple", 4, 1, true},
		{"uni_pc", "normal", 9, 1, true},
		{"uni_pc_bh2", "karras", 6, 0.5, true},
		{"dpm_2_ancestral", "beta", 1, 1, true},
		{"euler", "simple", 4, 1, false},
		{"lms", "normal", 7, 0.6, false},
	} {
		t.Run(fmt.Sprintf("%s_%s_%d_%v", c.sampler, c.scheduler, c.steps, c.denoise), func(t *testing.T) {
			got, err := SamplerSigmas(ms, c.sampler, c.scheduler, c.steps, c.denoise)
			if err != nil {
				t.Fatal(err)
			}
			n := c.steps
			if c.denoise < 1 {
				n = int(float64(c.steps) / c.denoise)
			}
			var want []float32
			if c.discard {
				full, err := CalculateSigmas(ms, c.scheduler, n+1)
				if err != nil {
					t.Fatal(err)
				}
				want = append(full[:len(full)-2:len(full)-2], full[len(full)-1])
			} else {
				if want, err = CalculateSigmas(ms, c.scheduler, n); err != nil {
					t.Fatal(err)
				}
			}
			if len(want) > c.steps+1 {
				want = want[len(want)-c.steps-1:]
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// TestSamplerList checks that Samplers() is every implemented sampler, in ComfyUI's order.
func TestSamplerList(t *testing.T) {
	names := Samplers()
	if len(names) != len(samplerFuncs) {
		t.Errorf("%d names for %d samplers", len(names), len(samplerFuncs))
	}
	pos := 0
	for _, n := range names {
		for pos < len(comfySamplerOrder) && comfySamplerOrder[pos] != n {
			pos++
		}
		if pos == len(comfySamplerOrder) {
			t.Fatalf("%s is out of ComfyUI's order in %v", n, names)
		}
	}
	for _, n := range []string{"euler_cfg_pp", "euler_ancestral_cfg_pp"} {
		if !NeedsUncond(n) {
			t.Errorf("NeedsUncond(%s) = false", n)
		}
	}
	if NeedsUncond("euler") {
		t.Error("NeedsUncond(euler) = true")
	}
	// A CFG++ sampler through KSample at cfg 1 without a negative model cannot run.
	ms, _ := NewFlowSampling(3, 1)
	p := DefaultKSamplerParams(ms, Flux)
	p.CFG, p.Sampler, p.Steps = 1, "euler_cfg_pp", 3
	latent, _ := NewLatent(1, 16, 2, 2)
	if _, err := KSample(context.Background(), toyModel("pos", map[string]int{}), nil, latent, p); err == nil || !strings.Contains(err.Error(), "unconditional") {
		t.Errorf("euler_cfg_pp without a negative: err = %v", err)
	}
}

// checkBrownianQueries reruns an SDE case of samplers.json through Sample with SDENoise
// wrapping the default BrownianTreeNoise: the tree must be built once with ComfyUI's
// sigma_min and sigma_max, asked for ComfyUI's intervals (the midpoint sigmas of dpmpp_sde
// included) bit for bit, and give KSample's output.
func checkBrownianQueries(t *testing.T, ms *FlowSampling, c samplersCase, sigmas []float32, latent, want *Latent) {
	t.Helper()
	noise, err := PrepareNoise(c.Shape, c.Seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	model, err := CFG(toyModel("pos", calls), toyModel("neg", calls), c.CFG)
	if err != nil {
		t.Fatal(err)
	}
	var trees [][2]uint32
	var got [][2]uint32
	opts := SamplerOptions{Seed: c.Seed, SDENoise: func(like *Latent, lo, hi float32, seed uint64) (NoiseFunc, error) {
		if seed != c.Seed {
			t.Errorf("tree seeded with %d, want the KSampler seed %d", seed, c.Seed)
		}
		trees = append(trees, [2]uint32{math.Float32bits(lo), math.Float32bits(hi)})
		fn, err := BrownianTreeNoise(like, lo, hi, seed)
		if err != nil {
			return nil, err
		}
		return func(s, sn float32) (*Latent, error) {
			got = append(got, [2]uint32{math.Float32bits(s), math.Float32bits(sn)})
			return fn(s, sn)
		}, nil
	}}
	out, err := Sample(context.Background(), model, ms, Flux, c.Sampler, sigmas, noise, latent, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(trees) != 1 || trees[0] != c.Brownian.Tree {
		t.Errorf("trees built with bounds %v, ComfyUI %v", trees, c.Brownian.Tree)
	}
	if fmt.Sprint(got) != fmt.Sprint(c.Brownian.Calls) {
		t.Errorf("noise intervals (float32 bits) %v, ComfyUI %v", got, c.Brownian.Calls)
	}
	if d := maxAbsDiff(out.Data, want.Data); d != 0 {
		t.Errorf("Sample with the wrapped tree differs from KSample by %g", d)
	}
}
