package dype

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
)

// The golden cases dit_dype_llmdit and dit_dype_comfy record the RoPE tables a tiny NextDiT
// attended with under each mode (upstream code, float32 CPU). They check the Step API end to
// end: ids, blended positions and cos/sin, for whatever tiny axes the golden set uses.

// readF32 reads F32 tensors from a safetensors file (the test needs nothing else).
func readF32(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v", err)
	}
	if len(data) < 8 {
		t.Fatalf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > uint64(len(data)-8) {
		t.Fatalf("%s: bad header length", path)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &hdr); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	body := data[8+n:]
	out := map[string][]float32{}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string    `json:"dtype"`
			Offsets [2]uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &info); err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		if info.Dtype != "F32" {
			continue
		}
		if info.Offsets[1] > uint64(len(body)) || info.Offsets[0] > info.Offsets[1] {
			t.Fatalf("%s: %s: offsets out of range", path, name)
		}
		b := body[info.Offsets[0]:info.Offsets[1]]
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out[name] = v
	}
	return out
}

type goldenDiT struct {
	AxesDims    [3]int  `json:"axes_dims"`
	AxesLens    [3]int  `json:"axes_lens"`
	Theta       float64 `json:"rope_theta"`
	PadMultiple int     `json:"pad_tokens_multiple"`
}

type goldenDyPECase struct {
	Latent     []int `json:"latent_shape"`
	CaptionLen int   `json:"caption_len"`
	IO         struct {
		File string `json:"file"`
	} `json:"io"`
	Subcases map[string]struct {
		Method   string         `json:"method"`
		Prefix   string         `json:"prefix"`
		LLMDiT   map[string]any `json:"llm_dit_config"`
		Node     map[string]any `json:"node"`
		Hint     float64        `json:"scale_hint"`
		Sigma    float64        `json:"embedder_timestep"`
		Flag     bool           `json:"embedder_dype_flag"`
		Mu       *float64       `json:"dype_shift_mu"`
		CapRows  int            `json:"caption_rows"`
		ImgRows  int            `json:"image_rows"`
		Patched  *bool          `json:"model_sampling_patched"`
		BaseGrid []int          `json:"embedder_base_patch_grid"`
	} `json:"subcases"`
}

// nodeConfig maps ComfyUI-DyPE node inputs to a comfy Config.
func nodeConfig(t *testing.T, node map[string]any) Config {
	t.Helper()
	m := map[string]any{"mode": "comfy"}
	for _, k := range []string{"method", "base_resolution", "dype_start_sigma", "dype_scale", "dype_exponent", "base_shift", "max_shift"} {
		if v, ok := node[k]; ok {
			m[k] = v
		}
	}
	m["enabled"] = node["enable_dype"]
	m["anisotropic"] = node["yarn_alt_scaling"]
	c, err := FromMap(m)
	if err != nil {
		t.Fatalf("node config: %v", err)
	}
	return c
}

func TestGoldenDiTRopeTables(t *testing.T) {
	gm := golden.MustLoad(t)
	var dit goldenDiT
	if raw, ok := gm.Top["dit_config"]; !ok || json.Unmarshal(raw, &dit) != nil {
		t.Fatal("golden manifest: no usable dit_config")
	}
	spec := RopeSpec{Theta: dit.Theta, AxesDims: dit.AxesDims, AxesLens: dit.AxesLens, PadMultiple: dit.PadMultiple}
	found := 0
	for _, name := range []string{"dit_dype_llmdit", "dit_dype_comfy"} {
		raw, ok := gm.Cases[name]
		if !ok {
			continue
		}
		found++
		var gc goldenDyPECase
		if err := json.Unmarshal(raw, &gc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(gc.Latent) != 4 {
			t.Fatalf("%s: latent shape %v", name, gc.Latent)
		}
		tensors := readF32(t, gm.Path(gc.IO.File))
		geom := Geometry{Width: gc.Latent[3] * VAEDownscale, Height: gc.Latent[2] * VAEDownscale}
		capPad := gc.CaptionLen
		if m := spec.PadMultiple; m > 1 {
			capPad = ceilDiv(capPad, m) * m
		}
		for sub, sc := range gc.Subcases {
			t.Run(name+"/"+sub, func(t *testing.T) {
				var cfg Config
				geom := geom
				comfy := strings.HasSuffix(name, "comfy")
				if comfy {
					cfg = nodeConfig(t, sc.Node)
					geom.RequestedWidth, _ = asInt(sc.Node["width"])
					geom.RequestedHeight, _ = asInt(sc.Node["height"])
				} else {
					cfg = configFrom(t, sc.LLMDiT)
				}
				sig := tensors[sc.Prefix+"sigma"]
				if len(sig) != 1 {
					t.Fatalf("sigma tensor %v", sig)
				}
				r, err := New(cfg, spec, geom)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.SetSigma(NormalizeSigma(float64(sig[0]), 1)); err != nil {
					t.Fatal(err)
				}
				st, err := r.Step()
				if err != nil {
					t.Fatal(err)
				}
				capIDs := st.CaptionIDs(capPad)
				imgIDs := st.ImageIDs(float64(capPad + 1))
				if !comfy && (len(capIDs) != sc.CapRows || len(imgIDs) != sc.ImgRows) {
					t.Fatalf("rows %d+%d, want %d+%d", len(capIDs), len(imgIDs), sc.CapRows, sc.ImgRows)
				}
				ids := append(capIDs, imgIDs...)
				posName := sc.Prefix + "rope_pos"
				if !comfy {
					posName = sc.Prefix + "rope_ids"
				}
				checkIDs(t, "positions", ids, tensors[posName])
				if comfy {
					raw := append(st.CaptionIDs(capPad), r.RawImageIDs(float64(capPad+1))...)
					for i := range capPad {
						raw[i] = TokenID{float64(i + 1), 0, 0}
					}
					checkIDs(t, "raw ids", raw, tensors[sc.Prefix+"rope_ids"])
					if st.Scale != sc.Hint || st.Sigma != sc.Sigma || st.Dynamic != sc.Flag {
						t.Errorf("hint %v sigma %v flag %v; want %v %v %v", st.Scale, st.Sigma, st.Dynamic, sc.Hint, sc.Sigma, sc.Flag)
					}
					mu, ok := r.ShiftMu()
					if sc.Mu != nil && (!ok || mu != *sc.Mu) {
						t.Errorf("mu %v %v, want %v", mu, ok, *sc.Mu)
					}
				}
				cc, cs := st.CaptionTable(capIDs)
				ic, is := st.ImageTable(imgIDs)
				cos, sin := append(cc, ic...), append(cs, is...)
				wantCos, wantSin := tensors[sc.Prefix+"rope_cos"], tensors[sc.Prefix+"rope_sin"]
				if len(cos) != len(wantCos) || len(sin) != len(wantSin) {
					t.Fatalf("table sizes %d/%d, want %d/%d", len(cos), len(sin), len(wantCos), len(wantSin))
				}
				worst := 0.0
				for i := range cos {
					worst = math.Max(worst, math.Abs(float64(cos[i]-wantCos[i])))
					worst = math.Max(worst, math.Abs(float64(sin[i]-wantSin[i])))
				}
				if worst > tolTable {
					t.Errorf("rope tables: max |Δ| = %g > %g", worst, tolTable)
				}
				t.Logf("%s: max |Δ| cos/sin = %.3g", sub, worst)
			})
		}
	}
	if found == 0 {
		t.Fatal("golden set has no dit_dype_* cases")
	}
}

func checkIDs(t *testing.T, what string, got []TokenID, want []float32) {
	t.Helper()
	if len(want) != 3*len(got) {
		t.Fatalf("%s: %d ids, want %d", what, len(got), len(want)/3)
	}
	bad := 0
	for i, id := range got {
		for a := range 3 {
			if float32(id[a]) != want[3*i+a] || id[a] != float64(want[3*i+a]) {
				if bad < 5 {
					t.Errorf("%s row %d axis %d = %v, want %v", what, i, a, id[a], want[3*i+a])
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d coordinates differ", what, bad)
	}
}
