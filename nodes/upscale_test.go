package nodes

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// upscaleTestdata is models/upscale's reference data (testdata/gen.py there: tiny RRDBNets in
// torch and spandrel's descriptor call on a 7x5 image).
var upscaleTestdata = filepath.Join("..", "models", "upscale", "testdata")

// upscaleEnv puts the tiny models into a temporary models/upscale_models folder.
func upscaleEnv(t *testing.T) Env {
	t.Helper()
	env := tempEnv(t)
	dir := filepath.Join(env.ModelsDir, "upscale_models", "sub")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ src, dst string }{
		{"esrgan_x4_old.safetensors", "esrgan_x4_old.safetensors"},
		{"realesrgan_x2_new.safetensors", "sub/realesrgan_x2_new.safetensors"},
		{"esrgan_x4_old.pth", "esrgan_x4_old.pth"},
		{"ref.safetensors", "not_an_upscaler.safetensors"},
	} {
		data, err := os.ReadFile(filepath.Join(upscaleTestdata, f.src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(env.ModelsDir, "upscale_models", f.dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// refPlanes reads a [1, C, H, W] reference tensor as an IMAGE [1, H, W, C].
func refImage(t *testing.T, name string) *Image {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(upscaleTestdata, "ref.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Info(name)
	if !ok || len(info.Shape) != 4 || info.Shape[0] != 1 {
		t.Fatalf("reference %s: %v", name, info.Shape)
	}
	data, err := f.Data(name)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tensor.FromBytes(data, tensor.F32, info.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	planes, err := ts.ToFloat32()
	if err != nil {
		t.Fatal(err)
	}
	c, h, w := info.Shape[1], info.Shape[2], info.Shape[3]
	im := NewImage(1, h, w, c)
	for ch := range c {
		for i := range h * w {
			im.Pix[i*c+ch] = planes[ch*h*w+i]
		}
	}
	return im
}

func loadUpscaler(t *testing.T, env Env, name string) *UpscaleModel {
	t.Helper()
	in := NewInputs()
	in.Set("model_name", name)
	u := exec(t, "UpscaleModelLoader", in, env).Values[0].(*UpscaleModel)
	u.Retain()
	t.Cleanup(u.Release)
	return u
}

type progressRuntime struct {
	testRuntime
	calls [][2]int
	stop  error
}

func (r *progressRuntime) Progress(v, m int) error {
	r.calls = append(r.calls, [2]int{v, m})
	return r.stop
}

func TestUpscaleModelNodes(t *testing.T) {
	env := upscaleEnv(t)
	spec, _ := upscaleModelLoader{}.Schema().Input("model_name")
	want := []string{"esrgan_x4_old.pth", "esrgan_x4_old.safetensors", "not_an_upscaler.safetensors", "sub/realesrgan_x2_new.safetensors"}
	if got := spec.ComboOptions(env); !slices.Equal(got, want) {
		t.Fatalf("model_name options %v, want %v", got, want)
	}
	cases := []struct {
		file, model string
		scale       int
	}{
		{"esrgan_x4_old.safetensors", "esrgan_x4_old", 4},
		{"esrgan_x4_old.pth", "esrgan_x4_old", 4},
		{"sub/realesrgan_x2_new.safetensors", "realesrgan_x2_new", 2},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			u := loadUpscaler(t, env, c.file)
			if u.Model().Scale() != c.scale {
				t.Fatalf("scale %d, want %d", u.Model().Scale(), c.scale)
			}
			// The whole 7x5 image is one tile: the node's result is the descriptor call's.
			in := NewInputs()
			in.Set("upscale_model", u)
			in.Set("image", refImage(t, c.model+".call.in"))
			rt := &progressRuntime{testRuntime: testRuntime{env}}
			out, err := imageUpscaleWithModel{}.Execute(context.Background(), in, rt)
			if err != nil {
				t.Fatal(err)
			}
			got := out.Values[0].(*Image)
			want := refImage(t, c.model+".call.out")
			if got.B != 1 || got.H != want.H || got.W != want.W || got.C != 3 {
				t.Fatalf("output %dx%dx%dx%d, want 1x%dx%dx3", got.B, got.H, got.W, got.C, want.H, want.W)
			}
			worst := 0.0
			for i := range got.Pix {
				worst = max(worst, math.Abs(float64(got.Pix[i]-want.Pix[i])))
			}
			if worst > 1e-5 {
				t.Fatalf("max |diff| %.3g against torch", worst)
			}
			if !slices.Equal(rt.calls, [][2]int{{1, 1}}) {
				t.Fatalf("progress %v, want one tile of one", rt.calls)
			}
		})
	}
}

func TestImageUpscaleWithModelTiles(t *testing.T) {
	env := upscaleEnv(t)
	u := loadUpscaler(t, env, "esrgan_x4_old.safetensors")
	// 600x40 with tiles of 512 and overlap 32: two tiles per image, progress out of 4.
	im := NewImage(2, 40, 600, 3)
	for i := range im.Pix {
		im.Pix[i] = float32(i%97) / 97
	}
	in := NewInputs()
	in.Set("upscale_model", u)
	in.Set("image", im)
	rt := &progressRuntime{testRuntime: testRuntime{env}}
	out, err := imageUpscaleWithModel{}.Execute(context.Background(), in, rt)
	if err != nil {
		t.Fatal(err)
	}
	got := out.Values[0].(*Image)
	if got.B != 2 || got.H != 160 || got.W != 2400 || got.C != 3 {
		t.Fatalf("output %dx%dx%dx%d", got.B, got.H, got.W, got.C)
	}
	if want := [][2]int{{1, 4}, {2, 4}, {3, 4}, {4, 4}}; !slices.Equal(rt.calls, want) {
		t.Fatalf("progress %v, want %v", rt.calls, want)
	}
	// An interrupt reported through Progress stops the node with that error.
	stop := errors.New("interrupted")
	rt = &progressRuntime{testRuntime: testRuntime{env}, stop: stop}
	if _, err := (imageUpscaleWithModel{}).Execute(context.Background(), in, rt); !errors.Is(err, stop) {
		t.Fatalf("interrupted: %v", err)
	}
	if len(rt.calls) != 1 {
		t.Fatalf("%d tiles ran after the interrupt", len(rt.calls)-1)
	}
}

func TestUpscaleNodeErrors(t *testing.T) {
	env := upscaleEnv(t)
	loaderCases := []struct {
		name, wantType, wantMsg string
	}{
		{"missing.safetensors", "FileNotFoundError", "not found"},
		{"../esrgan_x4_old.safetensors", "FileNotFoundError", "leaves"},
		{"not_an_upscaler.safetensors", "ValueError", "not an ESRGAN"},
		{"ref.pth", "FileNotFoundError", "not found"},
	}
	for _, c := range loaderCases {
		t.Run(c.name, func(t *testing.T) {
			in := NewInputs()
			in.Set("model_name", c.name)
			_, err := upscaleModelLoader{}.Execute(context.Background(), in, testRuntime{env})
			var ne *Error
			if !errors.As(err, &ne) || ne.Type != c.wantType || !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err %v, want %s containing %q", err, c.wantType, c.wantMsg)
			}
		})
	}
	u := loadUpscaler(t, env, "esrgan_x4_old.safetensors")
	runCases := []struct {
		name     string
		model    any
		image    any
		wantType string
	}{
		{"not a model", "x", NewImage(1, 4, 4, 3), "TypeError"},
		{"not an image", u, "x", "TypeError"},
		{"RGBA image", u, NewImage(1, 4, 4, 4), "RuntimeError"},
		{"too large", u, &Image{B: 1, H: 16384, W: 16384, C: 3}, "ValueError"},
	}
	for _, c := range runCases {
		t.Run(c.name, func(t *testing.T) {
			in := NewInputs()
			in.Set("upscale_model", c.model)
			in.Set("image", c.image)
			_, err := imageUpscaleWithModel{}.Execute(context.Background(), in, testRuntime{env})
			var ne *Error
			if !errors.As(err, &ne) || ne.Type != c.wantType {
				t.Fatalf("err %v, want %s", err, c.wantType)
			}
		})
	}
	if !isOutOfMemory(errors.New("cuda: alloc 1 GiB: out of memory")) || isOutOfMemory(errors.New("shape mismatch")) {
		t.Fatal("isOutOfMemory")
	}
}
