package vae_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// tinyConfig is a small configuration that exercises every structural feature: three levels,
// channel changes in both directions (nin shortcuts), GroupNorm groups of 2 channels.
func tinyConfig() vae.Config {
	return vae.Config{
		Ch: 8, ChMult: []int{1, 2, 2}, NumResBlocks: 1, ZChannels: 16, InChannels: 3, OutCh: 3,
		DoubleZ: true, AttnResolutions: []int{}, Resolution: 256, GroupNormGroups: 4, GroupNormEps: 1e-6,
	}
}

type tensorSpec struct {
	name  string
	shape []int
	kind  byte // 'w' conv/linear weight, 'b' bias, 'g' norm scale, 'n' norm shift
}

// ldmSpecs lists every tensor of an LDM-named autoencoder of configuration c (written from
// ComfyUI's Encoder/Decoder definitions, independently of the package's loader).
func ldmSpecs(c vae.Config) []tensorSpec {
	var s []tensorSpec
	conv := func(name string, cout, cin, k int) {
		s = append(s, tensorSpec{name + ".weight", []int{cout, cin, k, k}, 'w'}, tensorSpec{name + ".bias", []int{cout}, 'b'})
	}
	norm := func(name string, ch int) {
		s = append(s, tensorSpec{name + ".weight", []int{ch}, 'g'}, tensorSpec{name + ".bias", []int{ch}, 'n'})
	}
	res := func(name string, cin, cout int) {
		norm(name+".norm1", cin)
		conv(name+".conv1", cout, cin, 3)
		norm(name+".norm2", cout)
		conv(name+".conv2", cout, cout, 3)
		if cin != cout {
			conv(name+".nin_shortcut", cout, cin, 1)
		}
	}
	attn := func(name string, ch int) {
		norm(name+".norm", ch)
		for _, p := range []string{"q", "k", "v", "proj_out"} {
			conv(name+"."+p, ch, ch, 1)
		}
	}
	n := len(c.ChMult)
	levelAttn := func(i int) bool { return slices.Contains(c.AttnResolutions, c.Resolution>>i) }
	conv("encoder.conv_in", c.Ch, c.InChannels, 3)
	in := c.Ch
	for i, m := range c.ChMult {
		for j := range c.NumResBlocks {
			res(fmt.Sprintf("encoder.down.%d.block.%d", i, j), in, c.Ch*m)
			in = c.Ch * m
			if levelAttn(i) {
				attn(fmt.Sprintf("encoder.down.%d.attn.%d", i, j), in)
			}
		}
		if i != n-1 {
			conv(fmt.Sprintf("encoder.down.%d.downsample.conv", i), in, in, 3)
		}
	}
	res("encoder.mid.block_1", in, in)
	attn("encoder.mid.attn_1", in)
	res("encoder.mid.block_2", in, in)
	norm("encoder.norm_out", in)
	conv("encoder.conv_out", 2*c.ZChannels, in, 3)

	in = c.Ch * c.ChMult[n-1]
	conv("decoder.conv_in", in, c.ZChannels, 3)
	res("decoder.mid.block_1", in, in)
	attn("decoder.mid.attn_1", in)
	res("decoder.mid.block_2", in, in)
	for i := n - 1; i >= 0; i-- {
		for j := range c.NumResBlocks + 1 {
			res(fmt.Sprintf("decoder.up.%d.block.%d", i, j), in, c.Ch*c.ChMult[i])
			in = c.Ch * c.ChMult[i]
			if levelAttn(i) {
				attn(fmt.Sprintf("decoder.up.%d.attn.%d", i, j), in)
			}
		}
		if i != 0 {
			conv(fmt.Sprintf("decoder.up.%d.upsample.conv", i), in, in, 3)
		}
	}
	norm("decoder.norm_out", in)
	conv("decoder.conv_out", c.OutCh, in, 3)
	return s
}

// randomWeights fills the specs with seeded random values (weights ~ N(0, 1/fan_in), small
// biases, norm scales near 1) stored as dt.
func randomWeights(t testing.TB, specs []tensorSpec, seed uint64, dt tensor.DType) map[string]safetensors.Entry {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make(map[string]safetensors.Entry, len(specs))
	for _, sp := range specs {
		n := 1
		for _, d := range sp.shape {
			n *= d
		}
		vals := make([]float32, n)
		fanIn := 1
		for _, d := range sp.shape[1:] {
			fanIn *= d
		}
		for i := range vals {
			g := float32(rng.NormFloat64())
			switch sp.kind {
			case 'w':
				vals[i] = g / float32(math.Sqrt(float64(fanIn)))
			case 'b', 'n':
				vals[i] = 0.1 * g
			case 'g':
				vals[i] = 1 + 0.1*g
			}
		}
		data := make([]byte, n*dt.Size())
		if err := tensor.EncodeF32(data, vals, dt); err != nil {
			t.Fatal(err)
		}
		out[sp.name] = safetensors.Entry{DType: safetensors.DType(dt.String()), Shape: sp.shape, Data: data}
	}
	return out
}

// writeCheckpoint writes entries (and, when not nil, a sidecar) into dir and returns the path.
func writeCheckpoint(t testing.TB, dir, name string, entries map[string]safetensors.Entry, sidecar map[string]any) string {
	t.Helper()
	path := filepath.Join(dir, name+".safetensors")
	if err := safetensors.WriteFile(path, entries, nil); err != nil {
		t.Fatal(err)
	}
	if sidecar != nil {
		b, err := json.Marshal(sidecar)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// tinySidecar is what shapes cannot tell about tinyConfig.
var tinySidecar = map[string]any{"groupnorm_groups": 4}

func newBackend(t testing.TB) tensor.Backend {
	t.Helper()
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// loadTiny writes a random tinyConfig checkpoint and loads it.
func loadTiny(t testing.TB, be tensor.Backend, opt vae.Options) *vae.VAE {
	t.Helper()
	path := writeCheckpoint(t, t.TempDir(), "tiny", randomWeights(t, ldmSpecs(tinyConfig()), 1, tensor.F32), tinySidecar)
	v, err := vae.Load(path, be, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func randomLatent(b, c, h, w int, seed uint64) *vae.Latent {
	rng := rand.New(rand.NewPCG(seed, 3))
	l := &vae.Latent{B: b, C: c, H: h, W: w, Data: make([]float32, b*c*h*w)}
	for i := range l.Data {
		l.Data[i] = float32(rng.NormFloat64())
	}
	return l
}

func randomImage(b, h, w, c int, seed uint64) *vae.Image {
	rng := rand.New(rand.NewPCG(seed, 5))
	im := &vae.Image{B: b, H: h, W: w, C: c, Pix: make([]float32, b*h*w*c)}
	for i := range im.Pix {
		im.Pix[i] = rng.Float32()
	}
	return im
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}
