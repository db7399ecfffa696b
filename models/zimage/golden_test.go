package zimage

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/internal/golden/goldentensor"
	"github.com/dypegraph/dypegraph/tensor"
)

// The DiT golden cases (shared/golden/manifest.json) are ComfyUI NextDiT forwards of a tiny
// random-weight model in float32. Every shape and config is read from the files, so the test
// runs on any golden directory of the same format.

// goldenDev is a manifest deviation record (float32 vs float64 re-run of the reference).
type goldenDev struct {
	MaxAbs float64 `json:"max_abs"`
}

type goldenCase struct {
	Weights string `json:"weights"`
	IO      struct {
		File string `json:"file"`
	} `json:"io"`
	Latent     []int     `json:"latent_shape"`
	CaptionLen int       `json:"caption_len"`
	Dev        goldenDev `json:"fp32_vs_fp64"`
	Subcases   map[string]struct {
		Prefix string         `json:"prefix"`
		Node   map[string]any `json:"node"`
		LLMDiT map[string]any `json:"llm_dit_config"`
		Dev    goldenDev      `json:"fp32_vs_fp64"`
	} `json:"subcases"`
}

// tolerance is the allowed max |Δ| of a forward output: a multiple of the reference's own
// float32-vs-float64 deviation (different summation orders give errors of that size), and at
// least 1.5e-5 of the output's magnitude.
func tolerance(dev goldenDev, absmax float64) float64 {
	return math.Max(20*dev.MaxAbs, 1.5e-5*absmax)
}

var goldenDiTCases = []string{"dit_a_t0", "dit_a_t1", "dit_b_batch2", "dit_dype_comfy", "dit_dype_llmdit"}

func TestGolden(t *testing.T) {
	gm := golden.MustLoad(t)
	be := testBackend(t)
	models := map[string]*Model{}
	top := t
	model := func(t *testing.T, file string) *Model {
		t.Helper()
		if m, ok := models[file]; ok {
			return m
		}
		m, err := Load(gm.Path(file), be, Options{})
		if err != nil {
			t.Fatal(err)
		}
		top.Cleanup(func() { m.Close() })
		models[file] = m
		return m
	}
	for _, name := range goldenDiTCases {
		t.Run(name, func(t *testing.T) {
			raw, ok := gm.Cases[name]
			if !ok {
				t.Fatalf("golden set has no case %s", name)
			}
			var gc goldenCase
			if err := json.Unmarshal(raw, &gc); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			m := model(t, gc.Weights)
			io := goldentensor.Open(t, gm.Path(gc.IO.File))
			if strings.HasPrefix(name, "dit_dype_") {
				goldenDyPE(t, m, io, &gc, strings.HasSuffix(name, "comfy"))
				return
			}
			goldenPlain(t, m, io, &gc)
		})
	}
}

func goldenPlain(t *testing.T, m *Model, io *goldentensor.File, gc *goldenCase) {
	be := m.Backend()
	x, cx := io.Tensor("x"), io.Tensor("context")
	sig := io.Floats("sigma")
	v, err := m.Forward(context.Background(), Input{X: x, Sigma: sig, Context: cx})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(v)
	if !v.ShapeIs(x.Shape()...) {
		t.Fatalf("output shape %v, want %v", v.Shape(), x.Shape())
	}
	want := io.Floats("model_output")
	diff, absmax := maxAbsDiff(read(t, be, v), want)
	tol := tolerance(gc.Dev, absmax)
	t.Logf("model_output: max |Δ| = %.3g (tolerance %.3g, |out| ≤ %.3g)", diff, tol, absmax)
	if diff > tol {
		t.Errorf("model_output: max |Δ| = %g > %g", diff, tol)
	}
	if io.Has("denoised") {
		x0, err := Denoised(be, x, v, sig)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Free(x0)
		d, am := maxAbsDiff(read(t, be, x0), io.Floats("denoised"))
		if tol := tolerance(gc.Dev, am); d > tol {
			t.Errorf("denoised: max |Δ| = %g > %g", d, tol)
		}
		t.Logf("denoised: max |Δ| = %.3g", d)
	}
}

// dypeConfig maps a golden subcase to the DyPE config the nodes would build: ComfyUI-DyPE
// node inputs (comfy mode) or an llm-dit DyPEConfig.
func dypeConfig(t *testing.T, comfy bool, node, llm map[string]any) dype.Config {
	t.Helper()
	m := map[string]any{}
	if comfy {
		m["mode"] = string(dype.ModeComfy)
		for _, k := range []string{"method", "base_resolution", "dype_start_sigma", "dype_scale", "dype_exponent", "base_shift", "max_shift"} {
			if v, ok := node[k]; ok {
				m[k] = v
			}
		}
		m["enabled"] = node["enable_dype"]
		m["anisotropic"] = node["yarn_alt_scaling"]
	} else {
		for k, v := range llm {
			m[k] = v
		}
		m["mode"] = string(dype.ModeLLMDiT)
	}
	cfg, err := dype.FromMap(m)
	if err != nil {
		t.Fatalf("dype config: %v", err)
	}
	return cfg
}

func goldenDyPE(t *testing.T, m *Model, io *goldentensor.File, gc *goldenCase, comfy bool) {
	be := m.Backend()
	x, cx := io.Tensor("x"), io.Tensor("context")
	if len(gc.Subcases) == 0 {
		t.Fatal("no subcases")
	}
	subs := make([]string, 0, len(gc.Subcases))
	for k := range gc.Subcases {
		subs = append(subs, k)
	}
	slices.Sort(subs)
	for _, sub := range subs {
		sc := gc.Subcases[sub]
		t.Run(sub, func(t *testing.T) {
			cfg := dypeConfig(t, comfy, sc.Node, sc.LLMDiT)
			geom := dype.Geometry{Width: x.Dim(3) * dype.VAEDownscale, Height: x.Dim(2) * dype.VAEDownscale}
			if comfy {
				geom.RequestedWidth = intOf(t, sc.Node["width"])
				geom.RequestedHeight = intOf(t, sc.Node["height"])
			}
			rope, err := dype.New(cfg, m.RopeSpec(), geom)
			if err != nil {
				t.Fatal(err)
			}
			sig := io.Floats(sc.Prefix + "sigma")
			// What the sampler does before each step.
			if err := rope.SetSigma(dype.NormalizeSigma(float64(sig[0]), 1)); err != nil {
				t.Fatal(err)
			}
			want := io.Floats(sc.Prefix + "model_output")
			check := func(what string, v *tensor.Tensor) {
				t.Helper()
				defer be.Free(v)
				diff, absmax := maxAbsDiff(read(t, be, v), want)
				tol := tolerance(sc.Dev, absmax)
				t.Logf("%s: max |Δ| = %.3g (tolerance %.3g)", what, diff, tol)
				if diff > tol {
					t.Errorf("%s: model_output max |Δ| = %g > %g", what, diff, tol)
				}
			}
			v, err := m.Forward(context.Background(), Input{X: x, Sigma: sig, Context: cx, Rope: rope})
			if err != nil {
				t.Fatal(err)
			}
			check("dype.Rope", v)
			// The same forward with the tables the reference attention saw.
			rc, rs := io.Floats(sc.Prefix+"rope_cos"), io.Floats(sc.Prefix+"rope_sin")
			tabs := func(l ropeLayout) (ropeTables, error) {
				return ropeTables{cos: rc, sin: rs, lanes: m.Config().HeadDim / 2}, nil
			}
			v, err = m.forward(context.Background(), Input{X: x, Sigma: sig, Context: cx}, fwdOpts{tables: tabs})
			if err != nil {
				t.Fatal(err)
			}
			check("recorded tables", v)
		})
	}
}

func intOf(t *testing.T, v any) int {
	t.Helper()
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) {
		t.Fatalf("not an integer: %v", v)
	}
	return int(f)
}

// TestGoldenIntermediates compares what a case records of the inside of the reference forward:
// the RoPE tables bit for bit, the timestep embedding, every block's input and output and the
// final layer, so that a failure of TestGolden can be located.
func TestGoldenIntermediates(t *testing.T) {
	gm := golden.MustLoad(t)
	be := testBackend(t)
	found := 0
	for _, name := range goldenDiTCases {
		raw, ok := gm.Cases[name]
		if !ok {
			continue
		}
		var gc struct {
			goldenCase
			Inter *struct {
				File string `json:"file"`
			} `json:"intermediates"`
		}
		if err := json.Unmarshal(raw, &gc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if gc.Inter == nil {
			continue
		}
		found++
		t.Run(name, func(t *testing.T) {
			m, err := Load(gm.Path(gc.Weights), be, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			io := goldentensor.Open(t, gm.Path(gc.IO.File))
			rec := goldentensor.Open(t, gm.Path(gc.Inter.File))
			x, cx := io.Tensor("x"), io.Tensor("context")
			if x.Dim(0) != 1 {
				t.Fatalf("%s records intermediates for batch %d; they are compared for batch 1", name, x.Dim(0))
			}
			c := m.Config()
			gh, gw := (x.Dim(2)+c.PatchSize-1)/c.PatchSize, (x.Dim(3)+c.PatchSize-1)/c.PatchSize
			lay := ropeLayout{capRows: c.padded(cx.Dim(1)), gridH: gh, gridW: gw, imgRows: c.padded(gh * gw)}
			tabs := plainTables(c, lay)
			// rope_embedder.out = caption call, #2 = image call: [1, 1, L, lanes, 2, 2].
			for i, rn := range []string{"rope_embedder.out", "rope_embedder.out#2"} {
				if !rec.Has(rn) {
					continue
				}
				mat := rec.Floats(rn)
				rows0, rows := 0, lay.capRows
				if i == 1 {
					rows0, rows = lay.capRows, lay.imgRows
				}
				if len(mat) != rows*tabs.lanes*4 {
					t.Fatalf("%s: %d values, want %d rows × %d lanes × 4", rn, len(mat), rows, tabs.lanes)
				}
				bad := 0
				for r := range rows {
					for k := range tabs.lanes {
						j := (rows0+r)*tabs.lanes + k
						g := mat[(r*tabs.lanes+k)*4:]
						if g[0] != tabs.cos[j] || g[2] != tabs.sin[j] || g[3] != tabs.cos[j] || g[1] != -tabs.sin[j] {
							if bad < 3 {
								t.Errorf("%s row %d lane %d: cos/sin %v/%v, want %v/%v", rn, r, k, tabs.cos[j], tabs.sin[j], g[0], g[2])
							}
							bad++
						}
					}
				}
				if bad > 0 {
					t.Errorf("%s: %d entries not bit-identical", rn, bad)
				}
			}
			worst := map[string]float64{}
			trace := func(name string, v *tensor.Tensor) {
				want := name
				switch name {
				case "caption", "image":
					return // recorded before padding under other names
				}
				if !rec.Has(want) {
					return
				}
				ref := rec.Floats(want)
				if name == "final_layer.out" {
					// Recorded over the whole joint sequence; the model projects only the image rows.
					pf := v.Dim(-1)
					if len(ref) < (lay.capRows+gh*gw)*pf {
						t.Errorf("final_layer.out: %d values recorded, too few", len(ref))
						return
					}
					ref = ref[lay.capRows*pf : (lay.capRows+gh*gw)*pf]
				}
				diff, absmax := maxAbsDiff(read(t, be, v), ref)
				worst[name] = diff
				if tol := tolerance(gc.Dev, absmax); diff > tol {
					t.Errorf("%s: max |Δ| = %g > %g", name, diff, tol)
				}
			}
			v, err := m.forward(context.Background(), Input{X: x, Sigma: io.Floats("sigma"), Context: cx}, fwdOpts{trace: trace})
			if err != nil {
				t.Fatal(err)
			}
			be.Free(v)
			if len(worst) < 3 {
				t.Errorf("only %d intermediates compared: %v", len(worst), worst)
			}
			t.Logf("max |Δ| per intermediate: %v", worst)
		})
	}
	if found == 0 {
		t.Fatal("golden set has no DiT intermediates")
	}
}
