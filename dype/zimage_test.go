package dype

import (
	"math"
	"strings"
	"testing"
)

func mustStep(t testing.TB, cfg Config, geom Geometry, sigma float64) (*Rope, *Step) {
	t.Helper()
	r, err := New(cfg, ZImageRope(), geom)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.StepAt(sigma)
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStepPadding(t *testing.T) {
	// 272² px = 17×17 = 289 image tokens, padded to 320.
	geom := Geometry{Width: 272, Height: 272}
	for _, mode := range Modes() {
		t.Run(string(mode), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Enabled, cfg.Mode = true, mode
			r, st := mustStep(t, cfg, geom, 0.5)
			if r.ImageRows() != 320 || st.ImageRows() != 320 {
				t.Fatalf("image rows %d/%d, want 320", r.ImageRows(), st.ImageRows())
			}
			ids := st.ImageIDs(33)
			if ids[0] != (TokenID{33, st.Image[1].Positions[0], st.Image[2].Positions[0]}) {
				t.Errorf("first id %v", ids[0])
			}
			last := ids[288]
			if last[0] != 33 || last[1] != st.Image[1].Positions[16] || last[2] != st.Image[2].Positions[16] {
				t.Errorf("last image id %v", last)
			}
			pad := ids[289]
			switch mode {
			case ModeLLMDiT:
				if pad != (TokenID{}) {
					t.Errorf("llm_dit padding id %v, want (0,0,0)", pad)
				}
			case ModeComfy:
				// Row 17, column 0 of the continued raster.
				if pad[0] != 33 || pad[2] != st.Image[2].Positions[0] || !(pad[1] > st.Image[1].Positions[16]) {
					t.Errorf("comfy padding id %v", pad)
				}
			}
		})
	}
}

func TestCaptionTables(t *testing.T) {
	geom := Geometry{Width: 2048, Height: 2048}
	t.Run("llm_dit caption call is vanilla", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Enabled = true
		_, st := mustStep(t, cfg, geom, 1)
		if st.Image[1].MScale <= 1 {
			t.Fatalf("image mscale %v, want > 1 at 2048² σ=1", st.Image[1].MScale)
		}
		ids := st.CaptionIDs(32)
		if ids[0] != (TokenID{1, 0, 0}) || ids[31] != (TokenID{32, 0, 0}) {
			t.Fatalf("caption ids %v .. %v", ids[0], ids[31])
		}
		cos, sin := st.CaptionTable(ids)
		want, wantS := plainZImageTable(ids)
		for i := range cos {
			if cos[i] != want[i] || sin[i] != wantS[i] {
				t.Fatalf("caption lane %d = %v/%v, want plain %v/%v", i, cos[i], sin[i], want[i], wantS[i])
			}
		}
	})
	t.Run("comfy caption shares the image call", func(t *testing.T) {
		_, st := mustStep(t, ComfyNodeDefaults(), geom, 1)
		m := st.Image[1].MScale
		if !(m > 1) {
			t.Fatalf("mscale %v", m)
		}
		cos, sin := st.CaptionTable(st.CaptionIDs(1))
		k0 := st.Caption[0].Lanes()
		for j := k0; j < st.Lanes(); j++ {
			if cos[j] != float32(m) || sin[j] != 0 {
				t.Fatalf("caption spatial lane %d = %v/%v, want %v/0", j, cos[j], sin[j], m)
			}
		}
	})
}

func TestComfyChangesPositionsAtBaseResolution(t *testing.T) {
	// CD's Z-Image path stretches 1024² to δ = 2 and blends back to integers; the frequencies
	// stay vanilla because the hint is 1.
	r, st1 := mustStep(t, ComfyNodeDefaults(), Geometry{Width: 1024, Height: 1024}, 1)
	if r.Delta() != 2 || st1.Scale != 1 {
		t.Fatalf("delta %v scale %v", r.Delta(), st1.Scale)
	}
	for a := range 3 {
		if !sameFloats(st1.Image[a].Omega, VanillaFreqs(ZImageRope().AxesDims[a], 256)) || st1.Image[a].MScale != 1 {
			t.Fatalf("axis %d not vanilla", a)
		}
	}
	if st1.Image[1].Positions[63] != 126 {
		t.Fatalf("σ=1 last row %v, want 126", st1.Image[1].Positions[63])
	}
	st0, _ := r.StepAt(0)
	if st0.Image[1].Positions[63] != 63 || st0.Blend != 1 {
		t.Fatalf("σ=0 last row %v blend %v, want 63, 1", st0.Image[1].Positions[63], st0.Blend)
	}
}

func TestDisabledSemantics(t *testing.T) {
	geom := Geometry{Width: 2048, Height: 2048}
	t.Run("llm_dit static ntk", func(t *testing.T) {
		cfg := DefaultConfig() // disabled
		want := NTKFreqs(48, 256, math.Pow(2, 48.0/46.0))
		for _, sigma := range []float64{1, 0.4, 0} {
			_, st := mustStep(t, cfg, geom, sigma)
			if st.Method != MethodNTK || st.Dynamic {
				t.Fatalf("method %s dynamic %v", st.Method, st.Dynamic)
			}
			if !sameFloats(st.Image[1].Omega, want) || st.Image[1].MScale != 1 {
				t.Fatalf("σ=%v: not static NTK", sigma)
			}
		}
	})
	t.Run("comfy node with enable_dype off", func(t *testing.T) {
		cfg := ComfyNodeDefaults()
		cfg.Enabled = false
		r, a := mustStep(t, cfg, geom, 1)
		b, _ := r.StepAt(0.3)
		if !a.Dynamic || sameFloats(a.Image[1].Omega, b.Image[1].Omega) {
			t.Fatal("vision_yarn stays dynamic in CD even with enable_dype off")
		}
		if _, ok := r.ShiftMu(); ok {
			t.Fatal("no schedule shift with enable_dype off")
		}
		cfg.Method = MethodNTK
		r, a = mustStep(t, cfg, geom, 1)
		b, _ = r.StepAt(0.3)
		if a.Dynamic || !sameFloats(a.Image[1].Omega, b.Image[1].Omega) || b.Blend != 0 {
			t.Fatal("ntk with enable_dype off must be static, without blend")
		}
	})
	t.Run("base is static ntk", func(t *testing.T) {
		for _, mode := range Modes() {
			cfg := DefaultConfig()
			cfg.Enabled, cfg.Method, cfg.Mode = true, MethodBase, mode
			r, a := mustStep(t, cfg, geom, 1)
			b, _ := r.StepAt(0)
			if a.Dynamic || !sameFloats(a.Image[1].Omega, b.Image[1].Omega) {
				t.Fatalf("%s: base must not depend on σ", mode)
			}
		}
	})
}

func TestScaleShiftAndKT(t *testing.T) {
	cases := []struct {
		mode        Mode
		w, h        int
		scale, mu   float64
		muOK        bool
		enabled     bool
		wantMScale1 bool
	}{
		{ModeLLMDiT, 2560, 2560, 2.5, 1.15, true, true, true},
		{ModeLLMDiT, 1024, 1024, 1, 0.5, true, true, false},
		{ModeLLMDiT, 2048, 1024, 2, 1.15, true, true, true},
		{ModeComfy, 2560, 2560, 2.5, 0.5, true, true, true},
		{ModeComfy, 1536, 1024, 1.5, 0.5, true, true, true},
		{ModeComfy, 2048, 2048, 2, 0, false, false, true},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Mode, cfg.Enabled = c.mode, c.enabled
		r, st := mustStep(t, cfg, Geometry{Width: c.w, Height: c.h}, 1)
		if st.Scale != c.scale || r.Scale() != c.scale {
			t.Errorf("%s %dx%d: scale %v/%v, want %v", c.mode, c.w, c.h, st.Scale, r.Scale(), c.scale)
		}
		mu, ok := r.ShiftMu()
		if ok != c.muOK || (ok && math.Abs(mu-c.mu) > 1e-12) {
			t.Errorf("%s %dx%d: mu %v %v, want %v %v", c.mode, c.w, c.h, mu, ok, c.mu, c.muOK)
		}
		if st.KT != 2 {
			t.Errorf("k_t at σ=1: %v", st.KT)
		}
		if (st.Image[1].MScale > 1) != c.wantMScale1 {
			t.Errorf("%s %dx%d: mscale %v", c.mode, c.w, c.h, st.Image[1].MScale)
		}
	}
}

func TestStepSigmaValidation(t *testing.T) {
	r, err := New(DefaultConfig(), ZImageRope(), Geometry{Width: 1024, Height: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []float64{-0.01, 1.0001, math.NaN(), math.Inf(1)} {
		if _, err := r.StepAt(s); err == nil || !strings.Contains(err.Error(), "sigma") {
			t.Errorf("StepAt(%v): %v", s, err)
		}
	}
	if _, err := r.StepAt(0.25); err != nil || r.Sigma() != 1 {
		t.Fatalf("StepAt changed the stored sigma: %v %v", r.Sigma(), err)
	}
	if NormalizeSigma(14.6, 14.6) != 1 || NormalizeSigma(-1, 1) != 0 || NormalizeSigma(0.5, 1) != 0.5 {
		t.Fatal("NormalizeSigma")
	}
	var nilRope *Rope
	if _, err := nilRope.StepAt(0.5); err == nil {
		t.Fatal("StepAt on nil Rope must error, not panic")
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	good := DefaultConfig()
	cases := []struct {
		name  string
		cfg   Config
		spec  RopeSpec
		geom  Geometry
		field string
	}{
		{"zero width", good, ZImageRope(), Geometry{Width: 0, Height: 1024}, "width"},
		{"odd height", good, ZImageRope(), Geometry{Width: 1024, Height: 1032}, "height"},
		{"huge width", good, ZImageRope(), Geometry{Width: 1 << 20, Height: 1024}, "width"},
		{"negative requested", good, ZImageRope(), Geometry{Width: 1024, Height: 1024, RequestedWidth: -8}, "requested_width"},
		{"theta one", good, RopeSpec{Theta: 1, AxesDims: [3]int{32, 48, 48}}, Geometry{Width: 1024, Height: 1024}, "theta"},
		{"zero dims", good, RopeSpec{Theta: 256, AxesDims: [3]int{0, 48, 48}}, Geometry{Width: 1024, Height: 1024}, "axes_dims[0]"},
		{"bad method", Config{Method: "x", Mode: ModeLLMDiT, DypeScale: 1, DypeStartSigma: 1, BaseResolution: 1024}, ZImageRope(), Geometry{Width: 1024, Height: 1024}, "method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, c.spec, c.geom)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err = %v, want one naming %q", err, c.field)
			}
		})
	}
}

func TestEdgeGeometriesDoNotPanic(t *testing.T) {
	geoms := []Geometry{
		{Width: 16, Height: 16},
		{Width: 16, Height: 4096},
		{Width: 4096, Height: 16},
		{Width: 32, Height: 16, RequestedWidth: 1, RequestedHeight: 8192},
	}
	for _, g := range geoms {
		for _, mode := range Modes() {
			for _, m := range []Method{MethodVisionYarn, MethodYarn, MethodNTK, MethodBase} {
				for _, aniso := range []bool{false, true} {
					cfg := DefaultConfig()
					cfg.Enabled, cfg.Mode, cfg.Method, cfg.Anisotropic = true, mode, m, aniso
					r, err := New(cfg, ZImageRope(), g)
					if err != nil {
						t.Fatalf("%+v: %v", g, err)
					}
					for _, sigma := range []float64{1, 0.5, 0} {
						st, err := r.StepAt(sigma)
						if err != nil {
							t.Fatalf("%+v %s %s σ=%v: %v", g, mode, m, sigma, err)
						}
						cos, sin := st.ImageTable(st.ImageIDs(33))
						if len(cos) != r.ImageRows()*st.Lanes() || !allFinite(cos) || !allFinite(sin) {
							t.Fatalf("%+v %s %s: bad table", g, mode, m)
						}
						if th, _ := r.TokenGrid(); len(st.Image[1].Positions) != th {
							t.Fatalf("%d row positions, want %d", len(st.Image[1].Positions), th)
						}
					}
				}
			}
		}
	}
}

func TestVisionYarnMScaleDecays(t *testing.T) {
	for _, mode := range Modes() {
		cfg := DefaultConfig()
		cfg.Enabled, cfg.Mode = true, mode
		r, _ := mustStep(t, cfg, Geometry{Width: 3072, Height: 3072}, 1)
		prev := math.Inf(1)
		for _, s := range []float64{1, 0.8, 0.5, 0.2, 0} {
			st, _ := r.StepAt(s)
			m := st.Image[1].MScale
			if !(m <= prev) {
				t.Fatalf("%s: mscale rose from %v to %v at σ=%v", mode, prev, m, s)
			}
			prev = m
		}
		if prev != 1 {
			t.Fatalf("%s: mscale at σ=0 is %v, want 1", mode, prev)
		}
	}
}

func TestAxisTableLookup(t *testing.T) {
	// LD isotropic yarn looks rows up by truncated offset and clamps at the last row.
	cfg := DefaultConfig()
	cfg.Enabled, cfg.Method = true, MethodYarn
	e := NewPosEmbed(256, [3]int{32, 48, 48}, cfg)
	out, err := e.ComponentsOfIDs([][3]float32{{1, 2, 0}, {1, 130, 1}, {1, 4.9, 2}, {1, 3, 0}})
	if err != nil {
		t.Fatal(err)
	}
	a := &out[1]
	if a.lookup == nil {
		t.Fatal("expected the isotropic yarn lookup")
	}
	// Axis 1 takes {2, 130, 4.9, 3}: span 128/1 + 1 = 129 > 64 extrapolates, the table has
	// ⌈129⌉ rows, rows are trunc(p) − 2.
	if a.lookup.last != 128 || a.lookup.minTrunc != 2 {
		t.Fatalf("lookup %+v", *a.lookup)
	}
	for p, want := range map[float64]float64{2: 0, 3: 1, 4.9: 2, 130: 128} {
		if got := a.Position(p); got != want {
			t.Errorf("Position(%v) = %v, want %v", p, got, want)
		}
	}
	if got := a.Position(1e6); got != float64(a.lookup.last) {
		t.Errorf("Position(1e6) = %v, want clamp %v", got, a.lookup.last)
	}
}

func BenchmarkStepAt2048(b *testing.B) {
	for _, mode := range Modes() {
		b.Run(string(mode), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Enabled, cfg.Mode = true, mode
			r, err := New(cfg, ZImageRope(), Geometry{Width: 2048, Height: 2048})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := r.StepAt(0.5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkImageTable2048(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Enabled = true
	_, st := mustStep(b, cfg, Geometry{Width: 2048, Height: 2048}, 0.5)
	ids := st.ImageIDs(33)
	for b.Loop() {
		st.ImageTable(ids)
	}
}

// FuzzRopeStep: any config, geometry and σ either errors or gives finite tables; never panics.
func FuzzRopeStep(f *testing.F) {
	f.Add(uint16(2048), uint16(2048), uint16(0), uint16(0), 2.0, 2.0, 1.0, 0.5, uint8(0), false, true, false)
	f.Add(uint16(272), uint16(4096), uint16(8), uint16(8192), 8.0, 0.0, 0.001, 0.0, uint8(1), true, true, true)
	f.Add(uint16(16), uint16(16), uint16(1), uint16(1), 1e300, 1e-300, 0.5, 1.0, uint8(2), true, false, false)
	f.Fuzz(func(t *testing.T, w, h, rw, rh uint16, scale, exponent, start, sigma float64, method uint8, comfy, enabled, aniso bool) {
		cfg := DefaultConfig()
		cfg.Enabled, cfg.Anisotropic = enabled, aniso
		cfg.Method = Methods()[int(method)%len(Methods())]
		if comfy {
			cfg.Mode = ModeComfy
		}
		cfg.DypeScale, cfg.DypeExponent, cfg.DypeStartSigma = scale, exponent, start
		cfg = cfg.Normalized()
		// Keep the grids small so one input stays fast.
		geom := Geometry{Width: int(w%1024) * 16, Height: int(h%1024) * 16, RequestedWidth: int(rw), RequestedHeight: int(rh)}
		r, err := New(cfg, ZImageRope(), geom)
		if err != nil {
			return
		}
		st, err := r.StepAt(sigma)
		if err != nil {
			return
		}
		ids := st.ImageIDs(33)
		if len(ids) > 4096 {
			ids = ids[:4096]
		}
		cos, sin := st.ImageTable(ids)
		cc, cs := st.CaptionTable(st.CaptionIDs(3))
		for _, tab := range [][]float32{cos, sin, cc, cs} {
			for _, v := range tab {
				if math.IsNaN(float64(v)) {
					t.Fatalf("NaN in table for %+v %+v σ=%v", cfg, geom, sigma)
				}
			}
		}
	})
}
