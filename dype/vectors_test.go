package dype

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
)

// Tolerances of spec §10.
const (
	tolScalar = 1e-12 // relative: k_t, mscale, shift, correction factors
	tolOmega  = 1e-7  // relative: ω vs omega_f64
	tolTable  = 1e-4  // absolute: cos/sin vs float32 tables
	tolMScale = 1e-6  // relative: mscale observed in float32 tables
)

// ---- vector file layout (only the fields the tests read) ----

type vecTable struct {
	Positions []float64   `json:"positions"`
	Cos       [][]float64 `json:"cos"`
	Sin       [][]float64 `json:"sin"`
}

type vec1D struct {
	Inputs map[string]any `json:"inputs"`
	Omega  []float64      `json:"omega_f64"`
	Cos    [][]float64    `json:"cos"`
	Sin    [][]float64    `json:"sin"`
}

type omegaCall struct {
	PosNumel int       `json:"pos_numel"`
	Omega    []float64 `json:"omega"`
}

type summary struct {
	CountUnique int       `json:"count_unique"`
	Min         float64   `json:"min"`
	Max         float64   `json:"max"`
	First       []float64 `json:"first"`
	Last        float64   `json:"last"`
	MinStep     float64   `json:"min_step"`
	MaxStep     float64   `json:"max_step"`
}

type vectors struct {
	LLMDiT struct {
		DyPEConfig struct {
			Defaults   map[string]any `json:"defaults"`
			StartClamp []struct {
				Input  float64 `json:"input"`
				Stored float64 `json:"stored"`
			} `json:"start_sigma_clamp"`
			FromDict []struct {
				Input  map[string]any `json:"input"`
				ToDict map[string]any `json:"to_dict"`
			} `json:"from_dict"`
			ToDict []struct {
				Kwargs map[string]any `json:"kwargs"`
				ToDict map[string]any `json:"to_dict"`
			} `json:"to_dict"`
		} `json:"DyPEConfig"`
		Shift struct {
			Configs map[string]map[string]any `json:"configs"`
			Cases   []struct {
				Config   string  `json:"config"`
				ImageSeq int     `json:"image_seq_len"`
				BaseSeq  int     `json:"base_seq_len"`
				MaxSeq   int     `json:"max_seq_len"`
				Shift    float64 `json:"shift"`
			} `json:"cases"`
		} `json:"compute_dype_shift"`
		KT []struct {
			Scale    float64 `json:"dype_scale"`
			Exponent float64 `json:"dype_exponent"`
			Sigma    float64 `json:"sigma"`
			KT       float64 `json:"k_t"`
		} `json:"compute_k_t"`
		MScale []struct {
			Kwargs map[string]any `json:"config_kwargs"`
			Scale  float64        `json:"scale_global"`
			Sigma  float64        `json:"sigma"`
			MScale float64        `json:"mscale"`
		} `json:"compute_mscale"`
		Span []struct {
			Name  string  `json:"name"`
			Input any     `json:"input"`
			Span  float64 `json:"span"`
		} `json:"axis_token_span"`
		Helpers struct {
			CF []struct {
				R     float64 `json:"num_rotations"`
				Dim   int     `json:"dim"`
				Base  float64 `json:"base"`
				L     float64 `json:"max_position_embeddings"`
				Value float64 `json:"value"`
			} `json:"find_correction_factor"`
			CR []struct {
				Low   float64 `json:"low_ratio"`
				High  float64 `json:"high_ratio"`
				Dim   int     `json:"dim"`
				Base  float64 `json:"base"`
				L     float64 `json:"ori_max_pe_len"`
				LowI  int     `json:"low"`
				HighI int     `json:"high"`
			} `json:"find_correction_range"`
			Ramp []struct {
				Min  float64   `json:"min"`
				Max  float64   `json:"max"`
				Dim  int       `json:"dim"`
				Mask []float64 `json:"mask"`
			} `json:"linear_ramp_mask"`
			NewBase []struct {
				Dim   int     `json:"dim"`
				Base  float64 `json:"base"`
				Scale float64 `json:"scale"`
				Value float64 `json:"value"`
			} `json:"find_newbase_ntk"`
		} `json:"helpers"`
		NTK struct {
			Cases   []vec1D `json:"cases"`
			Layouts struct {
				Inputs    map[string]any `json:"inputs"`
				NoInterlv struct {
					Cos [][]float64 `json:"cos"`
					Sin [][]float64 `json:"sin"`
				} `json:"use_real_no_interleave"`
				Complex struct {
					Re [][]float64 `json:"re"`
					Im [][]float64 `json:"im"`
				} `json:"complex"`
			} `json:"layouts"`
		} `json:"get_1d_ntk_pos_embed"`
		VisionYarn []vec1D `json:"get_1d_vision_yarn_pos_embed"`
		Yarn       []vec1D `json:"get_1d_yarn_pos_embed"`
		Components struct {
			IDs   map[string][][3]float32 `json:"ids_by_resolution"`
			Axis0 struct {
				Axis0 vecTable `json:"axis0"`
			} `json:"axis0_caption_and_image_tables_f32(all cases identical)"`
			Cases []struct {
				Resolution string              `json:"resolution"`
				Width      int                 `json:"width"`
				Height     int                 `json:"height"`
				Method     string              `json:"method"`
				Config     map[string]any      `json:"config"`
				Sigma      float64             `json:"sigma"`
				MScaleObs  float64             `json:"mscale_observed_axis1"`
				Calls      []omegaCall         `json:"omega_calls_f64"`
				Tables     map[string]vecTable `json:"tables_f32"`
			} `json:"cases"`
		} `json:"DyPEPosEmbed.get_components"`
		Patch struct {
			ScaleHint []struct {
				R        int     `json:"base_resolution"`
				W        int     `json:"width"`
				H        int     `json:"height"`
				Hint     float64 `json:"scale_hint"`
				BaseGrid [2]int  `json:"base_patch_grid"`
			} `json:"patch_zimage_rope_scale_hint"`
			SetHint []struct {
				Input  float64 `json:"input"`
				Stored float64 `json:"stored"`
			} `json:"set_scale_hint"`
			Blend []struct {
				Enabled  bool    `json:"enabled"`
				Start    float64 `json:"dype_start_sigma"`
				Exponent float64 `json:"dype_exponent"`
				Sigma    float64 `json:"sigma"`
				Blend    float64 `json:"blend"`
			} `json:"blend_to_full_scale"`
			Resize []struct {
				Grid    string       `json:"grid"`
				Enabled bool         `json:"enabled"`
				Sigma   float64      `json:"sigma"`
				Input   [][3]float32 `json:"input"`
				Output  [][3]float32 `json:"output"`
			} `json:"resize_rope_grid"`
			Helpers struct {
				DefaultConfig map[string]any `json:"dypeposembed_default_config"`
				GridIntArg    [2]int         `json:"dypeposembed_base_grid_int_arg"`
				Grid1328      [2]int         `json:"dypeposembed_base_grid_1328"`
				InitialSigma  float64        `json:"dypeposembed_initial_sigma"`
				SigmaAfterSet float64        `json:"sigma_after_set"`
			} `json:"helpers"`
		} `json:"ZImageDyPERoPE_and_patch_helpers"`
	} `json:"llm_dit"`
	Comfy struct {
		Zimage struct {
			ShiftTable []struct {
				Width       int     `json:"width"`
				Height      int     `json:"height"`
				HasAxesLens bool    `json:"model_has_axes_lens"`
				SeqLen      int     `json:"image_seq_len"`
				Mu          float64 `json:"dype_shift_mu"`
				Grid        [2]int  `json:"embedder_base_patch_grid"`
			} `json:"dype_shift_table"`
			Cases []struct {
				Resolution  string              `json:"resolution"`
				Width       int                 `json:"width"`
				Height      int                 `json:"height"`
				TokensHW    [2]int              `json:"tokens_hw"`
				Method      string              `json:"method"`
				Sigma       float64             `json:"sigma"`
				SigmaSeen   float64             `json:"normalized_timestep_seen_by_embedder"`
				Flag        bool                `json:"dype_flag"`
				Hint        float64             `json:"scale_hint"`
				Grid        [2]int              `json:"base_patch_grid"`
				Axis0Value  float64             `json:"image_axis0_value"`
				Raw1        summary             `json:"image_raw_axis1"`
				Raw2        summary             `json:"image_raw_axis2"`
				Blended1    summary             `json:"image_blended_axis1"`
				Blended2    summary             `json:"image_blended_axis2"`
				Blend       float64             `json:"blend_factor"`
				Calls       []omegaCall         `json:"omega_calls_f64(get_components on blended ids)"`
				Rows        []int               `json:"rows_selected"`
				IDsRaw      [][3]float64        `json:"ids_selected_raw"`
				IDsBlended  [][3]float64        `json:"ids_selected_blended"`
				OutputShape []int               `json:"output_shape"`
				Tables      map[string]struct { // axis1, axis2
					Positions []float64   `json:"positions_after_blend"`
					Raw       []float64   `json:"raw_positions"`
					Cos       [][]float64 `json:"cos"`
					Sin       [][]float64 `json:"sin"`
				} `json:"tables_f32"`
			} `json:"cases"`
			Example struct {
				Node   [2]int  `json:"node_width_height"`
				Latent [2]int  `json:"latent_width_height_px"`
				Hint   float64 `json:"scale_hint"`
				Raw1   summary `json:"image_raw_axis1"`
				Raw2   summary `json:"image_raw_axis2"`
				Mu     float64 `json:"dype_shift_mu"`
			} `json:"example_workflow_case"`
			StartSigma []struct {
				Resolution string  `json:"resolution"`
				Method     string  `json:"method"`
				Start      float64 `json:"dype_start_sigma"`
				Sigma      float64 `json:"sigma"`
				Blend      float64 `json:"blend_factor"`
				MScaleCap  float64 `json:"mscale_observed_axis1_caption_row"`
				Blended1   summary `json:"image_blended_axis1"`
			} `json:"start_sigma_cases"`
		} `json:"zimage_patch"`
	} `json:"comfyui_dype_v2_3_0"`
	Official struct {
		Yarn1D []struct {
			Version string         `json:"version"`
			Inputs  map[string]any `json:"inputs"`
			Value   *vec1D         `json:"value"`
			Error   string         `json:"error"`
		} `json:"yarn_1d"`
	} `json:"official_dype"`
	UnitTests struct {
		Count  int `json:"count"`
		Passed int `json:"passed"`
		Tests  []struct {
			Test    string `json:"test"`
			Status  string `json:"status"`
			Asserts string `json:"asserts"`
		} `json:"tests"`
	} `json:"llm_dit_unit_tests"`
}

var (
	vecOnce sync.Once
	vecData *vectors
	vecErr  error
)

// loadVectors reads shared/dype/vectors.json once.
func loadVectors(t *testing.T) *vectors {
	t.Helper()
	vecOnce.Do(func() {
		shared, err := golden.SharedDir()
		if err != nil {
			vecErr = err
			return
		}
		data, err := os.ReadFile(filepath.Join(shared, "dype", "vectors.json"))
		if err != nil {
			vecErr = err
			return
		}
		var v vectors
		if err := json.Unmarshal(data, &v); err != nil {
			vecErr = fmt.Errorf("parse vectors.json: %w", err)
			return
		}
		vecData = &v
	})
	if vecErr != nil {
		t.Fatalf("DyPE reference vectors: %v", vecErr)
	}
	return vecData
}

// ---- comparison helpers ----

func relClose(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(got), math.Abs(want))
}

func checkRel(t *testing.T, what string, got, want, rel float64) {
	t.Helper()
	if !relClose(got, want, rel) {
		t.Errorf("%s = %.17g, want %.17g (rel tol %g)", what, got, want, rel)
	}
}

func checkOmega(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d lanes, want %d", what, len(got), len(want))
		return
	}
	for k := range got {
		if !relClose(got[k], want[k], tolOmega) {
			t.Errorf("%s[%d] = %.17g, want %.17g", what, k, got[k], want[k])
			return
		}
	}
}

// checkTable compares row-major float32 cos/sin (len(positions)·lanes) with per-position rows.
func checkTable(t *testing.T, what string, cos, sin []float32, wantCos, wantSin [][]float64) {
	t.Helper()
	if len(wantCos) == 0 {
		t.Errorf("%s: empty reference table", what)
		return
	}
	lanes := len(wantCos[0])
	if len(cos) != len(wantCos)*lanes {
		t.Errorf("%s: %d values, want %d×%d", what, len(cos), len(wantCos), lanes)
		return
	}
	worst := 0.0
	for i := range wantCos {
		for k := 0; k < lanes; k++ {
			worst = math.Max(worst, math.Abs(float64(cos[i*lanes+k])-wantCos[i][k]))
			worst = math.Max(worst, math.Abs(float64(sin[i*lanes+k])-wantSin[i][k]))
		}
	}
	if worst > tolTable {
		t.Errorf("%s: max |Δ| = %g > %g", what, worst, tolTable)
	}
}

func num(m map[string]any, key string, def float64) float64 {
	if v, ok := m[key]; ok && v != nil {
		return v.(float64)
	}
	return def
}

func flag(m map[string]any, key string) bool {
	v, _ := m[key].(bool)
	return v
}

func floats(m map[string]any, key string) []float64 {
	raw, _ := m[key].([]any)
	out := make([]float64, len(raw))
	for i, v := range raw {
		out[i] = v.(float64)
	}
	return out
}

func configFrom(t *testing.T, m map[string]any) Config {
	t.Helper()
	c, err := FromMap(m)
	if err != nil {
		t.Fatalf("config %v: %v", m, err)
	}
	return c
}

// counter tallies passed vector cases per group for the summary test log.
type counter struct {
	mu sync.Mutex
	n  map[string][2]int
}

var tally = &counter{n: map[string][2]int{}}

func (c *counter) add(group string, t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.n[group]
	v[1]++
	if !t.Failed() {
		v[0]++
	}
	c.n[group] = v
}

// ---- tests ----

func TestVectorsConfig(t *testing.T) {
	v := loadVectors(t)
	vc := v.LLMDiT.DyPEConfig
	def := DefaultConfig().ToMap()
	for k, want := range vc.Defaults {
		if got := fmt.Sprint(def[k]); got != fmt.Sprint(want) {
			t.Errorf("default %s = %v, want %v", k, got, want)
		}
	}
	for _, c := range vc.StartClamp {
		t.Run(fmt.Sprintf("clamp_%v", c.Input), func(t *testing.T) {
			if got := ClampStartSigma(c.Input); got != c.Stored {
				t.Errorf("ClampStartSigma(%v) = %v, want %v", c.Input, got, c.Stored)
			}
			cfg, err := FromMap(map[string]any{"dype_start_sigma": c.Input})
			if err != nil || cfg.DypeStartSigma != c.Stored {
				t.Errorf("FromMap start sigma %v -> %v, %v; want %v", c.Input, cfg.DypeStartSigma, err, c.Stored)
			}
			tally.add("config", t)
		})
	}
	for i, c := range vc.FromDict {
		t.Run(fmt.Sprintf("from_dict_%d", i), func(t *testing.T) {
			cfg := configFrom(t, c.Input)
			got := cfg.ToMap()
			for k, want := range c.ToDict {
				if fmt.Sprint(got[k]) != fmt.Sprint(want) {
					t.Errorf("from_dict(%v).%s = %v, want %v", c.Input, k, got[k], want)
				}
			}
			tally.add("config", t)
		})
	}
	for i, c := range vc.ToDict {
		t.Run(fmt.Sprintf("to_dict_%d", i), func(t *testing.T) {
			cfg, err := FromMap(c.Kwargs)
			if m, _ := c.Kwargs["method"].(string); m == "bogus_method" {
				// Upstream stores any method; the issue requires an error naming the field.
				if err == nil || !strings.Contains(err.Error(), "method") {
					t.Errorf("bogus method: err = %v, want an error naming method", err)
				}
				tally.add("config", t)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.ToMap()
			for k, want := range c.ToDict {
				if fmt.Sprint(got[k]) != fmt.Sprint(want) {
					t.Errorf("to_dict.%s = %v, want %v", k, got[k], want)
				}
			}
			tally.add("config", t)
		})
	}
}

func TestVectorsComputeDypeShift(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.LLMDiT.Shift.Cases {
		t.Run(fmt.Sprintf("%d_%s_%d_%d_%d", i, c.Config, c.ImageSeq, c.BaseSeq, c.MaxSeq), func(t *testing.T) {
			cfg := configFrom(t, v.LLMDiT.Shift.Configs[c.Config])
			checkRel(t, "shift", ComputeDypeShift(c.ImageSeq, c.BaseSeq, c.MaxSeq, cfg), c.Shift, tolScalar)
			tally.add("compute_dype_shift", t)
		})
	}
}

func TestVectorsKT(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.LLMDiT.KT {
		t.Run(fmt.Sprintf("s%v_e%v_sigma%v", c.Scale, c.Exponent, c.Sigma), func(t *testing.T) {
			checkRel(t, "k_t", KT(c.Sigma, c.Scale, c.Exponent), c.KT, tolScalar)
			tally.add("compute_k_t", t)
		})
	}
}

func TestVectorsMScale(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.LLMDiT.MScale {
		t.Run(fmt.Sprintf("%d_s%v_sigma%v", i, c.Scale, c.Sigma), func(t *testing.T) {
			cfg := configFrom(t, c.Kwargs)
			checkRel(t, "mscale", MScale(c.Scale, c.Sigma, cfg), c.MScale, tolScalar)
			tally.add("compute_mscale", t)
		})
	}
}

func flattenFloat32(v any) []float32 {
	switch x := v.(type) {
	case []any:
		var out []float32
		for _, e := range x {
			out = append(out, flattenFloat32(e)...)
		}
		return out
	case float64:
		return []float32{float32(x)}
	}
	return nil
}

func TestVectorsAxisTokenSpan(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.LLMDiT.Span {
		t.Run(c.Name, func(t *testing.T) {
			if got := AxisTokenSpan(flattenFloat32(c.Input)); got != c.Span {
				t.Errorf("AxisTokenSpan(%v) = %.17g, want %.17g", c.Input, got, c.Span)
			}
			tally.add("axis_token_span", t)
		})
	}
}

func TestVectorsHelpers(t *testing.T) {
	v := loadVectors(t)
	h := v.LLMDiT.Helpers
	for i, c := range h.CF {
		t.Run(fmt.Sprintf("cf_%d", i), func(t *testing.T) {
			got, err := FindCorrectionFactor(c.R, c.Dim, c.Base, c.L)
			if err != nil {
				t.Fatal(err)
			}
			checkRel(t, "find_correction_factor", got, c.Value, tolScalar)
			tally.add("helpers", t)
		})
	}
	for i, c := range h.CR {
		t.Run(fmt.Sprintf("cr_%d", i), func(t *testing.T) {
			lo, hi, err := FindCorrectionRange(c.Low, c.High, c.Dim, c.Base, c.L)
			if err != nil || lo != c.LowI || hi != c.HighI {
				t.Errorf("FindCorrectionRange(%v,%v,%d,%v,%v) = %d,%d,%v; want %d,%d", c.Low, c.High, c.Dim, c.Base, c.L, lo, hi, err, c.LowI, c.HighI)
			}
			tally.add("helpers", t)
		})
	}
	for i, c := range h.Ramp {
		t.Run(fmt.Sprintf("ramp_%d", i), func(t *testing.T) {
			got := LinearRampMask(c.Min, c.Max, c.Dim)
			if len(got) != len(c.Mask) {
				t.Fatalf("len %d, want %d", len(got), len(c.Mask))
			}
			for j := range got {
				if float64(got[j]) != c.Mask[j] {
					t.Errorf("ramp(%v,%v,%d)[%d] = %v, want %v (float32 exact)", c.Min, c.Max, c.Dim, j, got[j], c.Mask[j])
				}
			}
			tally.add("helpers", t)
		})
	}
	for i, c := range h.NewBase {
		t.Run(fmt.Sprintf("newbase_%d", i), func(t *testing.T) {
			checkRel(t, "find_newbase_ntk", FindNewbaseNTK(c.Dim, c.Base, c.Scale), c.Value, tolScalar)
			tally.add("helpers", t)
		})
	}
}

func TestVectorsNTK1D(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.LLMDiT.NTK.Cases {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			dim := int(num(c.Inputs, "dim", 0))
			omega := NTKFreqs(dim, num(c.Inputs, "theta", 0), num(c.Inputs, "ntk_factor", 1))
			checkOmega(t, "omega", omega, c.Omega)
			cos, sin := Table(omega, 1, floats(c.Inputs, "pos"))
			checkTable(t, "table", cos, sin, c.Cos, c.Sin)
			tally.add("get_1d_ntk_pos_embed", t)
		})
	}
	t.Run("layouts", func(t *testing.T) {
		l := v.LLMDiT.NTK.Layouts
		omega := NTKFreqs(int(num(l.Inputs, "dim", 0)), num(l.Inputs, "theta", 0), num(l.Inputs, "ntk_factor", 1))
		cos, sin := Table(omega, 1, floats(l.Inputs, "pos"))
		checkTable(t, "no_interleave", cos, sin, l.NoInterlv.Cos, l.NoInterlv.Sin)
		checkTable(t, "complex", cos, sin, l.Complex.Re, l.Complex.Im)
		tally.add("get_1d_ntk_pos_embed", t)
	})
}

func TestVectorsVisionYarn1D(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.LLMDiT.VisionYarn {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			in := c.Inputs
			p := VisionYarnParams{
				Dim: int(num(in, "dim", 0)), Theta: num(in, "theta", 0),
				LinearScale: num(in, "linear_scale", 0), NTKScale: num(in, "ntk_scale", 0),
				OriMaxPELen: num(in, "ori_max_pe_len", 0), DyPE: flag(in, "dype"),
				Sigma: num(in, "current_timestep", 1), DypeScale: num(in, "dype_scale", 2),
				DypeExponent: num(in, "dype_exponent", 2),
			}
			if o, ok := in["override_mscale"].(float64); ok {
				p.MScaleOverride = &o
			}
			omega, m, err := VisionYarnFreqs(p)
			if err != nil {
				t.Fatal(err)
			}
			checkOmega(t, "omega", omega, c.Omega)
			checkRel(t, "mscale (table at p=0)", m, c.Cos[0][0], tolMScale)
			cos, sin := Table(omega, m, floats(in, "pos"))
			checkTable(t, "table", cos, sin, c.Cos, c.Sin)
			tally.add("get_1d_vision_yarn_pos_embed", t)
		})
	}
}

func TestVectorsYarn1D(t *testing.T) {
	v := loadVectors(t)
	for i, c := range v.LLMDiT.Yarn {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			in := c.Inputs
			omega, m, err := YarnFreqs(YarnParams{
				Dim: int(num(in, "dim", 0)), Theta: num(in, "theta", 0),
				MaxPELen: num(in, "max_pe_len", 0), OriMaxPELen: num(in, "ori_max_pe_len", 0),
				DyPE: flag(in, "dype"), Sigma: num(in, "current_timestep", 1),
				DypeScale: num(in, "dype_scale", 2), DypeExponent: num(in, "dype_exponent", 2),
				Aggressive: flag(in, "use_aggressive_mscale"),
			})
			if err != nil {
				t.Fatal(err)
			}
			checkOmega(t, "omega", omega, c.Omega)
			checkRel(t, "mscale (table at p=0)", m, c.Cos[0][0], tolMScale)
			cos, sin := Table(omega, m, floats(in, "pos"))
			checkTable(t, "table", cos, sin, c.Cos, c.Sin)
			tally.add("get_1d_yarn_pos_embed", t)
		})
	}
}

// TestVectorsOfficialV1Yarn checks that the community aggressive YaRN (λs = λt = 2) equals the
// official DyPE v1 Dy-YaRN. The official HEAD form (ratios multiplied by t²) is not implemented:
// those cases do not apply.
func TestVectorsOfficialV1Yarn(t *testing.T) {
	v := loadVectors(t)
	n := 0
	for i, c := range v.Official.Yarn1D {
		if c.Version != "v1" || c.Value == nil {
			continue
		}
		n++
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			in := c.Inputs
			omega, m, err := YarnFreqs(YarnParams{
				Dim: int(num(in, "dim", 0)), Theta: num(in, "theta", 0),
				MaxPELen: num(in, "max_pe_len", 0), OriMaxPELen: num(in, "ori_max_pe_len", 0),
				DyPE: flag(in, "dype"), Sigma: num(in, "current_timestep", 1),
				DypeScale: 2, DypeExponent: 2, Aggressive: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkOmega(t, "omega", omega, c.Value.Omega)
			cos, sin := Table(omega, m, floats(in, "pos"))
			checkTable(t, "table", cos, sin, c.Value.Cos, c.Value.Sin)
			tally.add("official_v1_yarn", t)
		})
	}
	if n == 0 {
		t.Fatal("no official v1 yarn cases found")
	}
}

func TestVectorsGetComponents(t *testing.T) {
	v := loadVectors(t)
	gc := v.LLMDiT.Components
	if len(gc.Cases) == 0 {
		t.Fatal("no get_components cases")
	}
	for i, c := range gc.Cases {
		t.Run(fmt.Sprintf("%d_%s_%s_%v", i, c.Resolution, strings.Fields(c.Method)[0], c.Sigma), func(t *testing.T) {
			cfg := configFrom(t, c.Config)
			e := NewPosEmbed(ZImageRope().Theta, ZImageRope().AxesDims, cfg)
			e.SetSigma(c.Sigma)
			ids := gc.IDs[c.Resolution]
			axes, err := e.ComponentsOfIDs(ids)
			if err != nil {
				t.Fatal(err)
			}
			// Spatial ω in call order: one shared call for isotropic yarn, else axis 1 then 2.
			if len(c.Calls) == 1 {
				checkOmega(t, "shared omega axis1", axes[1].Omega, c.Calls[0].Omega)
				checkOmega(t, "shared omega axis2", axes[2].Omega, c.Calls[0].Omega)
			} else if len(c.Calls) == 2 {
				checkOmega(t, "omega axis1", axes[1].Omega, c.Calls[0].Omega)
				checkOmega(t, "omega axis2", axes[2].Omega, c.Calls[1].Omega)
			} else {
				t.Fatalf("%d omega calls", len(c.Calls))
			}
			checkRel(t, "mscale axis1", axes[1].MScale, c.MScaleObs, tolMScale)
			for a, name := range []string{"axis0", "axis1", "axis2"} {
				tab, ok := c.Tables[name]
				if a == 0 {
					tab, ok = gc.Axis0.Axis0, true
				}
				if !ok {
					t.Fatalf("no %s table", name)
				}
				cos, sin := axes[a].Table(tab.Positions)
				checkTable(t, name, cos, sin, tab.Cos, tab.Sin)
			}
			// The same frequencies from the dense integer grid of the Rope API.
			rcfg := cfg
			rcfg.Mode = ModeLLMDiT
			r, err := New(rcfg, ZImageRope(), Geometry{Width: c.Width, Height: c.Height})
			if err != nil {
				t.Fatal(err)
			}
			st, err := r.StepAt(c.Sigma)
			if err != nil {
				t.Fatal(err)
			}
			for a := range 3 {
				checkOmega(t, fmt.Sprintf("Rope axis %d omega", a), st.Image[a].Omega, axes[a].Omega)
				if st.Image[a].MScale != axes[a].MScale {
					t.Errorf("Rope axis %d mscale %v, components %v", a, st.Image[a].MScale, axes[a].MScale)
				}
			}
			tally.add("get_components", t)
		})
	}
}

func TestVectorsPatchHelpers(t *testing.T) {
	v := loadVectors(t)
	p := v.LLMDiT.Patch
	for _, c := range p.ScaleHint {
		t.Run(fmt.Sprintf("hint_R%d_%dx%d", c.R, c.W, c.H), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.BaseResolution = c.R
			checkRel(t, "scale hint", LLMDiTScaleHint(cfg, c.W, c.H), c.Hint, tolScalar)
			if g := cfg.BasePatchGrid(); g != c.BaseGrid[0] || g != c.BaseGrid[1] {
				t.Errorf("base grid %d, want %v", g, c.BaseGrid)
			}
			tally.add("patch_helpers", t)
		})
	}
	for _, c := range p.SetHint {
		t.Run(fmt.Sprintf("set_hint_%v", c.Input), func(t *testing.T) {
			if got := ClampScaleHint(c.Input); got != c.Stored {
				t.Errorf("ClampScaleHint(%v) = %v, want %v", c.Input, got, c.Stored)
			}
			tally.add("patch_helpers", t)
		})
	}
	for i, c := range p.Blend {
		t.Run(fmt.Sprintf("blend_%d", i), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Enabled, cfg.DypeStartSigma, cfg.DypeExponent = c.Enabled, c.Start, c.Exponent
			checkRel(t, "blend", BlendToFullScale(c.Sigma, c.Enabled, cfg), c.Blend, tolScalar)
			tally.add("patch_helpers", t)
		})
	}
	for i, c := range p.Resize {
		t.Run(fmt.Sprintf("resize_%d_%s", i, c.Grid), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Enabled = c.Enabled
			got := ResizeRopeGrid(c.Input, BlendToFullScale(c.Sigma, c.Enabled, cfg))
			if len(got) != len(c.Output) {
				t.Fatalf("%d rows, want %d", len(got), len(c.Output))
			}
			for r := range got {
				if got[r] != c.Output[r] {
					t.Errorf("row %d = %v, want %v (float32 exact)", r, got[r], c.Output[r])
				}
			}
			tally.add("patch_helpers", t)
		})
	}
	t.Run("helpers", func(t *testing.T) {
		h := p.Helpers
		def := DefaultConfig().ToMap()
		for k, want := range h.DefaultConfig {
			if fmt.Sprint(def[k]) != fmt.Sprint(want) {
				t.Errorf("default %s = %v, want %v", k, def[k], want)
			}
		}
		e := NewPosEmbed(256, [3]int{32, 48, 48}, DefaultConfig())
		if e.Sigma != h.InitialSigma {
			t.Errorf("initial sigma %v, want %v", e.Sigma, h.InitialSigma)
		}
		e.BaseGrid = [2]int{h.GridIntArg[0], h.GridIntArg[0]} // an int argument means (v, v)
		if e.BaseGrid != h.GridIntArg {
			t.Errorf("int base grid %v, want %v", e.BaseGrid, h.GridIntArg)
		}
		cfg := DefaultConfig()
		cfg.BaseResolution = 1328
		if g := NewPosEmbed(256, [3]int{32, 48, 48}, cfg).BaseGrid; g != h.Grid1328 {
			t.Errorf("1328 base grid %v, want %v", g, h.Grid1328)
		}
		r, err := New(DefaultConfig(), ZImageRope(), Geometry{Width: 1024, Height: 1024})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetSigma(h.SigmaAfterSet); err != nil || r.Sigma() != h.SigmaAfterSet {
			t.Errorf("sigma after set %v (%v), want %v", r.Sigma(), err, h.SigmaAfterSet)
		}
		tally.add("patch_helpers", t)
	})
}

func checkSummary(t *testing.T, what string, vals []float64, want summary) {
	t.Helper()
	if len(vals) != want.CountUnique {
		t.Errorf("%s: %d distinct values, want %d", what, len(vals), want.CountUnique)
		return
	}
	minStep, maxStep := math.Inf(1), math.Inf(-1)
	for i := 1; i < len(vals); i++ {
		d := float64(float32(vals[i]) - float32(vals[i-1]))
		minStep, maxStep = math.Min(minStep, d), math.Max(maxStep, d)
	}
	if len(vals) < 2 {
		minStep, maxStep = want.MinStep, want.MaxStep
	}
	got := []float64{vals[0], vals[len(vals)-1], vals[len(vals)-1], minStep, maxStep}
	exp := []float64{want.Min, want.Max, want.Last, want.MinStep, want.MaxStep}
	names := []string{"min", "max", "last", "min_step", "max_step"}
	for i := range got {
		if got[i] != exp[i] {
			t.Errorf("%s %s = %.9g, want %.9g (float32 exact)", what, names[i], got[i], exp[i])
		}
	}
	for i, f := range want.First {
		if vals[i] != f {
			t.Errorf("%s first[%d] = %.9g, want %.9g", what, i, vals[i], f)
		}
	}
}

func comfyConfig(method string) Config {
	c := ComfyNodeDefaults()
	c.Method = Method(method)
	return c
}

func TestVectorsComfyZImage(t *testing.T) {
	v := loadVectors(t)
	z := v.Comfy.Zimage
	for _, c := range z.ShiftTable {
		t.Run(fmt.Sprintf("shift_%dx%d_lens%v", c.Width, c.Height, c.HasAxesLens), func(t *testing.T) {
			base := c.Grid[0] * c.Grid[1]
			mu, ok := ComfyShift(ComfyNodeDefaults(), c.Width, c.Height, base)
			if !ok {
				t.Fatal("no shift with enable_dype on")
			}
			checkRel(t, "mu", mu, c.Mu, tolScalar)
			spec := ZImageRope()
			if !c.HasAxesLens {
				spec.AxesLens = [3]int{}
			}
			r, err := New(ComfyNodeDefaults(), spec, Geometry{Width: c.Width, Height: c.Height})
			if err != nil {
				t.Fatal(err)
			}
			if mu2, ok := r.ShiftMu(); !ok || mu2 != mu {
				t.Errorf("Rope.ShiftMu = %v, %v; want %v", mu2, ok, mu)
			}
			tally.add("comfy_shift", t)
		})
	}
	for i, c := range z.Cases {
		t.Run(fmt.Sprintf("%d_%s_%s_%v", i, c.Resolution, c.Method, c.Sigma), func(t *testing.T) {
			cfg := comfyConfig(c.Method)
			r, err := New(cfg, ZImageRope(), Geometry{Width: c.Width, Height: c.Height})
			if err != nil {
				t.Fatal(err)
			}
			st, err := r.StepAt(c.Sigma)
			if err != nil {
				t.Fatal(err)
			}
			if st.Sigma != c.SigmaSeen || st.Dynamic != c.Flag || st.Scale != c.Hint || st.Blend != c.Blend {
				t.Errorf("sigma %v flag %v hint %v blend %v; want %v %v %v %v", st.Sigma, st.Dynamic, st.Scale, st.Blend, c.SigmaSeen, c.Flag, c.Hint, c.Blend)
			}
			if th, tw := st.TokenGrid(); th != c.TokensHW[0] || tw != c.TokensHW[1] {
				t.Errorf("token grid %dx%d, want %v", th, tw, c.TokensHW)
			}
			// Raw (stretched) grid and blended grid, float32 exact.
			raw := r.RawImageIDs(c.Axis0Value)
			th, tw := r.TokenGrid()
			rawRows, rawCols := make([]float64, th), make([]float64, tw)
			for k := 0; k < th; k++ {
				rawRows[k] = raw[k*tw][1]
			}
			for k := 0; k < tw; k++ {
				rawCols[k] = raw[k][2]
			}
			checkSummary(t, "raw axis1", rawRows, c.Raw1)
			checkSummary(t, "raw axis2", rawCols, c.Raw2)
			checkSummary(t, "blended axis1", st.Image[1].Positions, c.Blended1)
			checkSummary(t, "blended axis2", st.Image[2].Positions, c.Blended2)
			// Selected rows of the embedder input [caption(32); image].
			capN := 32
			all := append(st.CaptionIDs(capN), st.ImageIDs(float64(capN+1))...)
			allRaw := append(st.CaptionIDs(capN), raw...)
			if want := c.OutputShape[2]; len(all) != want {
				t.Errorf("%d embedder rows, want %d", len(all), want)
			}
			for j, row := range c.Rows {
				if row >= len(all) {
					t.Fatalf("row %d out of range", row)
				}
				if all[row] != TokenID(c.IDsBlended[j]) {
					t.Errorf("blended id row %d = %v, want %v", row, all[row], c.IDsBlended[j])
				}
				if row >= capN && allRaw[row] != TokenID(c.IDsRaw[j]) {
					t.Errorf("raw id row %d = %v, want %v", row, allRaw[row], c.IDsRaw[j])
				}
			}
			if len(c.Calls) != 2 {
				t.Fatalf("%d omega calls, want 2", len(c.Calls))
			}
			checkOmega(t, "omega axis1", st.Image[1].Omega, c.Calls[0].Omega)
			checkOmega(t, "omega axis2", st.Image[2].Omega, c.Calls[1].Omega)
			for a, name := range []string{"", "axis1", "axis2"} {
				if a == 0 {
					continue
				}
				tab := c.Tables[name]
				cos, sin := st.Image[a].Table(tab.Positions)
				checkTable(t, name, cos, sin, tab.Cos, tab.Sin)
				if tab.Positions[0] != 0 {
					continue
				}
				checkRel(t, name+" mscale", st.Image[a].MScale, tab.Cos[0][0], tolMScale)
			}
			tally.add("comfy_zimage_cases", t)
		})
	}
	t.Run("example_workflow", func(t *testing.T) {
		e := z.Example
		r, err := New(ComfyNodeDefaults(), ZImageRope(), Geometry{Width: e.Latent[0], Height: e.Latent[1], RequestedWidth: e.Node[0], RequestedHeight: e.Node[1]})
		if err != nil {
			t.Fatal(err)
		}
		if r.Scale() != e.Hint {
			t.Errorf("hint %v, want %v", r.Scale(), e.Hint)
		}
		raw := r.RawImageIDs(33)
		th, tw := r.TokenGrid()
		rows, cols := make([]float64, th), make([]float64, tw)
		for k := range rows {
			rows[k] = raw[k*tw][1]
		}
		for k := range cols {
			cols[k] = raw[k][2]
		}
		checkSummary(t, "raw axis1", rows, e.Raw1)
		checkSummary(t, "raw axis2", cols, e.Raw2)
		if mu, ok := r.ShiftMu(); !ok || mu != e.Mu {
			t.Errorf("mu %v %v, want %v", mu, ok, e.Mu)
		}
		tally.add("comfy_example_workflow", t)
	})
	for i, c := range z.StartSigma {
		t.Run(fmt.Sprintf("start_sigma_%d", i), func(t *testing.T) {
			var w, h int
			fmt.Sscanf(c.Resolution, "%dx%d", &w, &h)
			cfg := comfyConfig(c.Method)
			cfg.DypeStartSigma = c.Start
			r, err := New(cfg, ZImageRope(), Geometry{Width: w, Height: h})
			if err != nil {
				t.Fatal(err)
			}
			st, err := r.StepAt(c.Sigma)
			if err != nil {
				t.Fatal(err)
			}
			if st.Blend != c.Blend {
				t.Errorf("blend %v, want %v", st.Blend, c.Blend)
			}
			cos, _ := st.CaptionTable(st.CaptionIDs(1))
			lane := st.Caption[0].Lanes() // first lane of axis 1
			checkRel(t, "caption-row mscale", float64(cos[lane]), c.MScaleCap, tolMScale)
			checkSummary(t, "blended axis1", st.Image[1].Positions, c.Blended1)
			tally.add("comfy_start_sigma", t)
		})
	}
}

func TestVectorsUnitTestList(t *testing.T) {
	v := loadVectors(t)
	u := v.UnitTests
	if u.Count != 50 || u.Passed != 50 || len(u.Tests) != 50 {
		t.Fatalf("upstream unit tests: count %d passed %d listed %d, want 50", u.Count, u.Passed, len(u.Tests))
	}
	for _, tc := range u.Tests {
		if _, ok := unitTestCoverage[tc.Test]; !ok {
			t.Errorf("upstream test %s has no Go counterpart in unitTestCoverage", tc.Test)
		}
	}
}

// TestMain prints the per-group tally of passed vector cases with -v.
func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() && len(tally.n) > 0 {
		total, passed := 0, 0
		for g, v := range tally.n {
			fmt.Printf("vectors %-30s %4d/%d\n", g, v[0], v[1])
			total += v[1]
			passed += v[0]
		}
		fmt.Printf("vectors %-30s %4d/%d\n", "TOTAL", passed, total)
	}
	os.Exit(code)
}
