package nodes

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

type testRuntime struct{ env Env }

func (r testRuntime) Progress(int, int) error { return nil }
func (r testRuntime) Env() Env                { return r.env }
func (r testRuntime) NodeID() string          { return "1" }

func tempEnv(t *testing.T) Env {
	d := t.TempDir()
	env := Env{InputDir: filepath.Join(d, "input"), OutputDir: filepath.Join(d, "output"), TempDir: filepath.Join(d, "temp"), ModelsDir: filepath.Join(d, "models")}
	for _, p := range []string{env.InputDir, env.OutputDir, env.TempDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// TestObjectInfoGolden pins the /object_info JSON of every registered node.
func TestObjectInfoGolden(t *testing.T) {
	env := tempEnv(t)
	for _, name := range Default().Names() {
		t.Run(name, func(t *testing.T) {
			n, _ := Default().Get(name)
			got, err := ojson.MarshalPython(n.Schema().Info(env))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "object_info", name+".json")
			got = append(got, '\n')
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (new node? run go test ./nodes -run TestObjectInfoGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("object_info changed:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func intIn(v int64) *big.Int { return big.NewInt(v) }

func exec(t *testing.T, name string, in *Inputs, env Env) *Outputs {
	t.Helper()
	n, ok := Default().Get(name)
	if !ok {
		t.Fatalf("node %s not registered", name)
	}
	out, err := n.Execute(context.Background(), in, testRuntime{env})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func TestEmptyImageAndInvert(t *testing.T) {
	in := NewInputs()
	in.Set("width", intIn(3))
	in.Set("height", intIn(2))
	in.Set("batch_size", intIn(2))
	in.Set("color", intIn(0xFF8000))
	im := exec(t, "EmptyImage", in, Env{}).Values[0].(*Image)
	if im.B != 2 || im.H != 2 || im.W != 3 || im.C != 3 {
		t.Fatalf("shape %d %d %d %d", im.B, im.H, im.W, im.C)
	}
	if im.Pix[0] != 1 || im.Pix[1] != float32(128.0/255.0) || im.Pix[2] != 0 {
		t.Fatalf("color %v", im.Pix[:3])
	}
	inv := NewInputs()
	inv.Set("image", im)
	out := exec(t, "ImageInvert", inv, Env{}).Values[0].(*Image)
	if out.Pix[0] != 0 || out.Pix[2] != 1 {
		t.Fatalf("inverted %v", out.Pix[:3])
	}
}

func TestImageScaleSizes(t *testing.T) {
	src := NewImage(1, 40, 100, 3)
	cases := []struct {
		method       string
		w, h         int64
		crop         string
		wantW, wantH int
	}{
		{"bilinear", 50, 0, "disabled", 50, 20},
		{"area", 0, 10, "disabled", 25, 10},
		{"nearest-exact", 0, 0, "disabled", 100, 40},
		{"bicubic", 30, 30, "center", 30, 30},
		{"lanczos", 7, 3, "disabled", 7, 3},
	}
	for _, c := range cases {
		in := NewInputs()
		in.Set("image", src)
		in.Set("upscale_method", c.method)
		in.Set("width", intIn(c.w))
		in.Set("height", intIn(c.h))
		in.Set("crop", c.crop)
		im := exec(t, "ImageScale", in, Env{}).Values[0].(*Image)
		if im.W != c.wantW || im.H != c.wantH {
			t.Errorf("%s %dx%d: got %dx%d want %dx%d", c.method, c.w, c.h, im.W, im.H, c.wantW, c.wantH)
		}
	}
	by := NewInputs()
	by.Set("image", src)
	by.Set("upscale_method", "nearest-exact")
	by.Set("scale_by", 0.25)
	if im := exec(t, "ImageScaleBy", by, Env{}).Values[0].(*Image); im.W != 25 || im.H != 10 {
		t.Fatalf("scale_by 0.25: %dx%d", im.W, im.H)
	}
}

func TestCenterCropKeepsMiddle(t *testing.T) {
	// A 1x4 row [0, 1, 2, 3] center-cropped to a 1x2 aspect keeps [1, 2].
	src := &Image{B: 1, H: 1, W: 4, C: 1, Pix: []float32{0, 1, 2, 3}}
	out, err := src.Resize(2, 1, "nearest-exact", true)
	if err != nil {
		t.Fatal(err)
	}
	if out.Pix[0] != 1 || out.Pix[1] != 2 {
		t.Fatalf("got %v", out.Pix)
	}
}

func TestRoundHalfEven(t *testing.T) {
	for in, want := range map[float64]float64{0.5: 0, 1.5: 2, 2.5: 2, 2.4: 2, 2.6: 3, -0.5: 0, -1.5: -2, 7: 7} {
		if got := roundHalfEven(in); got != want {
			t.Errorf("roundHalfEven(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestSaveImageWritesPNGWithMetadata(t *testing.T) {
	env := tempEnv(t)
	im := NewImage(2, 3, 4, 3)
	for i := range im.Pix {
		im.Pix[i] = float32(i%7) / 6
	}
	im.Pix[0] = 1.7  // clipped to 255
	im.Pix[1] = -0.2 // clipped to 0
	prompt := ojson.NewObject().Set("1", ojson.NewObject().Set("class_type", "EmptyImage"))
	extra := ojson.NewObject().Set("workflow", ojson.NewObject().Set("nodes", []any{}).Set("note", "é"))
	in := NewInputs()
	in.Set("images", im)
	in.Set("filename_prefix", "sub/dir/pic_%width%x%height%")
	in.Prompt, in.ExtraPNGInfo = prompt, extra
	out := exec(t, "SaveImage", in, env)
	ui, _ := ojson.Marshal(out.UI)
	want := `{"images":[{"filename":"pic_4x3_00001_.png","subfolder":"sub/dir","type":"output"},{"filename":"pic_4x3_00002_.png","subfolder":"sub/dir","type":"output"}]}`
	if string(ui) != want {
		t.Fatalf("ui %s\nwant %s", ui, want)
	}
	path := filepath.Join(env.OutputDir, "sub", "dir", "pic_4x3_00001_.png")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("saved image mode %v, %v; want 0644", info.Mode(), err)
	}
	texts, err := ReadPNGText(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if texts["prompt"] != `{"1": {"class_type": "EmptyImage"}}` || texts["workflow"] != `{"nodes": [], "note": "\u00e9"}` {
		t.Fatalf("text chunks %q", texts)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 4 || img.Bounds().Dy() != 3 {
		t.Fatalf("size %v", img.Bounds())
	}
	r, g, b, _ := img.At(0, 0).RGBA()
	if r>>8 != 255 || g>>8 != 0 || b>>8 != uint32(float32(2)/6*255) {
		t.Fatalf("pixel (0,0) = %d %d %d", r>>8, g>>8, b>>8)
	}
	// The counter continues after existing files.
	out = exec(t, "SaveImage", in, env)
	ui, _ = ojson.Marshal(out.UI)
	if !strings.Contains(string(ui), "pic_4x3_00003_.png") {
		t.Fatalf("counter did not continue: %s", ui)
	}
}

func TestSaveImageRefusesEscapingPrefix(t *testing.T) {
	env := tempEnv(t)
	n, _ := Default().Get("SaveImage")
	for _, prefix := range []string{"../evil", "a/../../evil", "/etc/evil", "..", "x/.."} {
		in := NewInputs()
		in.Set("images", NewImage(1, 2, 2, 3))
		in.Set("filename_prefix", prefix)
		if _, err := n.Execute(context.Background(), in, testRuntime{env}); err == nil {
			t.Errorf("prefix %q: want error", prefix)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(env.OutputDir))
	for _, e := range entries {
		if e.Name() != "input" && e.Name() != "output" && e.Name() != "temp" {
			t.Errorf("file written outside the output folder: %s", e.Name())
		}
	}
}

func TestPreviewImageGoesToTemp(t *testing.T) {
	env := tempEnv(t)
	in := NewInputs()
	in.Set("images", NewImage(1, 2, 2, 3))
	out := exec(t, "PreviewImage", in, env)
	imgs, _ := out.UI.Get("images")
	entry := imgs.([]any)[0].(*ojson.Object)
	name, _ := entry.Get("filename")
	typ, _ := entry.Get("type")
	if typ != "temp" || !strings.HasPrefix(name.(string), "ComfyUI_temp_") {
		t.Fatalf("preview entry %v %v", name, typ)
	}
	if _, err := os.Stat(filepath.Join(env.TempDir, name.(string))); err != nil {
		t.Fatal(err)
	}
}

func TestLoadImageRGBAMask(t *testing.T) {
	env := tempEnv(t)
	src := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	src.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 255})
	src.SetNRGBA(1, 0, color.NRGBA{0, 51, 0, 0})
	f, err := os.Create(filepath.Join(env.InputDir, "a.png"))
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, src)
	f.Close()
	if got := ListInputImages(env); len(got) != 1 || got[0] != "a.png" {
		t.Fatalf("ListInputImages = %v", got)
	}
	in := NewInputs()
	in.Set("image", "a.png")
	if err := (loadImage{}).ValidateInputs(in, env); err != nil {
		t.Fatal(err)
	}
	fp1, err := (loadImage{}).Fingerprint(in, env)
	if err != nil || len(fp1) != 64 {
		t.Fatalf("fingerprint %q %v", fp1, err)
	}
	out := exec(t, "LoadImage", in, env)
	im, mask := out.Values[0].(*Image), out.Values[1].(*Mask)
	if im.W != 2 || im.H != 1 || im.Pix[0] != 1 || im.Pix[4] != float32(51)/255 {
		t.Fatalf("image %v", im.Pix)
	}
	if mask.W != 2 || mask.Pix[0] != 0 || mask.Pix[1] != 1 {
		t.Fatalf("mask %v", mask.Pix)
	}
	bad := NewInputs()
	bad.Set("image", "../outside.png")
	if err := (loadImage{}).ValidateInputs(bad, env); err == nil {
		t.Fatal("path escape accepted")
	}
}

func TestSavePathCounterRules(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ComfyUI_00007_.png", "ComfyUI_00002_.png", "comfyui_00050_.png", "ComfyUI_x_.png", "Other_00099_.png"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	st, err := SavePath("ComfyUI", dir, 1, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counter != 8 || st.Subfolder != "" || st.Filename != "ComfyUI" {
		t.Fatalf("%+v", st)
	}
}

func FuzzReadPNGText(f *testing.F) {
	var buf bytes.Buffer
	EncodePNG(&buf, image.NewGray(image.Rect(0, 0, 1, 1)), png.BestSpeed, []PNGText{{"prompt", "{}"}})
	f.Add(buf.Bytes())
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadPNGText(bytes.NewReader(data))
	})
}

func TestEmptyLatents(t *testing.T) {
	for _, c := range []struct {
		node     string
		channels int
	}{{"EmptyLatentImage", 4}, {"EmptySD3LatentImage", 16}} {
		in := NewInputs()
		in.Set("width", intIn(1024))
		in.Set("height", intIn(520))
		in.Set("batch_size", intIn(2))
		l := exec(t, c.node, in, Env{}).Values[0].(*Latent)
		if l.B != 2 || l.C != c.channels || l.H != 65 || l.W != 128 || len(l.Samples) != 2*c.channels*65*128 || !l.IsAllZero() || l.DownscaleRatio != 8 {
			t.Errorf("%s: %+v", c.node, *l)
		}
	}
}

func TestImageScaleToTotalPixels(t *testing.T) {
	in := NewInputs()
	in.Set("image", NewImage(1, 300, 400, 3))
	in.Set("upscale_method", "area")
	in.Set("megapixels", 0.25)
	in.Set("resolution_steps", intIn(8))
	im := exec(t, "ImageScaleToTotalPixels", in, Env{}).Values[0].(*Image)
	// sqrt(262144/120000) = 1.478: 591.2 → 74·8 = 592 wide, 443.4 → 55·8 = 440 high.
	if im.W != 592 || im.H != 440 {
		t.Fatalf("got %dx%d", im.W, im.H)
	}
}

func TestListModelsAndModelPath(t *testing.T) {
	env := tempEnv(t)
	for _, p := range []string{"diffusion_models/z.safetensors", "unet/old.sft", "diffusion_models/sub/b.safetensors",
		"diffusion_models/readme.txt", "diffusion_models/.hidden/x.safetensors", "text_encoders/qwen.safetensors"} {
		full := filepath.Join(env.ModelsDir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte("x"), 0o644)
	}
	got := strings.Join(ListModels(env, "diffusion_models"), ",")
	if got != "old.sft,sub/b.safetensors,z.safetensors" {
		t.Fatalf("ListModels = %s", got)
	}
	if p, err := ModelPath(env, "diffusion_models", "sub/b.safetensors"); err != nil || !strings.HasSuffix(p, filepath.FromSlash("diffusion_models/sub/b.safetensors")) {
		t.Fatalf("ModelPath = %q, %v", p, err)
	}
	for _, bad := range []string{"../text_encoders/qwen.safetensors", "/etc/passwd", "", "missing.safetensors"} {
		if _, err := ModelPath(env, "diffusion_models", bad); err == nil {
			t.Errorf("ModelPath(%q): want error", bad)
		}
	}
}
