package lora_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/internal/golden/goldentensor"
	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/zimage"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// The lora_* golden cases: ComfyUI's LoraLoaderModelOnly on the tiny DiT (one or several
// LoRA files, in order), then one NextDiT forward. Every case of the manifest whose name
// starts with "lora_" runs as a subtest; names, files, strengths and targets come from the
// manifest.

type dev struct {
	MaxAbs float64 `json:"max_abs"`
}

type narrow struct {
	Dim, Start, Length int
}

type goldenTarget struct {
	Weight string   `json:"weight"`
	Narrow *narrow  `json:"narrow"`
	Rank   int      `json:"rank"`
	Alpha  *float64 `json:"alpha"`
	Scale  float64  `json:"scale"`
}

type loraCase struct {
	Weights   string `json:"weights"`
	LoraFiles []struct {
		File     string  `json:"file"`
		Strength float64 `json:"strength_model"`
		NTargets int     `json:"n_target_modules"`
	} `json:"lora_files"`
	Targets map[string]map[string]goldenTarget `json:"targets"`
	IO      struct {
		File string `json:"file"`
	} `json:"io"`
	PatchedStored []string `json:"patched_weights_stored"`
	Dev           dev      `json:"fp32_vs_fp64"`
	PatchedChecks map[string]struct {
		Dev dev `json:"fp32_vs_fp64"`
	} `json:"patched_weight_checks"`
	Probe map[string]*struct {
		Weight string  `json:"weight"`
		Narrow *narrow `json:"narrow"`
	} `json:"key_map_probe"`
}

// tolerance is the allowed max |Δ| of a forward output: a multiple of the reference's own
// float32-vs-float64 deviation, and at least 1.5e-5 of the output's magnitude (as the DiT
// golden tests).
func tolerance(d dev, absmax float64) float64 { return math.Max(20*d.MaxAbs, 1.5e-5*absmax) }

func TestGolden(t *testing.T) {
	gm := golden.MustLoad(t)
	var names []string
	for n := range gm.Cases {
		if strings.HasPrefix(n, "lora_") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		t.Fatal("the golden set has no lora_* case")
	}
	slices.Sort(names)
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	type pair struct{ bf16, f32 *zimage.Model }
	models := map[string]pair{}
	top := t
	load := func(t *testing.T, file string) pair {
		t.Helper()
		if p, ok := models[file]; ok {
			return p
		}
		stored, err := zimage.Load(gm.Path(file), be, zimage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		top.Cleanup(func() { stored.Close() })
		f32, err := zimage.Load(f32Copy(t, top.TempDir(), gm.Path(file)), be, zimage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		top.Cleanup(func() { f32.Close() })
		models[file] = pair{stored, f32}
		return models[file]
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			var c loraCase
			if err := json.Unmarshal(gm.Cases[name], &c); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			if len(c.LoraFiles) == 0 {
				t.Fatal("manifest: no lora_files")
			}
			ms := load(t, c.Weights)
			io := goldentensor.Open(t, gm.Path(c.IO.File))
			km := ms.bf16.LoRAKeyMap()
			checkProbe(t, km, c.Probe)

			var patches []lora.Patch
			for _, lf := range c.LoraFiles {
				f, err := lora.Open(gm.Path(lf.File))
				if err != nil {
					t.Fatal(err)
				}
				res, err := f.Resolve(km)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				checkTargets(t, lf.File, res, c.Targets, lf.NTargets, len(c.LoraFiles) == 1)
				patches = append(patches, lora.WithStrength(res.Patches, lora.ModelDiffusion, lf.Strength)...)
			}

			x, cx := io.Tensor("x"), io.Tensor("context")
			sig := io.Floats("sigma")
			in := zimage.Input{X: x, Sigma: sig, Context: cx}
			baseOut := forward(t, ms.f32, in)
			baseBits := paramBits(t, ms.f32, c.PatchedStored)

			for _, run := range []struct {
				m    *zimage.Model
				want string
			}{{ms.f32, "model_output"}, {ms.bf16, "model_output_bf16_weights"}} {
				v, err := run.m.WithPatches(context.Background(), patches)
				if err != nil {
					t.Fatal(err)
				}
				got := forward(t, v, in)
				want := io.Floats(run.want)
				d, am := maxAbsDiff(got, want)
				tol := tolerance(c.Dev, am)
				t.Logf("%s: max |Δ| = %.3g (tolerance %.3g, |out| ≤ %.3g)", run.want, d, tol, am)
				if d > tol {
					t.Errorf("%s: max |Δ| = %g > %g", run.want, d, tol)
				}
				if run.m == ms.f32 {
					for _, w := range c.PatchedStored {
						parts, ok := v.Parameter(w)
						if !ok || len(parts) != 1 {
							t.Fatalf("patched view has no single tensor %s", w)
						}
						got := readAll(t, be, parts[0])
						want := io.Floats("patched/" + w)
						d, am := maxAbsDiff(got, want)
						tol := math.Max(20*c.PatchedChecks[w].Dev.MaxAbs, 2e-7*am)
						t.Logf("patched/%s: max |Δ| = %.3g (tolerance %.3g)", w, d, tol)
						if d > tol {
							t.Errorf("patched/%s: max |Δ| = %g > %g", w, d, tol)
						}
					}
				}
				if err := v.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// The base is untouched: same weights bit for bit, same output bit for bit.
			if !slices.Equal(paramBits(t, ms.f32, c.PatchedStored), baseBits) {
				t.Error("patching changed the base model's weights")
			}
			if after := forward(t, ms.f32, in); !bitsEqual(after, baseOut) {
				t.Error("the base model's output changed after patching and closing the view")
			}
		})
	}
}

// checkTargets compares the resolved patches of one file with the manifest's targets.
func checkTargets(t *testing.T, file string, res *lora.Result, targets map[string]map[string]goldenTarget, n int, single bool) {
	t.Helper()
	group := "lora_" + strings.TrimSuffix(strings.TrimPrefix(file, "lora_file_"), ".safetensors")
	want, ok := targets[group]
	if !ok && single && len(targets) == 1 {
		for _, v := range targets {
			want = v
		}
	}
	if want == nil {
		t.Fatalf("%s: no targets group %q in the manifest", file, group)
	}
	if len(res.Patches) != len(want) || (n != 0 && n != len(res.Patches)) {
		t.Errorf("%s: %d patches, manifest lists %d (n_target_modules %d)", file, len(res.Patches), len(want), n)
	}
	for _, p := range res.Patches {
		w, ok := want[p.Module]
		if !ok {
			t.Errorf("%s: module %s is not a target in the manifest", file, p.Module)
			continue
		}
		if p.Target.Param != w.Weight || p.Rank() != w.Rank || p.Kind != lora.KindLoRA {
			t.Errorf("%s: %s → %s rank %d, want %s rank %d", file, p.Module, p.Target, p.Rank(), w.Weight, w.Rank)
		}
		if (w.Narrow == nil) != p.Target.Whole() || (w.Narrow != nil && (w.Narrow.Dim != 0 || w.Narrow.Start != p.Target.Start || w.Narrow.Length != p.Target.Rows)) {
			t.Errorf("%s: %s → %s, want narrow %+v", file, p.Module, p.Target, w.Narrow)
		}
		if (w.Alpha == nil) == p.HasAlpha || (w.Alpha != nil && *w.Alpha != p.Alpha) || p.Scale() != w.Scale {
			t.Errorf("%s: %s: alpha %v (present %v) scale %v, want alpha %v scale %v", file, p.Module, p.Alpha, p.HasAlpha, p.Scale(), w.Alpha, w.Scale)
		}
	}
	for _, nl := range res.NotLoaded {
		for m := range want {
			if strings.HasPrefix(nl, m+".") {
				t.Errorf("%s: tensor %s of a target module was not loaded", file, nl)
			}
		}
	}
}

// checkProbe compares key-map lookups with ComfyUI's (null = not mapped).
func checkProbe(t *testing.T, km *lora.KeyMap, probe map[string]*struct {
	Weight string  `json:"weight"`
	Narrow *narrow `json:"narrow"`
}) {
	t.Helper()
	for name, want := range probe {
		got, ok := km.Lookup(name)
		switch {
		case want == nil && ok:
			t.Errorf("key map: %s → %s, ComfyUI does not map it", name, got)
		case want != nil && !ok:
			t.Errorf("key map: %s not mapped, ComfyUI maps it to %s", name, want.Weight)
		case want != nil:
			wn := lora.Target{Model: lora.ModelDiffusion, Param: want.Weight}
			if want.Narrow != nil {
				wn.Start, wn.Rows = want.Narrow.Start, want.Narrow.Length
			}
			if got != wn {
				t.Errorf("key map: %s → %s, want %s", name, got, wn)
			}
		}
	}
}

func forward(t *testing.T, m *zimage.Model, in zimage.Input) []float32 {
	t.Helper()
	v, err := m.Forward(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Backend().Free(v)
	return readAll(t, m.Backend(), v)
}

// paramBits returns the raw values of the named parameters.
func paramBits(t *testing.T, m *zimage.Model, names []string) []uint32 {
	t.Helper()
	var out []uint32
	for _, n := range names {
		parts, ok := m.Parameter(n)
		if !ok {
			t.Fatalf("model has no parameter %s", n)
		}
		for _, p := range parts {
			for _, v := range readAll(t, m.Backend(), p) {
				out = append(out, math.Float32bits(v))
			}
		}
	}
	return out
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// f32Copy writes the weights file with every tensor widened to F32 (exact), with its sidecar
// config, and returns the new path: the float32-weights model of the "model_output" outputs.
func f32Copy(t *testing.T, dir, path string) string {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string]safetensors.Entry{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		dt, err := tensor.ParseDType(string(info.DType))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		data, _ := f.Data(n)
		x, err := tensor.FromBytes(data, dt, info.Shape...)
		if err != nil {
			t.Fatal(err)
		}
		v, err := x.ToFloat32()
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4*len(v))
		if err := tensor.EncodeF32(b, v, tensor.F32); err != nil {
			t.Fatal(err)
		}
		entries[n] = safetensors.Entry{DType: safetensors.F32, Shape: info.Shape, Data: b}
	}
	out := filepath.Join(dir, "f32_"+filepath.Base(path))
	if err := safetensors.WriteFile(out, entries, nil); err != nil {
		t.Fatal(err)
	}
	side := strings.TrimSuffix(path, ".safetensors") + ".config.json"
	if b, err := os.ReadFile(side); err == nil {
		if err := os.WriteFile(strings.TrimSuffix(out, ".safetensors")+".config.json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
