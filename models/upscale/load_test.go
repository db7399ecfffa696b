package upscale

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// shapesFor builds the state-dict shapes of an RRDBNet in a naming.
func shapesFor(naming Naming, in, out, nf, gc, nb, ups int) map[string][]int {
	ln := layerNames{dense: make([][3][5]string, nb)}
	for b := range nb {
		for r := range 3 {
			for c := range 5 {
				switch naming {
				case NamingESRGAN:
					ln.dense[b][r][c] = fmt.Sprintf("model.1.sub.%d.RDB%d.conv%d.0", b, r+1, c+1)
				case NamingBasicSR:
					ln.dense[b][r][c] = fmt.Sprintf("body.%d.rdb%d.conv%d", b, r+1, c+1)
				case NamingBSRGAN:
					ln.dense[b][r][c] = fmt.Sprintf("RRDB_trunk.%d.RDB%d.conv%d", b, r+1, c+1)
				}
			}
		}
	}
	switch naming {
	case NamingESRGAN:
		ln.first, ln.trunk = "model.0", fmt.Sprintf("model.1.sub.%d", nb)
		for u := range ups {
			ln.ups = append(ln.ups, fmt.Sprintf("model.%d", 3*(u+1)))
		}
		ln.hr, ln.last = fmt.Sprintf("model.%d", 3*ups+2), fmt.Sprintf("model.%d", 3*ups+4)
	case NamingBasicSR:
		ln.first, ln.trunk, ln.hr, ln.last = "conv_first", "conv_body", "conv_hr", "conv_last"
		for u := range ups {
			ln.ups = append(ln.ups, fmt.Sprintf("conv_up%d", u+1))
		}
	case NamingBSRGAN:
		ln.first, ln.trunk, ln.hr, ln.last = "conv_first", "trunk_conv", "HRconv", "conv_last"
		for u := range ups {
			ln.ups = append(ln.ups, fmt.Sprintf("upconv%d", u+1))
		}
	}
	return expected(Config{NetInChannels: in, OutChannels: out, Features: nf, Growth: gc}, ln)
}

func TestDetect(t *testing.T) {
	prefixed := func(p string, m map[string][]int) map[string][]int {
		out := map[string][]int{}
		for k, v := range m {
			out[p+k] = v
		}
		return out
	}
	with := func(m map[string][]int, edit func(map[string][]int)) map[string][]int {
		c := maps.Clone(m)
		edit(c)
		return c
	}
	x4 := shapesFor(NamingESRGAN, 3, 3, 64, 32, 23, 2)
	cases := []struct {
		name    string
		shapes  map[string][]int
		want    Config
		wantErr string
	}{
		{"ESRGAN x4 23 blocks", x4,
			Config{Naming: NamingESRGAN, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 64, Growth: 32, Blocks: 23, Upsamples: 2, Shuffle: 1, Scale: 4}, ""},
		{"ESRGAN x1", shapesFor(NamingESRGAN, 3, 3, 32, 16, 2, 0),
			Config{Naming: NamingESRGAN, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 32, Growth: 16, Blocks: 2, Upsamples: 0, Shuffle: 1, Scale: 1}, ""},
		{"ESRGAN x8", shapesFor(NamingESRGAN, 3, 3, 64, 32, 1, 3),
			Config{Naming: NamingESRGAN, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 64, Growth: 32, Blocks: 1, Upsamples: 3, Shuffle: 1, Scale: 8}, ""},
		{"Real-ESRGAN x4plus", shapesFor(NamingBasicSR, 3, 3, 64, 32, 23, 2),
			Config{Naming: NamingBasicSR, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 64, Growth: 32, Blocks: 23, Upsamples: 2, Shuffle: 1, Scale: 4}, ""},
		{"Real-ESRGAN x4plus anime 6B", shapesFor(NamingBasicSR, 3, 3, 64, 32, 6, 2),
			Config{Naming: NamingBasicSR, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 64, Growth: 32, Blocks: 6, Upsamples: 2, Shuffle: 1, Scale: 4}, ""},
		{"Real-ESRGAN x2plus", shapesFor(NamingBasicSR, 12, 3, 64, 32, 23, 2),
			Config{Naming: NamingBasicSR, NetInChannels: 12, InChannels: 3, OutChannels: 3, Features: 64, Growth: 32, Blocks: 23, Upsamples: 2, Shuffle: 2, Scale: 2}, ""},
		{"unshuffle 4 x1", shapesFor(NamingBasicSR, 48, 3, 16, 8, 1, 2),
			Config{Naming: NamingBasicSR, NetInChannels: 48, InChannels: 3, OutChannels: 3, Features: 16, Growth: 8, Blocks: 1, Upsamples: 2, Shuffle: 4, Scale: 1}, ""},
		{"grey 1 channel", shapesFor(NamingBasicSR, 1, 1, 8, 4, 1, 1),
			Config{Naming: NamingBasicSR, NetInChannels: 1, InChannels: 1, OutChannels: 1, Features: 8, Growth: 4, Blocks: 1, Upsamples: 1, Shuffle: 1, Scale: 2}, ""},
		{"BSRGAN", shapesFor(NamingBSRGAN, 3, 3, 64, 32, 2, 2),
			Config{Naming: NamingBSRGAN, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 64, Growth: 32, Blocks: 2, Upsamples: 2, Shuffle: 1, Scale: 4}, ""},
		{"module. prefix", prefixed("module.", shapesFor(NamingBasicSR, 3, 3, 8, 4, 1, 2)),
			Config{Naming: NamingBasicSR, NetInChannels: 3, InChannels: 3, OutChannels: 3, Features: 8, Growth: 4, Blocks: 1, Upsamples: 2, Shuffle: 1, Scale: 4}, ""},
		{"empty", map[string][]int{}, Config{}, "not an ESRGAN"},
		{"other model", map[string][]int{"decoder.conv_in.weight": {512, 16, 3, 3}}, Config{}, "not an ESRGAN"},
		{"ESRGAN+", with(x4, func(m map[string][]int) { m["model.1.sub.0.RDB1.conv1x1.weight"] = []int{32, 64, 1, 1} }), Config{}, "ESRGAN+"},
		{"missing tensor", with(x4, func(m map[string][]int) { delete(m, "model.1.sub.5.RDB2.conv3.0.bias") }), Config{}, "missing tensor model.1.sub.5.RDB2.conv3.0.bias"},
		{"wrong shape", with(x4, func(m map[string][]int) { m["model.3.weight"] = []int{64, 64, 1, 1} }), Config{}, "tensor model.3.weight has shape [64 64 1 1], want [64 64 3 3]"},
		{"unexpected tensor", with(x4, func(m map[string][]int) { m["extra.weight"] = []int{1} }), Config{}, "unexpected tensor extra.weight"},
		{"scale 3 layout", with(x4, func(m map[string][]int) { m["model.11.weight"] = []int{3, 64, 3, 3} }), Config{}, "scale-3"},
		{"bad first rank", with(x4, func(m map[string][]int) { m["model.0.weight"] = []int{64} }), Config{}, "want [nf, in, 3, 3]"},
		{"too many upsamples", shapesFor(NamingBasicSR, 3, 3, 8, 4, 1, 5), Config{}, "not supported"},
		{"unshuffle without upsampling", shapesFor(NamingBasicSR, 12, 3, 8, 4, 1, 0), Config{}, "would downscale"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Detect(c.shapes)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
	if _, err := Detect(map[string][]int{"x": {1}}); !errors.Is(err, ErrNotESRGAN) {
		t.Fatalf("unrelated state dict: %v, want ErrNotESRGAN", err)
	}
}

func FuzzDetect(f *testing.F) {
	f.Add("model.0.weight", 64, 3, "model.1.sub.0.RDB1.conv1.0.weight", 32, 64, "model.4.weight")
	f.Add("conv_first.weight", 8, 12, "body.0.rdb1.conv1.weight", 4, 8, "conv_up1.weight")
	f.Add("conv_first.weight", 8, 3, "RRDB_trunk.0.RDB1.conv1.weight", 4, 8, "model.1.sub.99999999999999999999.x")
	f.Fuzz(func(t *testing.T, k1 string, a, b int, k2 string, c, d int, k3 string) {
		base := shapesFor(NamingESRGAN, 3, 3, 4, 2, 1, 1)
		base[k1] = []int{a, b, 3, 3}
		base[k2] = []int{c, d, 3, 3}
		base[k3] = []int{a, d}
		cfg, err := Detect(base)
		if err == nil && (cfg.Scale < 1 || cfg.Features < 1 || cfg.Blocks < 1) {
			t.Fatalf("accepted %+v", cfg)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	be := newBackend(t)
	good := func() map[string]safetensors.Entry {
		sd := map[string]safetensors.Entry{}
		for k, s := range shapesFor(NamingBasicSR, 3, 3, 4, 2, 1, 1) {
			n := 1
			for _, d := range s {
				n *= d
			}
			sd[k] = safetensors.Entry{DType: safetensors.F16, Shape: s, Data: make([]byte, 2*n)}
		}
		return sd
	}
	m, err := Load(good(), be)
	if err != nil {
		t.Fatalf("F16 weights: %v", err)
	}
	m.Close()
	cases := []struct {
		name string
		edit func(map[string]safetensors.Entry)
		want string
	}{
		{"integer weights", func(sd map[string]safetensors.Entry) {
			e := sd["conv_hr.bias"]
			e.DType = safetensors.I16
			sd["conv_hr.bias"] = e
		}, "not a floating-point weight type"},
		{"short data", func(sd map[string]safetensors.Entry) {
			e := sd["conv_last.weight"]
			e.Data = e.Data[:3]
			sd["conv_last.weight"] = e
		}, "conv_last.weight"},
		{"not esrgan", func(sd map[string]safetensors.Entry) { delete(sd, "conv_first.weight") }, "not an ESRGAN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sd := good()
			c.edit(sd)
			if _, err := Load(sd, be); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := LoadFile(filepath.Join("testdata", "ref.pth"), be); err == nil || !strings.Contains(err.Error(), "ref.pth") {
		t.Fatalf("missing .pth: %v", err)
	}
	if _, err := LoadFile(filepath.Join("testdata", "ref.json"), be); err == nil || !strings.Contains(err.Error(), "unsupported file type") {
		t.Fatalf("json: %v", err)
	}
	if _, err := LoadFile(filepath.Join("testdata", "missing.safetensors"), be); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestUploadDTypes(t *testing.T) {
	be := newBackend(t)
	want := []float32{1.5, -2.25}
	le := func(bits ...uint64) func(size int) []byte {
		return func(size int) []byte {
			var b []byte
			for _, v := range bits {
				for i := range size {
					b = append(b, byte(v>>(8*i)))
				}
			}
			return b
		}
	}
	cases := []struct {
		dt   safetensors.DType
		data []byte
	}{
		{safetensors.F32, le(uint64(math.Float32bits(1.5)), uint64(math.Float32bits(-2.25)))(4)},
		{safetensors.F64, le(math.Float64bits(1.5), math.Float64bits(-2.25))(8)},
		{safetensors.F16, le(0x3E00, 0xC080)(2)},
		{safetensors.BF16, le(0x3FC0, 0xC010)(2)},
	}
	for _, c := range cases {
		t.Run(string(c.dt), func(t *testing.T) {
			ts, err := upload(be, safetensors.Entry{DType: c.dt, Shape: []int{2}, Data: c.data})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, 2)
			if err := be.Read(got, ts); err != nil {
				t.Fatal(err)
			}
			be.Free(ts)
			if got[0] != want[0] || got[1] != want[1] {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}
