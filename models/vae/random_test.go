package vae_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
)

// TestParamShapesMatchRealVAE compares ParamShapes(FluxConfig()) with the key list of the real
// ae.safetensors (names and shapes, nothing more, nothing less).
func TestParamShapesMatchRealVAE(t *testing.T) {
	dir, err := golden.Dir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "keys", "vae_keys.tsv"))
	if err != nil {
		t.Fatalf("no key list: %v", err)
	}
	want := map[string][]int{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 2 || strings.HasPrefix(line, "#") {
			continue
		}
		want[f[0]] = parseShape(t, f[1])
	}
	got, err := vae.ParamShapes(vae.FluxConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d tensors, the real file has %d", len(got), len(want))
	}
	for name, shape := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("missing %s", name)
		} else if !reflect.DeepEqual(g, shape) {
			t.Errorf("%s: %v, want %v", name, g, shape)
		}
	}
}

func parseShape(t *testing.T, s string) []int {
	t.Helper()
	var dims []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' }) {
		var d int
		for _, c := range f {
			if c < '0' || c > '9' {
				t.Fatalf("bad shape %q", s)
			}
			d = d*10 + int(c-'0')
		}
		dims = append(dims, d)
	}
	return dims
}

// TestRandomWeightsLoad writes RandomWeights of a small config as BF16 and loads them; the same
// seed gives the same weights.
func TestRandomWeightsLoad(t *testing.T) {
	cfg := vae.Config{Ch: 8, ChMult: []int{1, 2, 2}, NumResBlocks: 1, ZChannels: 16, InChannels: 3, OutCh: 3,
		DoubleZ: true, AttnResolutions: []int{64}, Resolution: 128, GroupNormGroups: 4, GroupNormEps: 1e-6}
	w1, err := vae.RandomWeights(cfg, tensor.BF16, 3)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := vae.RandomWeights(cfg, tensor.BF16, 3)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]safetensors.Entry{}
	for name, tt := range w1 {
		b1, _ := tt.HostBytes()
		b2, _ := w2[name].HostBytes()
		if !reflect.DeepEqual(b1, b2) {
			t.Fatalf("%s differs between two draws of one seed", name)
		}
		entries[name] = safetensors.Entry{DType: safetensors.BF16, Shape: tt.Shape(), Data: b1}
	}
	if _, ok := w1["encoder.down.1.attn.0.q.weight"]; !ok {
		t.Fatal("attention at resolution 64 is missing")
	}
	path := writeCheckpoint(t, t.TempDir(), "rand", entries, map[string]any{"groupnorm_groups": 4, "attn_resolutions": []int{64}, "resolution": 128})
	v, err := vae.Load(path, newBackend(t), vae.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if _, err := vae.RandomWeights(cfg, tensor.F8E4M3, 1); err == nil {
		t.Fatal("FP8 accepted as a compute dtype")
	}
	bad := cfg
	bad.GroupNormGroups = 3
	if _, err := vae.ParamShapes(bad); err == nil {
		t.Fatal("an invalid config gave shapes")
	}
}
