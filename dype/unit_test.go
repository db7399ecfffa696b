package dype

import (
	"math"
	"strings"
	"testing"
)

// The behaviours of LD's 50 unit tests (tests/unit/test_dype.py, spec §12) as Go tests. The
// Python-structural ones (wrapping a transformer's rope_embedder) map to the Rope API: New is
// the patch, SetSigma the timestep setter, a nil *Rope the unpatched model.

// unitTestCoverage maps every upstream test to the Go test that covers its behaviour;
// TestVectorsUnitTestList checks that the list in vectors.json is fully covered.
var unitTestCoverage = map[string]string{
	"TestDyPEConfig::test_default_values":                           "TestLDConfig/default_values",
	"TestDyPEConfig::test_enabled_config":                           "TestLDConfig/enabled_config",
	"TestDyPEConfig::test_method_selection":                         "TestLDConfig/method_selection",
	"TestDyPEConfig::test_parameter_customization":                  "TestLDConfig/parameter_customization",
	"TestDyPEConfig::test_dype_start_sigma_clamping":                "TestLDConfig/start_sigma_clamping",
	"TestDyPEConfig::test_to_dict":                                  "TestLDConfig/to_dict",
	"TestDyPEConfig::test_from_dict":                                "TestLDConfig/from_dict",
	"TestDyPEConfig::test_from_dict_partial":                        "TestLDConfig/from_dict_partial",
	"TestComputeDypeShift::test_at_base_resolution":                 "TestLDComputeDypeShift/at_base_resolution",
	"TestComputeDypeShift::test_at_max_resolution":                  "TestLDComputeDypeShift/at_max_resolution",
	"TestComputeDypeShift::test_interpolation":                      "TestLDComputeDypeShift/interpolation",
	"TestComputeDypeShift::test_max_seq_len_equals_base":            "TestLDComputeDypeShift/max_seq_len_equals_base",
	"TestComputeKt::test_at_sigma_1":                                "TestLDComputeKt/at_sigma_1",
	"TestComputeKt::test_at_sigma_0":                                "TestLDComputeKt/at_sigma_0",
	"TestComputeKt::test_decay_with_quadratic_exponent":             "TestLDComputeKt/decay_quadratic",
	"TestComputeKt::test_different_scales":                          "TestLDComputeKt/different_scales",
	"TestComputeKt::test_different_exponents":                       "TestLDComputeKt/different_exponents",
	"TestComputeMscale::test_no_scaling":                            "TestLDComputeMscale/no_scaling",
	"TestComputeMscale::test_scaling_at_sigma_1":                    "TestLDComputeMscale/at_sigma_1",
	"TestComputeMscale::test_scaling_at_sigma_0":                    "TestLDComputeMscale/at_sigma_0",
	"TestComputeMscale::test_interpolation":                         "TestLDComputeMscale/interpolation",
	"TestComputeMscale::test_higher_scale_factor":                   "TestLDComputeMscale/higher_scale",
	"TestAxisTokenSpan::test_single_token":                          "TestLDAxisTokenSpan/single_token",
	"TestAxisTokenSpan::test_sequential_integers":                   "TestLDAxisTokenSpan/sequential",
	"TestAxisTokenSpan::test_fractional_positions":                  "TestLDAxisTokenSpan/fractional",
	"TestAxisTokenSpan::test_2d_positions":                          "TestLDAxisTokenSpan/2d",
	"TestAxisTokenSpan::test_duplicate_positions":                   "TestLDAxisTokenSpan/duplicates",
	"TestVisionYaRNHelpers::test_find_correction_factor":            "TestLDHelpers/find_correction_factor",
	"TestVisionYaRNHelpers::test_find_correction_range":             "TestLDHelpers/find_correction_range",
	"TestVisionYaRNHelpers::test_linear_ramp_mask":                  "TestLDHelpers/linear_ramp_mask",
	"TestVisionYaRNHelpers::test_find_newbase_ntk":                  "TestLDHelpers/find_newbase_ntk",
	"TestGet1DNTKPosEmbed::test_basic_computation":                  "TestLDEmbedders/ntk_basic",
	"TestGet1DNTKPosEmbed::test_ntk_scaling":                        "TestLDEmbedders/ntk_scaling",
	"TestGet1DVisionYaRNPosEmbed::test_basic_computation":           "TestLDEmbedders/vision_yarn_basic",
	"TestGet1DVisionYaRNPosEmbed::test_dype_modulation":             "TestLDEmbedders/vision_yarn_dype_modulation",
	"TestGet1DVisionYaRNPosEmbed::test_timestep_progression":        "TestLDEmbedders/vision_yarn_timestep_progression",
	"TestGet1DYaRNPosEmbed::test_basic_computation":                 "TestLDEmbedders/yarn_basic",
	"TestZImageDyPERoPE::test_initialization":                       "TestLDZImageRoPE/initialization",
	"TestZImageDyPERoPE::test_set_timestep":                         "TestLDZImageRoPE/set_timestep",
	"TestZImageDyPERoPE::test_set_scale_hint":                       "TestLDZImageRoPE/set_scale_hint",
	"TestZImageDyPERoPE::test_disabled_dype_delegates_to_original":  "TestLDZImageRoPE/disabled_is_plain_rope",
	"TestDyPEPosEmbed::test_initialization":                         "TestLDPosEmbed/initialization",
	"TestDyPEPosEmbed::test_set_timestep":                           "TestLDPosEmbed/set_timestep",
	"TestDyPEPosEmbed::test_base_patch_grid_auto":                   "TestLDPosEmbed/base_patch_grid_auto",
	"TestDyPEPosEmbed::test_base_patch_grid_custom":                 "TestLDPosEmbed/base_patch_grid_custom",
	"TestPatchZImageRoPE::test_patch_creates_wrapper":               "TestLDPatch/creates_wrapper",
	"TestPatchZImageRoPE::test_patch_computes_scale_hint":           "TestLDPatch/computes_scale_hint",
	"TestPatchZImageRoPE::test_patch_without_rope_embedder_raises":  "TestLDPatch/invalid_model_errors",
	"TestSetZImageTimestep::test_sets_timestep_on_dype_embedder":    "TestLDPatch/sets_timestep",
	"TestSetZImageTimestep::test_does_nothing_on_non_dype_embedder": "TestLDPatch/nil_rope_noop",
}

func TestLDConfig(t *testing.T) {
	t.Run("default_values", func(t *testing.T) {
		c := DefaultConfig()
		want := Config{Enabled: false, Method: MethodVisionYarn, DypeScale: 2, DypeExponent: 2, DypeStartSigma: 1,
			BaseShift: 0.5, MaxShift: 1.15, BaseResolution: 1024, Anisotropic: false, Mode: ModeLLMDiT}
		if c != want {
			t.Fatalf("DefaultConfig() = %+v, want %+v", c, want)
		}
	})
	t.Run("enabled_config", func(t *testing.T) {
		c, err := FromMap(map[string]any{"enabled": true})
		if err != nil || !c.Enabled {
			t.Fatalf("enabled = %v, %v", c.Enabled, err)
		}
	})
	t.Run("method_selection", func(t *testing.T) {
		for _, m := range []string{"vision_yarn", "yarn", "ntk"} {
			c, err := FromMap(map[string]any{"method": m})
			if err != nil || string(c.Method) != m {
				t.Errorf("method %q stored as %q (%v)", m, c.Method, err)
			}
		}
	})
	t.Run("parameter_customization", func(t *testing.T) {
		c, err := FromMap(map[string]any{"dype_scale": 3.0, "dype_exponent": 1.5, "base_resolution": 2048})
		if err != nil || c.DypeScale != 3 || c.DypeExponent != 1.5 || c.BaseResolution != 2048 {
			t.Fatalf("got %+v, %v", c, err)
		}
	})
	t.Run("start_sigma_clamping", func(t *testing.T) {
		for in, want := range map[float64]float64{-0.5: 0.001, 1.5: 1.0, 0.5: 0.5} {
			c, err := FromMap(map[string]any{"dype_start_sigma": in})
			if err != nil || c.DypeStartSigma != want {
				t.Errorf("start sigma %v -> %v (%v), want %v", in, c.DypeStartSigma, err, want)
			}
		}
	})
	t.Run("to_dict", func(t *testing.T) {
		c := DefaultConfig()
		c.Enabled, c.Method = true, MethodYarn
		m := c.ToMap()
		if m["enabled"] != true || m["method"] != "yarn" || m["dype_scale"] != 2.0 {
			t.Fatalf("to_dict = %v", m)
		}
		if _, ok := m["base_resolution"]; !ok {
			t.Fatal("to_dict lacks base_resolution")
		}
	})
	t.Run("from_dict", func(t *testing.T) {
		c, err := FromMap(map[string]any{"enabled": true, "method": "ntk", "dype_scale": 1.5, "base_resolution": 2048})
		if err != nil || !c.Enabled || c.Method != MethodNTK || c.DypeScale != 1.5 || c.BaseResolution != 2048 {
			t.Fatalf("from_dict = %+v, %v", c, err)
		}
	})
	t.Run("from_dict_partial", func(t *testing.T) {
		c, err := FromMap(map[string]any{"enabled": true})
		if err != nil || c.Method != MethodVisionYarn {
			t.Fatalf("from_dict partial method = %q, %v", c.Method, err)
		}
	})
}

func TestLDComputeDypeShift(t *testing.T) {
	cfg := DefaultConfig()
	t.Run("at_base_resolution", func(t *testing.T) {
		if got := ComputeDypeShift(4096, 4096, 65536, cfg); got != cfg.BaseShift {
			t.Fatalf("got %v, want %v exactly", got, cfg.BaseShift)
		}
	})
	t.Run("at_max_resolution", func(t *testing.T) {
		if got := ComputeDypeShift(65536, 4096, 65536, cfg); math.Abs(got-cfg.MaxShift) > 1e-6 {
			t.Fatalf("got %v, want %v", got, cfg.MaxShift)
		}
	})
	t.Run("interpolation", func(t *testing.T) {
		got := ComputeDypeShift((4096+65536)/2, 4096, 65536, cfg)
		if !(got > cfg.BaseShift && got < cfg.MaxShift) {
			t.Fatalf("midpoint shift %v not strictly inside (%v, %v)", got, cfg.BaseShift, cfg.MaxShift)
		}
	})
	t.Run("max_seq_len_equals_base", func(t *testing.T) {
		for _, maxLen := range []int{4096, 1000} {
			if got := ComputeDypeShift(9999, 4096, maxLen, cfg); got != cfg.BaseShift {
				t.Errorf("max %d: got %v, want base shift", maxLen, got)
			}
		}
	})
}

func TestLDComputeKt(t *testing.T) {
	cfg := DefaultConfig()
	t.Run("at_sigma_1", func(t *testing.T) {
		if got := cfg.KT(1); math.Abs(got-2) > 1e-6 {
			t.Fatalf("k_t(1) = %v", got)
		}
	})
	t.Run("at_sigma_0", func(t *testing.T) {
		if got := cfg.KT(0); math.Abs(got) > 1e-6 {
			t.Fatalf("k_t(0) = %v", got)
		}
	})
	t.Run("decay_quadratic", func(t *testing.T) {
		k1, k5, k25 := cfg.KT(1), cfg.KT(0.5), cfg.KT(0.25)
		if !(k1 > k5 && k5 > k25) {
			t.Fatalf("not decreasing: %v %v %v", k1, k5, k25)
		}
		if math.Abs(k5-0.5) > 1e-12 {
			t.Fatalf("k_t(0.5) = %v, want 0.5", k5)
		}
	})
	t.Run("different_scales", func(t *testing.T) {
		if !(KT(1, 3, 2) > KT(1, 1, 2)) {
			t.Fatal("dype_scale 3 should exceed dype_scale 1")
		}
	})
	t.Run("different_exponents", func(t *testing.T) {
		if !(KT(0.5, 2, 2) < KT(0.5, 2, 1)) {
			t.Fatal("exponent 2 should be smaller than exponent 1 at sigma 0.5")
		}
	})
}

func TestLDComputeMscale(t *testing.T) {
	cfg := DefaultConfig()
	t.Run("no_scaling", func(t *testing.T) {
		if got := MScale(1, 1, cfg); got != 1 {
			t.Fatalf("mscale(1,1) = %v", got)
		}
	})
	t.Run("at_sigma_1", func(t *testing.T) {
		if got := MScale(2, 1, cfg); math.Abs(got-(1+0.1*math.Log(2))) > 1e-6 {
			t.Fatalf("mscale(2,1) = %v", got)
		}
	})
	t.Run("at_sigma_0", func(t *testing.T) {
		if got := MScale(2, 0, cfg); math.Abs(got-1) > 1e-6 {
			t.Fatalf("mscale(2,0) = %v", got)
		}
	})
	t.Run("interpolation", func(t *testing.T) {
		a, b, c := MScale(2, 0, cfg), MScale(2, 0.5, cfg), MScale(2, 1, cfg)
		if !(a < b && b < c) {
			t.Fatalf("not increasing with sigma: %v %v %v", a, b, c)
		}
	})
	t.Run("higher_scale", func(t *testing.T) {
		if !(MScale(4, 1, cfg) > MScale(2, 1, cfg)) {
			t.Fatal("scale 4 should give a larger mscale than scale 2")
		}
	})
}

func TestLDAxisTokenSpan(t *testing.T) {
	cases := []struct {
		name string
		in   []float32
		want float64
	}{
		{"single_token", []float32{0}, 1},
		{"sequential", []float32{0, 1, 2, 3, 4}, 5},
		{"fractional", []float32{0, 0.5, 1, 1.5, 2}, 5},
		{"2d", []float32{0, 1, 2, 0, 1, 2}, 3}, // [[0,1,2],[0,1,2]] flattened
		{"duplicates", []float32{0, 0, 0}, 1},
		{"gap_counts_missing", []float32{0, 1, 3}, 4},
		{"tiny_step_counts_elements", []float32{0, 1e-7}, 2},
		{"empty", nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := AxisTokenSpan(c.in); got != c.want {
				t.Fatalf("AxisTokenSpan(%v) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestLDHelpers(t *testing.T) {
	t.Run("find_correction_factor", func(t *testing.T) {
		got, err := FindCorrectionFactor(1.0, 128, 10000, 2048)
		if err != nil || !(got > 0) {
			t.Fatalf("got %v, %v", got, err)
		}
		if _, err := FindCorrectionFactor(0, 48, 256, 64); err == nil {
			t.Error("num_rotations 0 must be an error (upstream ZeroDivisionError)")
		}
		if _, err := FindCorrectionFactor(1, 48, 256, -64); err == nil {
			t.Error("negative length must be an error (upstream ValueError)")
		}
	})
	t.Run("find_correction_range", func(t *testing.T) {
		lo, hi, err := FindCorrectionRange(1.25, 0.75, 128, 256, 64)
		if err != nil || !(0 <= lo && lo <= hi && hi < 128) {
			t.Fatalf("range = %d, %d, %v", lo, hi, err)
		}
	})
	t.Run("linear_ramp_mask", func(t *testing.T) {
		m := LinearRampMask(0, 10, 11)
		if len(m) != 11 || m[0] != 0 || m[10] != 1 {
			t.Fatalf("ramp = %v", m)
		}
		for i := 1; i < len(m); i++ {
			if m[i] < m[i-1] {
				t.Fatalf("ramp not monotone at %d: %v", i, m)
			}
		}
	})
	t.Run("find_newbase_ntk", func(t *testing.T) {
		if got, want := FindNewbaseNTK(128, 256, 2), 256*math.Pow(2, 128.0/126.0); math.Abs(got-want) > 1e-6 {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func positions(n int) []float64 {
	p := make([]float64, n)
	for i := range p {
		p[i] = float64(i)
	}
	return p
}

func allFinite(xs []float32) bool {
	for _, x := range xs {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

func tablesDiffer(a, b []float32) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-8+1e-5*math.Abs(float64(b[i])) {
			return true
		}
	}
	return false
}

func TestLDEmbedders(t *testing.T) {
	t.Run("ntk_basic", func(t *testing.T) {
		cos, sin := Table(NTKFreqs(32, 256, 1), 1, positions(10))
		if len(cos) != 10*16 || len(sin) != 10*16 { // 16 lanes = 32 repeat-interleaved dims
			t.Fatalf("shape %d/%d", len(cos), len(sin))
		}
		for i := range cos {
			if cos[i] < -1 || cos[i] > 1 || sin[i] < -1 || sin[i] > 1 {
				t.Fatalf("value out of [-1,1] at %d: %v %v", i, cos[i], sin[i])
			}
		}
	})
	t.Run("ntk_scaling", func(t *testing.T) {
		c1, s1 := Table(NTKFreqs(32, 256, 1), 1, positions(10))
		c2, s2 := Table(NTKFreqs(32, 256, 2), 1, positions(10))
		if !tablesDiffer(c1, c2) || !tablesDiffer(s1, s2) {
			t.Fatal("ntk factor 2 should change the tables")
		}
	})
	vy := func(dype bool, sigma float64) ([]float32, []float32) {
		omega, m, err := VisionYarnFreqs(VisionYarnParams{Dim: 48, Theta: 256, LinearScale: 2, NTKScale: 2,
			OriMaxPELen: 64, DyPE: dype, Sigma: sigma, DypeScale: 2, DypeExponent: 2})
		if err != nil {
			t.Fatal(err)
		}
		return Table(omega, m, positions(64))
	}
	t.Run("vision_yarn_basic", func(t *testing.T) {
		cos, sin := vy(false, 1)
		if len(cos) != 64*24 || !allFinite(cos) || !allFinite(sin) {
			t.Fatalf("shape %d or non-finite values", len(cos))
		}
	})
	t.Run("vision_yarn_dype_modulation", func(t *testing.T) {
		c0, s0 := vy(false, 1)
		c1, s1 := vy(true, 1)
		if !tablesDiffer(c0, c1) || !tablesDiffer(s0, s1) {
			t.Fatal("DyPE at t=1 should differ from no DyPE")
		}
	})
	t.Run("vision_yarn_timestep_progression", func(t *testing.T) {
		c1, _ := vy(true, 1)
		c0, _ := vy(true, 0)
		if !tablesDiffer(c1, c0) {
			t.Fatal("t=1 and t=0 should differ")
		}
	})
	t.Run("yarn_basic", func(t *testing.T) {
		omega, m, err := YarnFreqs(YarnParams{Dim: 48, Theta: 256, MaxPELen: 128, OriMaxPELen: 64})
		if err != nil {
			t.Fatal(err)
		}
		cos, sin := Table(omega, m, positions(128))
		if len(cos) != 128*24 || !allFinite(cos) || !allFinite(sin) {
			t.Fatalf("shape %d or non-finite values", len(cos))
		}
	})
}

func TestLDZImageRoPE(t *testing.T) {
	enabled := DefaultConfig()
	enabled.Enabled = true
	t.Run("initialization", func(t *testing.T) {
		r, err := New(enabled, ZImageRope(), Geometry{Width: 2048, Height: 2048})
		if err != nil {
			t.Fatal(err)
		}
		if r.Spec().Theta != 256 || r.Spec().AxesDims != [3]int{32, 48, 48} || !r.Config().Enabled {
			t.Fatalf("spec %+v config %+v", r.Spec(), r.Config())
		}
	})
	t.Run("set_timestep", func(t *testing.T) {
		r, _ := New(enabled, ZImageRope(), Geometry{Width: 1024, Height: 1024})
		if err := r.SetSigma(0.5); err != nil || r.Sigma() != 0.5 {
			t.Fatalf("sigma %v, %v", r.Sigma(), err)
		}
		if err := r.SetSigma(1.5); err == nil || !strings.Contains(err.Error(), "sigma") {
			t.Fatalf("sigma 1.5: err = %v", err)
		}
		if r.Sigma() != 0.5 {
			t.Fatal("a rejected sigma changed the state")
		}
	})
	t.Run("set_scale_hint", func(t *testing.T) {
		if ClampScaleHint(2) != 2 || ClampScaleHint(0.5) != 1 {
			t.Fatal("scale hint clamp")
		}
		// The comfy hint comes from the requested size and is clamped the same way.
		c := ComfyNodeDefaults()
		r, err := New(c, ZImageRope(), Geometry{Width: 512, Height: 512})
		if err != nil || r.Scale() != 1 {
			t.Fatalf("512² comfy hint %v, %v", r.Scale(), err)
		}
	})
	t.Run("disabled_is_plain_rope", func(t *testing.T) {
		// LD delegates to the original embedder when disabled; here a disabled (or any) config
		// on an image that fits the base grid gives exactly the plain Z-Image RoPE.
		for _, m := range []Method{MethodVisionYarn, MethodYarn, MethodNTK} {
			for _, en := range []bool{false, true} {
				cfg := DefaultConfig()
				cfg.Method, cfg.Enabled = m, en
				r, err := New(cfg, ZImageRope(), Geometry{Width: 1024, Height: 768})
				if err != nil {
					t.Fatal(err)
				}
				st, err := r.StepAt(0.7)
				if err != nil {
					t.Fatal(err)
				}
				ids := st.ImageIDs(33)
				cos, sin := st.ImageTable(ids)
				wc, ws := plainZImageTable(ids)
				for i := range cos {
					if cos[i] != wc[i] || sin[i] != ws[i] {
						t.Fatalf("%s enabled=%v: lane %d differs from plain RoPE: %v/%v vs %v/%v", m, en, i, cos[i], sin[i], wc[i], ws[i])
					}
				}
			}
		}
	})
}

// plainZImageTable is diffusers' Z-Image RoPE written out independently: ω = 1/θ^(2k/d) in
// float64, angle in float64 cast to float32, unit modulus.
func plainZImageTable(ids []TokenID) (cos, sin []float32) {
	dims := [3]int{32, 48, 48}
	for _, id := range ids {
		for a, d := range dims {
			for k := 0; k < d/2; k++ {
				w := 1.0 / math.Pow(256, float64(2*k)/float64(d))
				ang := float64(float32(id[a] * w))
				cos = append(cos, float32(math.Cos(ang)))
				sin = append(sin, float32(math.Sin(ang)))
			}
		}
	}
	return cos, sin
}

func TestLDPosEmbed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Enabled = true
	t.Run("initialization", func(t *testing.T) {
		e := NewPosEmbed(256, [3]int{32, 48, 48}, cfg)
		if e.Theta != 256 || e.AxesDims != [3]int{32, 48, 48} || e.Config != cfg {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("set_timestep", func(t *testing.T) {
		e := NewPosEmbed(256, [3]int{32, 48, 48}, cfg)
		e.SetSigma(0.7)
		if e.Sigma != 0.7 {
			t.Fatal(e.Sigma)
		}
	})
	t.Run("base_patch_grid_auto", func(t *testing.T) {
		if g := NewPosEmbed(256, [3]int{32, 48, 48}, cfg).BaseGrid; g != [2]int{64, 64} {
			t.Fatal(g)
		}
	})
	t.Run("base_patch_grid_custom", func(t *testing.T) {
		e := NewPosEmbed(256, [3]int{32, 48, 48}, cfg)
		e.BaseGrid = [2]int{64, 64}
		if e.BaseGrid != [2]int{64, 64} {
			t.Fatal(e.BaseGrid)
		}
		// A custom grid changes the result: with g = 32, 1024² extrapolates.
		e.BaseGrid = [2]int{32, 32}
		axes := [3][]float32{{0}, f32Range(64), f32Range(64)}
		if s := e.Scale(axes); s != 2 {
			t.Fatalf("scale with grid 32 = %v, want 2", s)
		}
	})
}

func f32Range(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)
	}
	return out
}

func TestLDPatch(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Enabled = true
	t.Run("creates_wrapper", func(t *testing.T) {
		r, err := New(cfg, ZImageRope(), Geometry{Width: 2048, Height: 2048})
		if err != nil || !r.Config().Enabled {
			t.Fatalf("%v %v", r, err)
		}
	})
	t.Run("computes_scale_hint", func(t *testing.T) {
		if h := LLMDiTScaleHint(cfg, 2048, 2048); h != 2 {
			t.Fatalf("hint %v", h)
		}
		r, _ := New(cfg, ZImageRope(), Geometry{Width: 2048, Height: 2048})
		if r.Scale() != 2 {
			t.Fatalf("Rope scale %v", r.Scale())
		}
	})
	t.Run("invalid_model_errors", func(t *testing.T) {
		// Upstream raises ValueError naming rope_embedder; here a model RoPE or geometry that
		// cannot work is an error naming the bad field.
		spec := ZImageRope()
		spec.AxesDims[1] = 47
		if _, err := New(cfg, spec, Geometry{Width: 1024, Height: 1024}); err == nil || !strings.Contains(err.Error(), "axes_dims[1]") {
			t.Errorf("odd axis dims: %v", err)
		}
		if _, err := New(cfg, ZImageRope(), Geometry{Width: 1000, Height: 1024}); err == nil || !strings.Contains(err.Error(), "width") {
			t.Errorf("width 1000: %v", err)
		}
	})
	t.Run("sets_timestep", func(t *testing.T) {
		r, _ := New(cfg, ZImageRope(), Geometry{Width: 1024, Height: 1024})
		if err := r.SetSigma(0.3); err != nil || r.Sigma() != 0.3 {
			t.Fatalf("sigma %v %v", r.Sigma(), err)
		}
		st, err := r.Step()
		if err != nil || st.Sigma != 0.3 {
			t.Fatalf("step sigma %v %v", st, err)
		}
	})
	t.Run("nil_rope_noop", func(t *testing.T) {
		var r *Rope
		if err := r.SetSigma(0.3); err != nil {
			t.Fatalf("SetSigma on nil Rope: %v", err)
		}
	})
}
