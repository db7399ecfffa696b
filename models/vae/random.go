package vae

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/dypegraph/dypegraph/tensor"
)

// ParamShapes lists every tensor of an LDM-named (ae.safetensors) autoencoder of configuration
// cfg with its shape, following the same structure the loader reads: encoder (conv_in, per level
// res blocks, optional attention, downsample; mid block, attention, block; norm_out; conv_out of
// 2·z_channels when double_z) and decoder (conv_in, mid, per level num_res_blocks+1 res blocks
// and upsample; norm_out; conv_out). Attention convolutions are stored as [c, c, 1, 1] like the
// real file.
func ParamShapes(cfg Config) (map[string][]int, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("vae: param shapes: %w", err)
	}
	s := map[string][]int{}
	conv := func(name string, cout, cin, k int) {
		s[name+".weight"] = []int{cout, cin, k, k}
		s[name+".bias"] = []int{cout}
	}
	norm := func(name string, c int) {
		s[name+".weight"] = []int{c}
		s[name+".bias"] = []int{c}
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
	attn := func(name string, c int) {
		norm(name+".norm", c)
		for _, p := range []string{"q", "k", "v", "proj_out"} {
			conv(name+"."+p, c, c, 1)
		}
	}
	n := len(cfg.ChMult)
	conv("encoder.conv_in", cfg.Ch, cfg.InChannels, 3)
	in := cfg.Ch
	for i := range n {
		out := cfg.levelChannels(i)
		stem := "encoder.down." + strconv.Itoa(i)
		for j := range cfg.NumResBlocks {
			res(stem+".block."+strconv.Itoa(j), in, out)
			in = out
			if cfg.levelHasAttn(i) {
				attn(stem+".attn."+strconv.Itoa(j), out)
			}
		}
		if i != n-1 {
			conv(stem+".downsample.conv", out, out, 3)
		}
	}
	res("encoder.mid.block_1", in, in)
	attn("encoder.mid.attn_1", in)
	res("encoder.mid.block_2", in, in)
	norm("encoder.norm_out", in)
	zc := cfg.ZChannels
	if cfg.DoubleZ {
		zc *= 2
	}
	conv("encoder.conv_out", zc, in, 3)

	in = cfg.levelChannels(n - 1)
	conv("decoder.conv_in", in, cfg.ZChannels, 3)
	res("decoder.mid.block_1", in, in)
	attn("decoder.mid.attn_1", in)
	res("decoder.mid.block_2", in, in)
	for i := n - 1; i >= 0; i-- {
		out := cfg.levelChannels(i)
		stem := "decoder.up." + strconv.Itoa(i)
		for j := range cfg.NumResBlocks + 1 {
			res(stem+".block."+strconv.Itoa(j), in, out)
			in = out
			if cfg.levelHasAttn(i) {
				attn(stem+".attn."+strconv.Itoa(j), out)
			}
		}
		if i != 0 {
			conv(stem+".upsample.conv", out, out, 3)
		}
	}
	norm("decoder.norm_out", in)
	conv("decoder.conv_out", cfg.OutCh, in, 3)
	return s, nil
}

// RandomWeights makes seeded host tensors of dtype dt for every tensor of ParamShapes(cfg):
// convolution weights uniform in ±√3/√fan_in (unit-variance activations), biases and norm shifts
// small, norm scales near 1. The same seed gives the same weights. For tests, fixtures and
// benchmarks; the values mean nothing (a decoded image is structured noise).
func RandomWeights(cfg Config, dt tensor.DType, seed uint64) (map[string]*tensor.Tensor, error) {
	if !dt.IsComputeType() {
		return nil, fmt.Errorf("vae: random weights: dtype %v is not a compute dtype", dt)
	}
	shapes, err := ParamShapes(cfg)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	slices.Sort(names) // a fixed order makes the weights a function of the seed alone
	rng := rand.New(rand.NewPCG(seed, 0xae))
	out := make(map[string]*tensor.Tensor, len(shapes))
	for _, name := range names {
		shape := shapes[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		switch {
		case len(shape) == 4:
			fanIn := shape[1] * shape[2] * shape[3]
			a := math.Sqrt(3 / float64(fanIn))
			for i := range v {
				v[i] = float32((2*rng.Float64() - 1) * a)
			}
		case isVAENormScale(name):
			for i := range v {
				v[i] = float32(1 + 0.1*(2*rng.Float64()-1))
			}
		default: // biases and norm shifts
			for i := range v {
				v[i] = float32(0.02 * (2*rng.Float64() - 1))
			}
		}
		t, err := tensor.FromFloat32As(dt, v, shape...)
		if err != nil {
			return nil, fmt.Errorf("vae: random weights: %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// isVAENormScale reports whether name is a GroupNorm scale (…norm1.weight, …norm.weight,
// …norm_out.weight).
func isVAENormScale(name string) bool {
	for _, suf := range []string{"norm1.weight", "norm2.weight", ".norm.weight", "norm_out.weight"} {
		if len(name) >= len(suf) && name[len(name)-len(suf):] == suf {
			return true
		}
	}
	return false
}
