package sampling

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// scheduleULP is how far (in float32 ulps) each scheduler may be from torch: the ones built
// from IEEE arithmetic and the sigma table are exact; karras, exponential and kl_optimal pass
// through pow/exp/tan, which torch takes from SLEEF (within 1 ulp) and Go computes correctly
// rounded: measured at most 1 ulp apart.
var scheduleULP = map[string]int64{
	"simple": 0, "sgm_uniform": 0, "normal": 0, "ddim_uniform": 0, "beta": 0, "linear_quadratic": 0,
	"karras": 1, "exponential": 1, "kl_optimal": 1,
}

func TestFlowTableMatchesComfy(t *testing.T) {
	ref := loadReference(t)
	for _, set := range ref.Schedules {
		t.Run(fmt.Sprintf("shift%v_mult%v", set.Shift, set.Multiplier), func(t *testing.T) {
			ms, err := NewFlowSampling(set.Shift, set.Multiplier)
			if err != nil {
				t.Fatal(err)
			}
			if u := ulpDiff(ms.Table(), set.Table); u != 0 {
				t.Errorf("table differs from ComfyUI's by %d ulp", u)
			}
			if ms.SigmaMax() != set.Table[TableSize-1] || ms.SigmaMin() != set.Table[0] {
				t.Errorf("sigma min/max %v/%v", ms.SigmaMin(), ms.SigmaMax())
			}
		})
	}
}

func TestSchedulersMatchComfy(t *testing.T) {
	ref := loadReference(t)
	seen := map[string]int{}
	for _, set := range ref.Schedules {
		ms, err := NewFlowSampling(set.Shift, set.Multiplier)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range set.Schedules {
			name := fmt.Sprintf("%s/shift%v_mult%v/steps%d", s.Scheduler, set.Shift, set.Multiplier, s.Steps)
			t.Run(name, func(t *testing.T) {
				got, err := CalculateSigmas(ms, s.Scheduler, s.Steps)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(s.Sigmas) {
					t.Fatalf("got %d sigmas %v, want %d %v", len(got), got, len(s.Sigmas), s.Sigmas)
				}
				if u := ulpDiff(got, s.Sigmas); u > scheduleULP[s.Scheduler] {
					t.Errorf("got %v\nwant %v\n(%d ulp, allowed %d)", got, s.Sigmas, u, scheduleULP[s.Scheduler])
				}
			})
			seen[s.Scheduler]++
		}
	}
	for _, name := range Schedulers() {
		if seen[name] == 0 {
			t.Errorf("scheduler %s has no reference schedule", name)
		}
	}
}

func TestKSamplerSigmasMatchComfy(t *testing.T) {
	ref := loadReference(t)
	ms, err := NewFlowSampling(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range ref.KSamplerSigmas {
		name := fmt.Sprintf("%d_%s_steps%d_denoise%v", i, c.Scheduler, c.Steps, c.Denoise)
		if c.Start != nil {
			name += fmt.Sprintf("_range%d-%d_leftover%v", *c.Start, *c.End, c.LeftoverNoise)
		}
		t.Run(name, func(t *testing.T) {
			got, err := KSamplerSigmas(ms, c.Scheduler, c.Steps, c.Denoise)
			if err != nil {
				t.Fatal(err)
			}
			skip := false
			if c.Start != nil {
				got, skip, err = StepRange{Start: *c.Start, End: *c.End, LeftoverNoise: c.LeftoverNoise}.Apply(got)
				if err != nil {
					t.Fatal(err)
				}
			}
			if skip != c.Skip {
				t.Fatalf("skip = %v, want %v", skip, c.Skip)
			}
			if skip {
				return
			}
			if len(got) != len(c.Sigmas) || ulpDiff(got, c.Sigmas) > scheduleULP[c.Scheduler] {
				t.Errorf("got %v, want %v", got, c.Sigmas)
			}
		})
	}
}

// TestSimpleScheduleSpec checks the values the spec (zimage.md §5.2) prints for shift 3.
func TestSimpleScheduleSpec(t *testing.T) {
	ms, err := NewFlowSampling(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		steps   int
		denoise float64
		want    []float32
	}{
		{9, 1, []float32{1.0, 0.96004325, 0.9131456, 0.8573264, 0.78977275, 0.70634925, 0.6007194, 0.46265563, 0.27450982, 0}},
		{8, 1, []float32{1.0, 0.95454544, 0.9, 0.8333333, 0.75, 0.64285713, 0.5, 0.3, 0}},
		{9, 0.5, []float32{0.75, 0.70634925, 0.6563555, 0.6007194, 0.5359897, 0.46265563, 0.37556222, 0.27450982, 0.15107915, 0}},
	}
	for _, c := range cases {
		got, err := KSamplerSigmas(ms, "simple", c.steps, c.denoise)
		if err != nil {
			t.Fatal(err)
		}
		if ulpDiff(got, c.want) != 0 {
			t.Errorf("steps %d denoise %v: got %v, want %v", c.steps, c.denoise, got, c.want)
		}
	}
	if got := ms.SigmaMin(); got != 0.002994012 {
		t.Errorf("sigma_min %v, want 0.002994012", got)
	}
}

func TestSchedulerErrors(t *testing.T) {
	ms, err := NewFlowSampling(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		ms        *FlowSampling
		scheduler string
		steps     int
		denoise   float64
	}{
		{"steps 0", ms, "simple", 0, 1},
		{"negative steps", ms, "karras", -3, 1},
		{"unknown scheduler", ms, "cosine", 8, 1},
		{"empty scheduler", ms, "", 8, 1},
		{"unknown scheduler with denoise 0", ms, "nope", 8, 0},
		{"denoise above 1", ms, "simple", 8, 1.5},
		{"negative denoise", ms, "simple", 8, -0.1},
		{"NaN denoise", ms, "simple", 8, math.NaN()},
		{"kl_optimal with one step", ms, "kl_optimal", 1, 1},
		{"schedule too long", ms, "simple", 10000, 0.001},
		{"no model sampling", nil, "simple", 8, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := KSamplerSigmas(c.ms, c.scheduler, c.steps, c.denoise)
			if !errors.Is(err, ErrParam) {
				t.Fatalf("err = %v, want ErrParam", err)
			}
		})
	}
}

func TestFlowSamplingErrors(t *testing.T) {
	for _, c := range []struct{ shift, mult float64 }{{0, 1}, {-1, 1}, {math.NaN(), 1}, {math.Inf(1), 1}, {3, 0}, {3, math.NaN()}} {
		if _, err := NewFlowSampling(c.shift, c.mult); !errors.Is(err, ErrParam) {
			t.Errorf("NewFlowSampling(%v, %v) err = %v, want ErrParam", c.shift, c.mult, err)
		}
	}
}

func TestDenoiseZeroSamplesNothing(t *testing.T) {
	ms, _ := NewFlowSampling(3, 1)
	got, err := KSamplerSigmas(ms, "simple", 8, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want empty schedule", got, err)
	}
}

func TestStepRangeErrors(t *testing.T) {
	for _, r := range []StepRange{{Start: -1, End: 5}, {Start: 0, End: -2}} {
		if _, _, err := r.Apply([]float32{1, 0.5, 0}); !errors.Is(err, ErrParam) {
			t.Errorf("%+v: err = %v, want ErrParam", r, err)
		}
	}
}

func TestBetaPPF(t *testing.T) {
	cases := []struct{ p, a, b, want float64 }{
		{0.5, 0.6, 0.6, 0.5},
		{0, 0.6, 0.6, 0},
		{1, 0.6, 0.6, 1},
		{0.25, 1, 1, 0.25},         // uniform
		{0.36, 2, 1, 0.6},          // I_x(2,1) = x²
		{0.19, 1, 2, 0.1},          // I_x(1,2) = 1-(1-x)²
		{0.5, 2, 2, 0.5},           // symmetric
		{0.15625, 2, 2, 0.25},      // I_x(2,2) = 3x²-2x³
		{0.84375, 2, 2, 0.75},      // its mirror
		{0.3, 0.5, 0.5, 0.2061073}, // arcsine law: sin²(πp/2)
	}
	for _, c := range cases {
		got, err := betaPPF(c.p, c.a, c.b)
		if err != nil {
			t.Fatal(err)
		}
		tol := 1e-12
		if c.a == 0.5 {
			tol = 1e-7
		}
		if math.Abs(got-c.want) > tol {
			t.Errorf("ppf(%v; %v, %v) = %v, want %v", c.p, c.a, c.b, got, c.want)
		}
	}
	if _, err := betaPPF(0.5, 0, 1); !errors.Is(err, ErrParam) {
		t.Errorf("bad parameters accepted: %v", err)
	}
}

func TestFlowSamplingAccessors(t *testing.T) {
	ms, err := NewFlowSampling(1.73, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if ms.Shift() != 1.73 || ms.Multiplier() != 1000 {
		t.Errorf("shift %v multiplier %v", ms.Shift(), ms.Multiplier())
	}
	if got := ms.Timestep(0.5); got != 500 {
		t.Errorf("timestep(0.5) = %v, want 500", got)
	}
	cases := []struct{ percent, want float64 }{
		{-1, 1}, {0, 1}, {1, 0}, {2, 0},
		{0.5, 1.73 * 0.5 / (1 + 0.73*0.5)},
		{1e-4, 1.73 * 0.9999 / (1 + 0.73*0.9999)},
	}
	for _, c := range cases {
		if got := ms.PercentToSigma(c.percent); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("percent_to_sigma(%v) = %v, want %v", c.percent, got, c.want)
		}
	}
	one, _ := NewFlowSampling(1, 1)
	if got := one.PercentToSigma(0.25); got != 0.75 {
		t.Errorf("shift 1: percent_to_sigma(0.25) = %v", got)
	}
}
