package upscale

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// The reference data come from testdata/gen.py (torch 1.13; ComfyUI's tiled_scale taken from its
// source at generation time).

const refTol = 1e-5

func newBackend(t testing.TB) tensor.Backend {
	t.Helper()
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

type refFile struct {
	f *safetensors.File
}

func openRef(t *testing.T) *refFile {
	t.Helper()
	f, err := safetensors.Open(filepath.Join("testdata", "ref.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &refFile{f}
}

// planar returns a reference tensor [1, C, H, W] (or image b of [B, C, H, W]).
func (r *refFile) tensor(t *testing.T, name string) ([]int, []float32) {
	t.Helper()
	info, ok := r.f.Info(name)
	if !ok {
		t.Fatalf("reference tensor %s missing", name)
	}
	data, err := r.f.Data(name)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tensor.FromBytes(data, tensor.F32, info.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ts.ToFloat32()
	if err != nil {
		t.Fatal(err)
	}
	return info.Shape, f
}

func (r *refFile) planar(t *testing.T, name string) Planar {
	shape, f := r.tensor(t, name)
	if len(shape) != 4 || shape[0] != 1 {
		t.Fatalf("%s: shape %v", name, shape)
	}
	return Planar{C: shape[1], H: shape[2], W: shape[3], Pix: f}
}

func comparePlanar(t *testing.T, what string, got, want Planar) {
	t.Helper()
	if got.C != want.C || got.H != want.H || got.W != want.W {
		t.Fatalf("%s: shape %dx%dx%d, want %dx%dx%d", what, got.C, got.H, got.W, want.C, want.H, want.W)
	}
	compare(t, what, got.Pix, want.Pix)
}

func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, 0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > refTol {
		t.Fatalf("%s: max |diff| %.3g at %d (got %v, want %v)", what, worst, at, got[at], want[at])
	}
	t.Logf("%s: max |diff| %.3g over %d values", what, worst, len(got))
}

func loadTestModel(t *testing.T, be tensor.Backend, name string) *Model {
	t.Helper()
	return loadTestFile(t, be, name+".safetensors")
}

func loadTestFile(t *testing.T, be tensor.Backend, file string) *Model {
	t.Helper()
	m, err := LoadFile(filepath.Join("testdata", file), be)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestReferenceModels(t *testing.T) {
	be := newBackend(t)
	ref := openRef(t)
	cases := []struct {
		model string
		file  string
		want  Config
	}{
		{"esrgan_x4_old", "esrgan_x4_old.safetensors", Config{Naming: NamingESRGAN, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 6, Growth: 3, Blocks: 1, Upsamples: 2, Shuffle: 1, Scale: 4}},
		{"realesrgan_x2_new", "realesrgan_x2_new.safetensors", Config{Naming: NamingBasicSR, NetInChannels: 12, InChannels: 3, OutChannels: 3, Features: 6, Growth: 3, Blocks: 2, Upsamples: 2, Shuffle: 2, Scale: 2}},
		{"realesrgan_x1_new", "realesrgan_x1_new.safetensors", Config{Naming: NamingBasicSR, NetInChannels: 48, InChannels: 3, OutChannels: 3, Features: 6, Growth: 3, Blocks: 1, Upsamples: 2, Shuffle: 4, Scale: 1}},
		// The same weights as torch.save pickles: a plain state dict, and one wrapped in params_ema.
		{"esrgan_x4_old", "esrgan_x4_old.pth", Config{Naming: NamingESRGAN, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 6, Growth: 3, Blocks: 1, Upsamples: 2, Shuffle: 1, Scale: 4}},
		{"realesrgan_x1_new", "realesrgan_x1_new_ema.pth", Config{Naming: NamingBasicSR, NetInChannels: 48, InChannels: 3, OutChannels: 3, Features: 6, Growth: 3, Blocks: 1, Upsamples: 2, Shuffle: 4, Scale: 1}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m := loadTestFile(t, be, c.file)
			if m.Config() != c.want {
				t.Fatalf("config %+v, want %+v", m.Config(), c.want)
			}
			ctx := context.Background()
			got, err := m.Forward(ctx, ref.planar(t, c.model+".forward.in"))
			if err != nil {
				t.Fatal(err)
			}
			comparePlanar(t, "forward", got, ref.planar(t, c.model+".forward.out"))
			got, err = m.Call(ctx, ref.planar(t, c.model+".call.in"))
			if err != nil {
				t.Fatal(err)
			}
			comparePlanar(t, "descriptor call (padded 7x5)", got, ref.planar(t, c.model+".call.out"))
		})
	}
}

// TestReferenceTiled runs ImageUpscaleWithModel's computation (tiles smaller than the image,
// batches) against ComfyUI's tiled_scale over the torch model.
func TestReferenceTiled(t *testing.T) {
	be := newBackend(t)
	ref := openRef(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]struct {
		Model   string `json:"model"`
		Tile    int    `json:"tile"`
		Overlap int    `json:"overlap"`
		Scale   int    `json:"scale"`
		Steps   int    `json:"steps"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta) != 3 {
		t.Fatalf("ref.json has %d cases, want 3", len(meta))
	}
	for name, c := range meta {
		t.Run(name, func(t *testing.T) {
			m := loadTestModel(t, be, c.Model)
			if m.Scale() != c.Scale {
				t.Fatalf("scale %d, want %d", m.Scale(), c.Scale)
			}
			shape, in := ref.tensor(t, name+".in")
			b, ch, h, w := shape[0], shape[1], shape[2], shape[3]
			img := Image{B: b, H: h, W: w, C: ch, Pix: make([]float32, len(in))}
			for bi := range b {
				for c := range ch {
					for i := range h * w {
						img.Pix[(bi*h*w+i)*ch+c] = in[(bi*ch+c)*h*w+i]
					}
				}
			}
			var calls, lastTotal int
			out, err := m.Upscale(context.Background(), img, Options{Tile: c.Tile, Overlap: c.Overlap,
				Progress: func(done, total int) { calls++; lastTotal = total }})
			if err != nil {
				t.Fatal(err)
			}
			if calls != c.Steps || lastTotal != c.Steps {
				t.Fatalf("progress: %d calls, total %d; ComfyUI's get_tiled_scale_steps gives %d", calls, lastTotal, c.Steps)
			}
			wshape, want := ref.tensor(t, name+".out")
			if out.B != wshape[0] || out.C != wshape[1] || out.H != wshape[2] || out.W != wshape[3] {
				t.Fatalf("output %dx%dx%dx%d, want %v", out.B, out.H, out.W, out.C, wshape)
			}
			got := make([]float32, len(out.Pix))
			for bi := range out.B {
				for c := range out.C {
					for i := range out.H * out.W {
						got[(bi*out.C+c)*out.H*out.W+i] = out.Pix[(bi*out.H*out.W+i)*out.C+c]
					}
				}
			}
			compare(t, "tiled upscale", got, want)
		})
	}
}
