package vae_test

import (
	"bufio"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
)

func TestLoadErrors(t *testing.T) {
	be := newBackend(t)
	base := randomWeights(t, ldmSpecs(tinyConfig()), 1, tensor.F32)
	edit := func(f func(m map[string]safetensors.Entry)) map[string]safetensors.Entry {
		m := maps.Clone(base)
		f(m)
		return m
	}
	cases := []struct {
		name    string
		entries map[string]safetensors.Entry
		sidecar map[string]any
		opt     vae.Options
		want    []string // substrings of the error; nil: success
	}{
		{name: "valid", entries: base, sidecar: tinySidecar},
		{
			name:    "missing tensor",
			entries: edit(func(m map[string]safetensors.Entry) { delete(m, "decoder.up.0.block.1.conv2.weight") }),
			sidecar: tinySidecar,
			want:    []string{"decoder.up.0.block.1.conv2.weight", "missing"},
		},
		{
			name: "wrong shape",
			entries: edit(func(m map[string]safetensors.Entry) {
				e := m["encoder.mid.attn_1.q.weight"]
				e.Shape = []int{16, 4, 2, 2}
				m["encoder.mid.attn_1.q.weight"] = e
			}),
			sidecar: tinySidecar,
			want:    []string{"encoder.mid.attn_1.q.weight", "shape [16 4 2 2]"},
		},
		{
			name: "integer weights",
			entries: edit(func(m map[string]safetensors.Entry) {
				e := m["decoder.conv_out.bias"]
				e.DType = safetensors.I32
				m["decoder.conv_out.bias"] = e
			}),
			sidecar: tinySidecar,
			want:    []string{"decoder.conv_out.bias", "dtype I32"},
		},
		{
			name: "unexpected tensor",
			entries: edit(func(m map[string]safetensors.Entry) {
				m["decoder.up.0.block.7.conv1.weight"] = m["decoder.up.0.block.0.conv1.weight"]
			}),
			sidecar: tinySidecar,
			want:    []string{"decoder.up.0.block.7.conv1.weight", "no place for"},
		},
		{
			name:    "sidecar contradicts the shapes",
			entries: base,
			sidecar: map[string]any{"groupnorm_groups": 4, "num_res_blocks": 2},
			want:    []string{"contradicts the shapes (num_res_blocks: sidecar 2, shapes 1)", "encoder.down.0.block.1.norm1.weight: missing"},
		},
		{
			name:    "groups do not divide the channels",
			entries: base,
			sidecar: map[string]any{"groupnorm_groups": 3},
			want:    []string{"not a multiple of 3 groups"},
		},
		{
			name:    "default 32 groups do not fit a tiny model",
			entries: base,
			want:    []string{"not a multiple of 32 groups"},
		},
		{
			name:    "not a VAE",
			entries: map[string]safetensors.Entry{"foo.weight": base["decoder.conv_out.bias"]},
			want:    []string{"not a Flux VAE"},
		},
		{
			name: "4-channel latent",
			entries: func() map[string]safetensors.Entry {
				c := tinyConfig()
				c.ZChannels = 4
				return randomWeights(t, ldmSpecs(c), 2, tensor.F32)
			}(),
			sidecar: tinySidecar,
			want:    []string{"not a Flux VAE", "4 latent channels"},
		},
		{
			name:    "float16 compute",
			entries: base,
			sidecar: tinySidecar,
			opt:     vae.Options{Compute: tensor.F16},
			want:    []string{"float16"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeCheckpoint(t, t.TempDir(), "ckpt", c.entries, c.sidecar)
			v, err := vae.Load(path, be, c.opt)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				defer v.Close()
				if v.Downscale() != 4 || v.LatentChannels() != 16 || !v.HasEncoder() || !v.HasDecoder() {
					t.Errorf("downscale %d, latent channels %d, encoder %v, decoder %v", v.Downscale(), v.LatentChannels(), v.HasEncoder(), v.HasDecoder())
				}
				return
			}
			if err == nil {
				v.Close()
				t.Fatalf("loaded; want an error with %q", c.want)
			}
			t.Logf("error: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadVariants loads the same weights under other namings and dtypes and checks that they
// decode the same latent alike.
func TestLoadVariants(t *testing.T) {
	be := newBackend(t)
	cfg := tinyConfig()
	base := randomWeights(t, ldmSpecs(cfg), 1, tensor.F32)
	ctx := context.Background()
	lat := randomLatent(1, 16, 4, 6, 9)
	decode := func(t *testing.T, path string, opt vae.Options) *vae.Image {
		t.Helper()
		v, err := vae.Load(path, be, opt)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		img, err := v.Decode(ctx, lat)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	dir := t.TempDir()
	ref := decode(t, writeCheckpoint(t, dir, "ref", base, tinySidecar), vae.Options{})

	prefixed := map[string]safetensors.Entry{}
	for k, e := range base {
		prefixed["first_stage_model."+k] = e
	}
	// A combined checkpoint also holds other components, which the loader must ignore.
	prefixed["model.diffusion_model.x.weight"] = base["decoder.conv_out.bias"]
	if d := maxDiff(decode(t, writeCheckpoint(t, dir, "prefixed", prefixed, tinySidecar), vae.Options{}).Pix, ref.Pix); d != 0 {
		t.Errorf("first_stage_model. prefix: differs by %g", d)
	}

	decOnly := map[string]safetensors.Entry{}
	for k, e := range base {
		if strings.HasPrefix(k, "decoder.") {
			decOnly[k] = e
		}
	}
	path := writeCheckpoint(t, dir, "deconly", decOnly, tinySidecar)
	if d := maxDiff(decode(t, path, vae.Options{}).Pix, ref.Pix); d != 0 {
		t.Errorf("decoder-only file: differs by %g", d)
	}
	v, err := vae.Load(path, be, vae.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v.HasEncoder() {
		t.Error("decoder-only file has an encoder")
	}
	if _, err := v.Encode(ctx, randomImage(1, 16, 16, 3, 1)); err == nil || !strings.Contains(err.Error(), "no encoder") {
		t.Errorf("Encode on a decoder-only VAE: %v", err)
	}
	v.Close()

	// BF16- and F16-stored weights are read in their dtype; compute stays float32.
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		w := randomWeights(t, ldmSpecs(cfg), 1, dt)
		img := decode(t, writeCheckpoint(t, dir, "w"+dt.String(), w, tinySidecar), vae.Options{})
		if d := maxDiff(img.Pix, ref.Pix); d > 0.05 || d == 0 {
			t.Errorf("%v weights: differ from F32 weights by %g (want rounding-sized, non-zero)", dt, d)
		}
	}

	// BF16 compute: close to float32, never NaN.
	img := decode(t, writeCheckpoint(t, dir, "bf16c", base, tinySidecar), vae.Options{Compute: tensor.BF16})
	if d := maxDiff(img.Pix, ref.Pix); d > 0.05 || d == 0 {
		t.Errorf("BF16 compute differs from F32 by %g (want rounding-sized, non-zero)", d)
	}
}

// TestLevelAttention loads an autoencoder with attention blocks inside a resolution level
// (attn_resolutions, which the Flux VAE does not use) and checks that they take part.
func TestLevelAttention(t *testing.T) {
	be := newBackend(t)
	cfg := tinyConfig()
	cfg.AttnResolutions = []int{cfg.Resolution >> 1}
	w := randomWeights(t, ldmSpecs(cfg), 1, tensor.F32)
	if _, ok := w["decoder.up.1.attn.1.q.weight"]; !ok {
		t.Fatal("spec lacks the level attention")
	}
	dir := t.TempDir()
	ctx := context.Background()
	lat := randomLatent(1, 16, 3, 4, 2)
	run := func(name string, w map[string]safetensors.Entry) (*vae.Image, *vae.Latent) {
		v, err := vae.Load(writeCheckpoint(t, dir, name, w, tinySidecar), be, vae.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if got := v.Config().AttnResolutions; !slices.Equal(got, cfg.AttnResolutions) {
			t.Errorf("detected attn_resolutions %v, want %v", got, cfg.AttnResolutions)
		}
		img, err := v.Decode(ctx, lat)
		if err != nil {
			t.Fatal(err)
		}
		l, err := v.Encode(ctx, randomImage(1, 16, 12, 3, 3))
		if err != nil {
			t.Fatal(err)
		}
		return img, l
	}
	img, l := run("a", w)
	w2 := maps.Clone(w)
	for _, k := range []string{"decoder.up.1.attn.0.proj_out.bias", "encoder.down.1.attn.0.proj_out.bias"} {
		w2[k] = randomWeights(t, []tensorSpec{{k, w[k].Shape, 'n'}}, 9, tensor.F32)[k]
	}
	img2, l2 := run("b", w2)
	if maxDiff(img.Pix, img2.Pix) == 0 || maxDiff(l.Data, l2.Data) == 0 {
		t.Error("changing the level attention weights changes nothing")
	}
}

// TestDiffusersLayout renames an LDM checkpoint with the published key table
// (golden keys/vae_keys.tsv: ae.safetensors name → diffusers name) and loads it.
func TestDiffusersLayout(t *testing.T) {
	dir, err := golden.Dir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "keys", "vae_keys.tsv"))
	if errors.Is(err, os.ErrNotExist) {
		t.Fatal("no keys/vae_keys.tsv in the golden directory")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) < 3 {
			t.Fatalf("bad line %q", line)
		}
		names[cols[0]] = strings.Fields(cols[2])[0]
	}
	// The key table describes ch_mult [1,2,4,4] with two resnets per level: same structure,
	// narrower channels.
	cfg := tinyConfig()
	cfg.ChMult = []int{1, 2, 4, 4}
	cfg.NumResBlocks = 2
	ldm := randomWeights(t, ldmSpecs(cfg), 4, tensor.F32)
	diff := map[string]safetensors.Entry{}
	for k, e := range ldm {
		d, ok := names[k]
		if !ok {
			t.Fatalf("%s is not in the key table", k)
		}
		if strings.Contains(d, "attentions") && strings.HasSuffix(d, ".weight") && len(e.Shape) == 4 {
			e.Shape = e.Shape[:2] // diffusers stores the 1x1 convs as Linear weights
		}
		diff[d] = e
	}
	tmp := t.TempDir()
	be := newBackend(t)
	ctx := context.Background()
	lat := randomLatent(1, 16, 2, 3, 5)
	im := randomImage(1, 16, 24, 3, 6)
	var outs [2]*vae.Image
	var lats [2]*vae.Latent
	for i, w := range []map[string]safetensors.Entry{ldm, diff} {
		v, err := vae.Load(writeCheckpoint(t, tmp, []string{"ldm", "diffusers"}[i], w, tinySidecar), be, vae.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if outs[i], err = v.Decode(ctx, lat); err != nil {
			t.Fatal(err)
		}
		if lats[i], err = v.Encode(ctx, im); err != nil {
			t.Fatal(err)
		}
		if got := v.Config().Layout; got != []string{"ldm", "diffusers"}[i] {
			t.Errorf("layout %q", got)
		}
		v.Close()
	}
	if d := maxDiff(outs[0].Pix, outs[1].Pix); d != 0 {
		t.Errorf("diffusers decode differs by %g", d)
	}
	if d := maxDiff(lats[0].Data, lats[1].Data); d != 0 {
		t.Errorf("diffusers encode differs by %g", d)
	}
}
