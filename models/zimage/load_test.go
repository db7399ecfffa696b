package zimage

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// tinyCheckpoint returns the golden tiny DiT's tensors (raw entries) and its sidecar.
func tinyCheckpoint(t *testing.T) (path string, entries map[string]safetensors.Entry, sidecar []byte) {
	t.Helper()
	gm := golden.MustLoad(t)
	raw, ok := gm.Cases["dit_a_t0"]
	if !ok {
		t.Fatal("golden set has no dit_a_t0")
	}
	var gc goldenCase
	if err := json.Unmarshal(raw, &gc); err != nil {
		t.Fatal(err)
	}
	path = gm.Path(gc.Weights)
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries = map[string]safetensors.Entry{}
	for _, info := range f.Tensors() {
		data, err := f.Data(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		entries[info.Name] = safetensors.Entry{DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), data...)}
	}
	sidecar, err = os.ReadFile(detect.SidecarPath(path))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return path, entries, sidecar
}

// writeCheckpoint writes entries (and the sidecar, when not nil) into dir/name.
func writeCheckpoint(t *testing.T, dir, name string, entries map[string]safetensors.Entry, sidecar []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := safetensors.WriteFile(p, entries, nil); err != nil {
		t.Fatal(err)
	}
	if sidecar != nil {
		if err := os.WriteFile(detect.SidecarPath(p), sidecar, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// tinyInput is a small input for the tiny model: latent 8×6, caption 5.
func tinyInput(t *testing.T, m *Model) Input {
	c := m.Config()
	return Input{X: randTensor(t, 11, 1, c.InChannels, 8, 6), Sigma: []float32{0.6}, Context: randTensor(t, 12, 1, 5, c.CapFeatDim)}
}

func TestLoadLayouts(t *testing.T) {
	path, entries, sidecar := tinyCheckpoint(t)
	be := testBackend(t)
	ref, err := Load(path, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	in := tinyInput(t, ref)
	want := forward(t, ref, in)
	cfg := ref.Config()
	dir := t.TempDir()

	prefixed := map[string]safetensors.Entry{}
	for n, e := range entries {
		prefixed["model.diffusion_model."+n] = e
	}
	// A combined checkpoint also carries other components, which the loader leaves alone.
	prefixed["first_stage_model.decoder.conv_in.bias"] = safetensors.Entry{DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}

	// diffusers: split qkv, renamed embedders, final layer and attention parts.
	diff := map[string]safetensors.Entry{}
	hd := cfg.HeadDim
	pf := "all_x_embedder." + "2-1."
	for n, e := range entries {
		switch {
		case strings.HasSuffix(n, ".attention.qkv.weight"):
			blk := strings.TrimSuffix(n, ".attention.qkv.weight")
			rowBytes := len(e.Data) / e.Shape[0]
			q, kv := cfg.NHeads*hd, cfg.NKVHeads*hd
			for _, part := range []struct {
				name      string
				off, rows int
			}{{"to_q", 0, q}, {"to_k", q, kv}, {"to_v", q + kv, kv}} {
				diff[blk+".attention."+part.name+".weight"] = safetensors.Entry{DType: e.DType, Shape: []int{part.rows, e.Shape[1]},
					Data: e.Data[part.off*rowBytes : (part.off+part.rows)*rowBytes]}
			}
		case strings.HasSuffix(n, ".attention.out.weight"):
			diff[strings.TrimSuffix(n, "out.weight")+"to_out.0.weight"] = e
		case strings.HasSuffix(n, ".attention.q_norm.weight"):
			diff[strings.TrimSuffix(n, "q_norm.weight")+"norm_q.weight"] = e
		case strings.HasSuffix(n, ".attention.k_norm.weight"):
			diff[strings.TrimSuffix(n, "k_norm.weight")+"norm_k.weight"] = e
		case strings.HasPrefix(n, "x_embedder."):
			diff[pf+strings.TrimPrefix(n, "x_embedder.")] = e
		case strings.HasPrefix(n, "final_layer."):
			diff["all_final_layer.2-1."+strings.TrimPrefix(n, "final_layer.")] = e
		default:
			diff[n] = e
		}
	}
	for _, tc := range []struct {
		name    string
		entries map[string]safetensors.Entry
		tol     float64
	}{
		{"comfyui_prefixed", prefixed, 0},
		{"diffusers", diff, 1e-6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeCheckpoint(t, dir, tc.name+".safetensors", tc.entries, sidecar)
			m, err := Load(p, be, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got := forward(t, m, in)
			if d, _ := maxAbsDiff(got, want); d > tc.tol {
				t.Errorf("output differs from the ComfyUI file by %g", d)
			}
			if u := m.UnusedTensors(); len(u) != 0 {
				t.Errorf("unused tensors %v", u)
			}
		})
	}
}

// TestLoadErrors: bad or mismatched checkpoints give errors that name the problem.
func TestLoadErrors(t *testing.T) {
	_, entries, sidecar := tinyCheckpoint(t)
	be := testBackend(t)
	dir := t.TempDir()
	edit := func(f func(map[string]safetensors.Entry)) map[string]safetensors.Entry {
		m := map[string]safetensors.Entry{}
		for k, v := range entries {
			m[k] = v
		}
		f(m)
		return m
	}
	var sc map[string]any
	if sidecar != nil {
		if err := json.Unmarshal(sidecar, &sc); err != nil {
			t.Fatal(err)
		}
	}
	scWith := func(k string, v any) []byte {
		m := map[string]any{}
		for a, b := range sc {
			m[a] = b
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name    string
		entries map[string]safetensors.Entry
		sidecar []byte
		raw     []byte // file contents instead of entries
		want    string
	}{
		{name: "missing tensor", entries: edit(func(m map[string]safetensors.Entry) { delete(m, "layers.1.ffn_norm2.weight") }), sidecar: sidecar, want: "missing tensor layers.1.ffn_norm2.weight"},
		{name: "wrong shape", entries: edit(func(m map[string]safetensors.Entry) {
			e := m["layers.0.attention_norm1.weight"]
			m["layers.0.attention_norm1.weight"] = safetensors.Entry{DType: e.DType, Shape: []int{e.Shape[0] / 2}, Data: e.Data[:len(e.Data)/2]}
		}), sidecar: sidecar, want: "layers.0.attention_norm1.weight has shape"},
		{name: "integer tensor", entries: edit(func(m map[string]safetensors.Entry) {
			e := m["x_pad_token"]
			m["x_pad_token"] = safetensors.Entry{DType: safetensors.I16, Shape: e.Shape, Data: e.Data}
		}), sidecar: sidecar, want: "x_pad_token"},
		{name: "sidecar contradicts shapes", entries: entries, sidecar: scWith("n_heads", 3), want: "n_heads"},
		{name: "sidecar bad axes", entries: entries, sidecar: scWith("axes_dims", []int{16, 24}), want: "axes_dims"},
		{name: "not a DiT", entries: map[string]safetensors.Entry{"decoder.conv_in.bias": {DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}}, want: "not a Z-Image DiT"},
		{name: "scaled fp8", entries: edit(func(m map[string]safetensors.Entry) {
			m["layers.0.attention.qkv.scale_weight"] = safetensors.Entry{DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}
		}), sidecar: sidecar, want: "scaled-FP8"},
		{name: "truncated", raw: []byte{8, 0, 0, 0, 0, 0, 0, 0, '{'}, want: "safetensors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p string
			if tc.raw != nil {
				p = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
				if err := os.WriteFile(p, tc.raw, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				p = writeCheckpoint(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors", tc.entries, tc.sidecar)
			}
			m, err := Load(p, be, Options{})
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) && tc.raw == nil {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	// Without the sidecar the tiny head size (not 128) leaves the RoPE axes unknown.
	if sidecar != nil {
		p := writeCheckpoint(t, dir, "no_sidecar.safetensors", entries, nil)
		if _, err := Load(p, be, Options{}); err == nil || !strings.Contains(err.Error(), "axes_dims") {
			t.Errorf("no sidecar: %v", err)
		}
		// Options.Overrides act as a sidecar.
		m, err := Load(p, be, Options{Overrides: map[string]any{"axes_dims": sc["axes_dims"]}})
		if err != nil {
			t.Errorf("overrides: %v", err)
		} else {
			m.Close()
		}
	}
	if _, err := Load(filepath.Join(dir, "absent.safetensors"), be, Options{}); err == nil {
		t.Error("absent file loaded")
	}
}

// TestLoadFP8: weight_dtype fp8 converts the Linear weights at load; the output stays close to
// the BF16 model's (FP8 e4m3 keeps 3 mantissa bits).
func TestLoadFP8(t *testing.T) {
	path, _, _ := tinyCheckpoint(t)
	be := testBackend(t)
	ref, err := Load(path, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	in := tinyInput(t, ref)
	want := forward(t, ref, in)
	for _, dt := range []tensor.DType{tensor.F8E4M3, tensor.F8E5M2} {
		m, err := Load(path, be, Options{WeightDType: dt})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.w.layers[0].qkv.w[0].DType(); got != dt {
			t.Errorf("%v: qkv weight is %v", dt, got)
		}
		got := forward(t, m, in)
		d, absmax := maxAbsDiff(got, want)
		t.Logf("%v: max |Δ| vs bf16 = %.3g (|out| ≤ %.3g)", dt, d, absmax)
		if d == 0 || d > 0.5*absmax {
			t.Errorf("%v: max |Δ| = %g vs |out| %g", dt, d, absmax)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnusedTensors(t *testing.T) {
	_, entries, sidecar := tinyCheckpoint(t)
	entries["siglip_pad_token"] = entries["x_pad_token"]
	p := writeCheckpoint(t, t.TempDir(), "extra.safetensors", entries, sidecar)
	m, err := Load(p, testBackend(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if u := m.UnusedTensors(); len(u) != 1 || u[0] != "siglip_pad_token" {
		t.Errorf("unused %v", u)
	}
	if _, err := m.Forward(context.Background(), tinyInput(t, m)); err != nil {
		t.Fatal(err)
	}
}
