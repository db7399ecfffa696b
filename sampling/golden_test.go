package sampling

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
)

// goldenIO is the "io" block of a manifest case.
type goldenIO struct {
	File    string `json:"file"`
	Tensors map[string]struct {
		Shape  []int  `json:"shape"`
		Stored string `json:"stored"`
	} `json:"tensors"`
}

// caseTolerance reads an explicit tolerance from a case ("atol", "tolerance" or "tol"), else
// ten times its float32-vs-float64 deviation when recorded, else def.
func caseTolerance(raw json.RawMessage, def float64) float64 {
	var c map[string]json.RawMessage
	if json.Unmarshal(raw, &c) != nil {
		return def
	}
	for _, k := range []string{"atol", "tolerance", "tol"} {
		var v float64
		if json.Unmarshal(c[k], &v) == nil && v > 0 {
			return v
		}
	}
	var dev struct {
		MaxAbs float64 `json:"max_abs"`
	}
	if json.Unmarshal(c["fp32_vs_fp64"], &dev) == nil && dev.MaxAbs > 0 {
		return 10 * dev.MaxAbs
	}
	return def
}

func loadCaseTensors(t *testing.T, m *golden.Manifest, raw json.RawMessage) (goldenIO, map[string]stTensor) {
	t.Helper()
	var c struct {
		IO goldenIO `json:"io"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("case: %v", err)
	}
	if c.IO.File == "" {
		t.Fatalf("case has no io.file")
	}
	ts, err := readSafetensorsF32(m.Path(c.IO.File))
	if err != nil {
		t.Fatalf("%v", err)
	}
	return c.IO, ts
}

// TestGolden checks the package against the upstream reference outputs of the golden directory
// ($GOLDEN_DIR, default ../shared/golden): one subtest per manifest case this package can
// reproduce without the DiT. The sampling loops are replayed: the recorded per-step denoised
// outputs of the DiT stand in for the model, so the sampler, noise, schedule, noise scaling and
// latent format are checked end to end.
func TestGolden(t *testing.T) {
	m := golden.MustLoad(t)
	handled := map[string]func(*testing.T, *golden.Manifest, json.RawMessage){
		"sigma_schedules":    goldenSigmaSchedules,
		"noise":              goldenNoise,
		"txt2img_loop":       goldenLoop,
		"img2img_loop":       goldenLoop,
		"res_multistep_loop": goldenLoop,
		"dpmpp_2m_loop":      goldenLoop,
		"cfg_loop":           goldenLoop,
	}
	names := make([]string, 0, len(handled))
	for name := range handled {
		names = append(names, name)
	}
	slices.Sort(names)
	ran := 0
	for _, name := range names {
		raw, ok := m.Cases[name]
		if !ok {
			continue
		}
		ran++
		t.Run(name, func(t *testing.T) { handled[name](t, m, raw) })
	}
	if ran == 0 {
		t.Fatalf("golden directory %s has none of the cases %v", m.Dir, names)
	}
}

var scheduleName = regexp.MustCompile(`^([a-z_]+)_steps(\d+)_denoise([0-9.]+)$`)

func goldenSigmaSchedules(t *testing.T, m *golden.Manifest, raw json.RawMessage) {
	tol := caseTolerance(raw, 0)
	io, ts := loadCaseTensors(t, m, raw)
	table, ok := ts["model_sampling_sigmas_table"]
	if !ok {
		t.Fatalf("no model_sampling_sigmas_table in %s", io.File)
	}
	var c struct {
		Shift      *float64 `json:"shift"`
		Multiplier *float64 `json:"multiplier"`
	}
	_ = json.Unmarshal(raw, &c)
	mult := 1.0
	if c.Multiplier != nil {
		mult = *c.Multiplier
	}
	var shift float64
	if c.Shift != nil {
		shift = *c.Shift
	} else {
		// The table's middle entry is shift/(1+shift) at t = 0.5; the node's shift has
		// two decimals (step 0.01).
		s := float64(table.Data[len(table.Data)/2-1])
		shift = math.Round(s/(1-s)*100) / 100
		t.Logf("shift inferred from the table: %v", shift)
	}
	ms, err := NewFlowSampling(shift, mult)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(ms.Table(), table.Data); d > tol {
		t.Errorf("sigma table: max |diff| %g > %g (ulp %d)", d, tol, ulpDiff(ms.Table(), table.Data))
	}
	checked := 0
	for name := range io.Tensors {
		want, ok := ts[name]
		if !ok || name == "model_sampling_sigmas_table" {
			continue
		}
		sm := scheduleName.FindStringSubmatch(name)
		if sm == nil {
			if len(name) > len("official_") && name[:len("official_")] == "official_" {
				continue // the official repo's schedule, stored for comparison only
			}
			t.Errorf("unrecognised schedule tensor %q", name)
			continue
		}
		steps, _ := strconv.Atoi(sm[2])
		denoise, _ := strconv.ParseFloat(sm[3], 64)
		got, err := KSamplerSigmas(ms, sm[1], steps, denoise)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d := maxAbsDiff(got, want.Data); d > tol {
			t.Errorf("%s: got %v, want %v (max |diff| %g > %g)", name, got, want.Data, d, tol)
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("no schedules checked in %s", io.File)
	}
	t.Logf("table and %d schedules within %g", checked, tol)
}

func goldenNoise(t *testing.T, m *golden.Manifest, raw json.RawMessage) {
	tol := caseTolerance(raw, 1e-6)
	_, ts := loadCaseTensors(t, m, raw)
	var c struct {
		Seeds map[string]struct {
			Shape []int  `json:"shape"`
			Seed  uint64 `json:"seed"`
		} `json:"seeds"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || len(c.Seeds) == 0 {
		t.Fatalf("noise case: no seeds (%v)", err)
	}
	for name, s := range c.Seeds {
		want, ok := ts[name]
		if !ok {
			t.Errorf("%s: tensor missing", name)
			continue
		}
		got, err := PrepareNoise(s.Shape, s.Seed, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		d := maxAbsDiff(got.Data, want.Data)
		same := 0
		for i := range got.Data {
			if got.Data[i] == want.Data[i] {
				same++
			}
		}
		if d > tol {
			t.Errorf("%s (seed %d, shape %v): max |diff| %g > %g", name, s.Seed, s.Shape, d, tol)
		}
		t.Logf("%s: shape %v seed %d: max |diff| %g, %d/%d bit-identical", name, s.Shape, s.Seed, d, same, len(got.Data))
	}
}

// loopCase is the description of a sampling-loop case; absent fields take the values the
// txt2img/img2img cases state in their text (euler, simple, shift 3, cfg 1, denoise 1).
type loopCase struct {
	Sampler   string   `json:"sampler"`
	Scheduler string   `json:"scheduler"`
	Steps     int      `json:"steps"`
	Denoise   *float64 `json:"denoise"`
	CFG       *float64 `json:"cfg"`
	Seed      uint64   `json:"noise_seed"`
	Shift     *float64 `json:"shift"`
}

func (c *loopCase) defaults() {
	if c.Sampler == "" {
		c.Sampler = "euler"
	}
	if c.Scheduler == "" {
		c.Scheduler = "simple"
	}
	if c.Denoise == nil {
		c.Denoise = new(float64)
		*c.Denoise = 1
	}
	if c.CFG == nil {
		c.CFG = new(float64)
		*c.CFG = 1
	}
	if c.Shift == nil {
		c.Shift = new(float64)
		*c.Shift = 3
	}
}

func goldenLoop(t *testing.T, m *golden.Manifest, raw json.RawMessage) {
	tol := caseTolerance(raw, 5e-4)
	var c loopCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c.defaults()
	_, ts := loadCaseTensors(t, m, raw)
	get := func(name string) stTensor {
		t.Helper()
		v, ok := ts[name]
		if !ok {
			t.Fatalf("tensor %q missing", name)
		}
		return v
	}
	check := func(what string, got, want []float32, tol float64) {
		t.Helper()
		d := maxAbsDiff(got, want)
		if d > tol {
			t.Errorf("%s: max |diff| %g > %g", what, d, tol)
		}
		t.Logf("%s: max |diff| %g", what, d)
	}
	noiseT := get("noise")
	shape := noiseT.Shape
	ms, err := NewFlowSampling(*c.Shift, 1)
	if err != nil {
		t.Fatal(err)
	}

	noise, err := PrepareNoise(shape, c.Seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("noise", noise.Data, noiseT.Data, 1e-6)
	sigmas, err := KSamplerSigmas(ms, c.Scheduler, c.Steps, *c.Denoise)
	if err != nil {
		t.Fatal(err)
	}
	check("sigmas", sigmas, get("sigmas").Data, 0)

	latent, _ := NewLatent(shape...)
	if li, ok := ts["latent_in"]; ok {
		latent.Data = append([]float32(nil), li.Data...)
	}
	in := latent
	if !latent.IsZero() {
		in = Flux.ProcessIn(latent)
	}
	x, err := ms.NoiseScaling(sigmas[0], noise, in)
	if err != nil {
		t.Fatal(err)
	}
	check("x_init", x.Data, get("x_init").Data, 1e-6)

	// Replay: the recorded denoised outputs per step (per conditioning for cfg) are the model.
	traceX := get("trace_x")
	steps := traceX.Shape[0]
	per := len(traceX.Data) / steps
	slice := func(tt stTensor, i int) *Latent {
		l, err := LatentFrom(append([]float32(nil), tt.Data[i*per:(i+1)*per]...), shape...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	mk := func(name, tensor string) *replay {
		tt := get(tensor)
		r := &replay{t: t, name: name, xTol: tol}
		for i := 0; i < steps; i++ {
			r.xs = append(r.xs, slice(traceX, i))
			r.outs = append(r.outs, slice(tt, i))
			r.sigmas = append(r.sigmas, sigmas[i])
		}
		return r
	}
	var pos, neg *replay
	if _, ok := ts["trace_cond_denoised"]; ok {
		pos, neg = mk("cond", "trace_cond_denoised"), mk("uncond", "trace_uncond_denoised")
	} else {
		pos = mk("model", "trace_denoised")
	}
	var negD Denoiser
	if neg != nil {
		negD = neg
	}
	model, err := CFG(pos, negD, *c.CFG)
	if err != nil {
		t.Fatal(err)
	}
	traceDen := get("trace_denoised")
	var maxDen float64
	out, err := RunSampler(context.Background(), c.Sampler, model, x, sigmas, SamplerOptions{Seed: c.Seed, Callback: func(s Step) {
		maxDen = math.Max(maxDen, maxAbsDiff(s.Denoised.Data, slice(traceDen, s.Index).Data))
	}})
	if err != nil {
		t.Fatal(err)
	}
	if pos.next != steps {
		t.Errorf("model called %d times, recorded %d", pos.next, steps)
	}
	if maxDen > tol {
		t.Errorf("denoised (after cfg) differs from trace_denoised by %g > %g", maxDen, tol)
	}
	t.Logf("trace_x: max |diff| %g; trace_denoised: max |diff| %g", pos.maxDx, maxDen)
	out = ms.InverseNoiseScaling(sigmas[len(sigmas)-1], out)
	check("sampler_out", out.Data, get("sampler_out").Data, tol)
	check("latent_out", Flux.ProcessOut(out).Data, get("latent_out").Data, tol)

	// The same run through KSample, the node-level entry point.
	pos.next = 0
	if neg != nil {
		neg.next = 0
	}
	p := DefaultKSamplerParams(ms, Flux)
	p.Seed, p.Steps, p.CFG, p.Sampler, p.Scheduler, p.Denoise = c.Seed, c.Steps, *c.CFG, c.Sampler, c.Scheduler, *c.Denoise
	full, err := KSample(context.Background(), pos, negD, latent, p)
	if err != nil {
		t.Fatal(err)
	}
	check("KSample latent_out", full.Data, get("latent_out").Data, tol)
	if t.Failed() {
		t.Logf("case: %+v", c)
	}
}
