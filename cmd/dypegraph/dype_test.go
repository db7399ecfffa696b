package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/dype"
)

type dypeTableJSON struct {
	Inputs     map[string]any `json:"inputs"`
	MethodUsed string         `json:"method_used"`
	SigmaUsed  float64        `json:"sigma_used"`
	Scale      float64        `json:"scale"`
	KT         float64        `json:"k_t"`
	ShiftMu    *float64       `json:"shift_mu"`
	Axes       []struct {
		Axis      int       `json:"axis"`
		Dims      int       `json:"dims"`
		Omega     []float64 `json:"omega"`
		MScale    float64   `json:"mscale"`
		Positions []float64 `json:"positions"`
	} `json:"axes"`
}

func runDypeCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(append([]string{"dype"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDypeTableModesAndMethods(t *testing.T) {
	for _, mode := range []string{"llm_dit", "comfy"} {
		for _, method := range []string{"vision_yarn", "yarn", "ntk"} {
			t.Run(mode+"_"+method, func(t *testing.T) {
				code, stdout, stderr := runDypeCLI(t, "table", "--width", "2560", "--height", "1536",
					"--method", method, "--sigma", "0.6", "--mode", mode)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				if strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
					t.Fatalf("want one JSON line, got %q", stdout)
				}
				var got dypeTableJSON
				if err := json.Unmarshal([]byte(stdout), &got); err != nil {
					t.Fatalf("bad JSON %q: %v", stdout, err)
				}
				// Independent expectations from the dype package.
				cfg := dype.DefaultConfig()
				cfg.Enabled, cfg.Method, cfg.Mode = true, dype.Method(method), dype.Mode(mode)
				r, err := dype.New(cfg, dype.ZImageRope(), dype.Geometry{Width: 2560, Height: 1536})
				if err != nil {
					t.Fatal(err)
				}
				st, err := r.StepAt(0.6)
				if err != nil {
					t.Fatal(err)
				}
				if got.Scale != 2.5 || got.Scale != st.Scale {
					t.Errorf("scale %v, want 2.5", got.Scale)
				}
				if math.Abs(got.KT-2*got.SigmaUsed*got.SigmaUsed) > 1e-12 {
					t.Errorf("k_t %v for σ %v", got.KT, got.SigmaUsed)
				}
				wantMu := map[string]float64{"llm_dit": 1.15, "comfy": 0.5}[mode]
				if got.ShiftMu == nil || *got.ShiftMu != wantMu {
					t.Errorf("shift_mu %v, want %v", got.ShiftMu, wantMu)
				}
				if len(got.Axes) != 3 {
					t.Fatalf("%d axes", len(got.Axes))
				}
				wantDims := []int{32, 48, 48}
				wantPos := []int{0, 1536 / 16, 2560 / 16}
				for a, ax := range got.Axes {
					if ax.Axis != a || ax.Dims != wantDims[a] || len(ax.Omega) != wantDims[a]/2 {
						t.Errorf("axis %d: %+v", a, ax)
					}
					if len(ax.Positions) != wantPos[a] {
						t.Errorf("axis %d: %d positions, want %d", a, len(ax.Positions), wantPos[a])
					}
					for k := range ax.Omega {
						if ax.Omega[k] != st.Image[a].Omega[k] {
							t.Errorf("axis %d ω[%d] = %v, want %v", a, k, ax.Omega[k], st.Image[a].Omega[k])
							break
						}
					}
					if ax.MScale != st.Image[a].MScale {
						t.Errorf("axis %d mscale %v, want %v", a, ax.MScale, st.Image[a].MScale)
					}
					for i := 1; i < len(ax.Positions); i++ {
						if !(ax.Positions[i] > ax.Positions[i-1]) {
							t.Errorf("axis %d positions not ascending at %d", a, i)
							break
						}
					}
				}
				if got.Axes[0].MScale != 1 {
					t.Errorf("axis 0 mscale %v, want 1", got.Axes[0].MScale)
				}
				if got.Inputs["mode"] != mode || got.Inputs["method"] != method || got.Inputs["enabled"] != true {
					t.Errorf("inputs %v", got.Inputs)
				}
			})
		}
	}
}

func TestDypeTableDefaultsAndDisabled(t *testing.T) {
	code, stdout, stderr := runDypeCLI(t, "table")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got dypeTableJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	// 1024² at the base grid: vanilla RoPE, k_t = 2 at σ = 1, μ = base shift.
	if got.Scale != 1 || got.KT != 2 || got.ShiftMu == nil || *got.ShiftMu != 0.5 || got.Axes[1].MScale != 1 {
		t.Fatalf("defaults: %+v", got)
	}
	for k, w := range got.Axes[1].Omega {
		if want := 1 / math.Pow(256, float64(2*k)/48); w != want {
			t.Fatalf("ω[%d] = %v, want vanilla %v", k, w, want)
		}
	}
	// Disabled: llm_dit runs static NTK (method_used ntk); comfy sets no μ.
	code, stdout, _ = runDypeCLI(t, "table", "--width", "2048", "--height", "2048", "--disabled")
	if code != 0 {
		t.Fatal(code)
	}
	got = dypeTableJSON{}
	_ = json.Unmarshal([]byte(stdout), &got)
	if got.MethodUsed != "ntk" || got.Axes[1].Omega[1] >= 1/math.Pow(256, 2.0/48) {
		t.Fatalf("disabled llm_dit: %+v", got)
	}
	code, stdout, _ = runDypeCLI(t, "table", "--width", "2048", "--height", "2048", "--disabled", "--mode", "comfy")
	if code != 0 {
		t.Fatal(code)
	}
	if !strings.Contains(stdout, `"shift_mu":null`) {
		t.Fatalf("disabled comfy: want shift_mu null in %s", stdout)
	}
}

func TestDypeTableInvalidArguments(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"table", "--width", "1000"}, "--width"},
		{[]string{"table", "--height", "0"}, "--height"},
		{[]string{"table", "--height", "-16"}, "--height"},
		{[]string{"table", "--sigma", "1.5"}, "--sigma"},
		{[]string{"table", "--sigma", "-0.1"}, "--sigma"},
		{[]string{"table", "--sigma", "NaN"}, "--sigma"},
		{[]string{"table", "--method", "pi"}, "unknown method"},
		{[]string{"table", "--mode", "diffusers"}, "unknown mode"},
		{[]string{"table", "--dype-scale", "0"}, "--dype-scale"},
		{[]string{"table", "--dype-exponent", "-1"}, "--dype-exponent"},
		{[]string{"table", "--base-resolution", "8"}, "--base-resolution"},
		{[]string{"table", "--width", "abc"}, "invalid value"},
		{[]string{"table", "--nope"}, "not defined"},
		{[]string{"table", "extra"}, "unexpected argument"},
		{[]string{"bogus"}, "unknown subcommand"},
		{nil, "usage"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.args), func(t *testing.T) {
			code, stdout, stderr := runDypeCLI(t, c.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout should be empty, got %q", stdout)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q lacks %q", stderr, c.msg)
			}
		})
	}
}

func TestDypeHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"table", "-h"}, {"table", "--help"}} {
		code, stdout, stderr := runDypeCLI(t, args...)
		if code != 0 || stdout != "" || !strings.Contains(stderr, "usage: dypegraph dype") {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, code, stdout, stderr)
		}
	}
	var errb bytes.Buffer
	runMain(nil, &bytes.Buffer{}, &errb)
	if !strings.Contains(errb.String(), "dype") {
		t.Errorf("top-level usage does not list dype: %s", errb.String())
	}
}
