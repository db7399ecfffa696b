package zimage

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/dypegraph/dypegraph/tensor"
)

// DefaultAxesDims splits a head dimension into the three RoPE axes the way the released model
// does for 128 (32, 48, 48): a quarter (rounded down to even) for the caption axis and the rest
// shared evenly by rows and columns (the first spatial axis takes the odd pair). The tiny golden
// model's 64 gives (16, 24, 24).
func DefaultAxesDims(headDim int) ([3]int, error) {
	if headDim < 6 || headDim%2 != 0 {
		return [3]int{}, fmt.Errorf("zimage: head dim %d cannot be split into three even RoPE axes", headDim)
	}
	a0 := headDim / 4 &^ 1
	if a0 < 2 {
		a0 = 2
	}
	pairs := (headDim - a0) / 2
	a2 := pairs / 2 * 2
	a1 := headDim - a0 - a2
	return [3]int{a0, a1, a2}, nil
}

// ShapeConfig is a Z-Image-style configuration of the given width, depth and head count with
// ComfyUI's size rules for the rest: FFN ceil256(int(8/3·dim)), t_embedder hidden min(dim,
// 1024), RoPE axes DefaultAxesDims, θ 256, patch 2, 16 latent channels, padding to 32.
func ShapeConfig(dim, layers, refinerLayers, heads, capFeatDim int) (Config, error) {
	if heads <= 0 || dim <= 0 || dim%heads != 0 {
		return Config{}, fmt.Errorf("zimage: dim %d is not a multiple of %d heads", dim, heads)
	}
	axes, err := DefaultAxesDims(dim / heads)
	if err != nil {
		return Config{}, err
	}
	ffn := int(8.0 / 3.0 * float64(dim))
	ffn = (ffn + 255) / 256 * 256
	c := Config{
		Dim: dim, NLayers: layers, NRefinerLayers: refinerLayers, NHeads: heads, NKVHeads: heads,
		HeadDim: dim / heads, CapFeatDim: capFeatDim, FFNHidden: ffn, TEmbedderHidden: min(dim, 1024),
		PatchSize: 2, InChannels: 16, AxesDims: axes, AxesLens: [3]int{1536, 512, 512},
		RopeTheta: 256, NormEps: 1e-5, QKNorm: true, TimeScale: 1000, PadTokensMultiple: 32,
		ZImageModulation: true,
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c.withDefaults(), nil
}

// ParamShapes lists every parameter of cfg under its ComfyUI name with its shape (the fused
// qkv layout, without key prefix).
func ParamShapes(cfg Config) map[string][]int {
	c := cfg.withDefaults()
	d, hd := c.Dim, c.HeadDim
	s := map[string][]int{
		"x_embedder.weight":                     {d, c.patchFeatures()},
		"x_embedder.bias":                       {d},
		"t_embedder.mlp.0.weight":               {c.TEmbedderHidden, FrequencyEmbeddingSize},
		"t_embedder.mlp.0.bias":                 {c.TEmbedderHidden},
		"t_embedder.mlp.2.weight":               {adaLNWidth, c.TEmbedderHidden},
		"t_embedder.mlp.2.bias":                 {adaLNWidth},
		"cap_embedder.0.weight":                 {c.CapFeatDim},
		"cap_embedder.1.weight":                 {d, c.CapFeatDim},
		"cap_embedder.1.bias":                   {d},
		"final_layer.linear.weight":             {c.patchFeatures(), d},
		"final_layer.linear.bias":               {c.patchFeatures()},
		"final_layer.adaLN_modulation.1.weight": {d, adaLNWidth},
		"final_layer.adaLN_modulation.1.bias":   {d},
	}
	if c.PadTokensMultiple > 0 {
		s["x_pad_token"] = []int{1, d}
		s["cap_pad_token"] = []int{1, d}
	}
	blockShapes := func(name string, modulated bool) {
		s[name+".attention.qkv.weight"] = []int{(c.NHeads + 2*c.NKVHeads) * hd, d}
		s[name+".attention.out.weight"] = []int{d, c.NHeads * hd}
		if c.QKNorm {
			s[name+".attention.q_norm.weight"] = []int{hd}
			s[name+".attention.k_norm.weight"] = []int{hd}
		}
		s[name+".feed_forward.w1.weight"] = []int{c.FFNHidden, d}
		s[name+".feed_forward.w2.weight"] = []int{d, c.FFNHidden}
		s[name+".feed_forward.w3.weight"] = []int{c.FFNHidden, d}
		for _, n := range []string{"attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"} {
			s[name+"."+n+".weight"] = []int{d}
		}
		if modulated {
			s[name+".adaLN_modulation.0.weight"] = []int{4 * d, adaLNWidth}
			s[name+".adaLN_modulation.0.bias"] = []int{4 * d}
		}
	}
	for i := range c.NRefinerLayers {
		blockShapes("noise_refiner."+strconv.Itoa(i), true)
	}
	for i := range c.NContextRefinerLayers {
		blockShapes("context_refiner."+strconv.Itoa(i), false)
	}
	for i := range c.NLayers {
		blockShapes("layers."+strconv.Itoa(i), true)
	}
	return s
}

// RandomWeights makes host tensors of dtype dt for every parameter of cfg, seeded: matrices
// uniform in ±1/√fan_in (activations keep their scale through the layers), biases small, norm
// gains near 1, pad tokens of unit scale. For benchmarks and tests; values mean nothing.
func RandomWeights(cfg Config, dt tensor.DType, seed uint64) (map[string]*tensor.Tensor, error) {
	if !dt.IsComputeType() {
		return nil, fmt.Errorf("zimage: random weights: dtype %v is not a compute dtype", dt)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5a17))
	out := map[string]*tensor.Tensor{}
	shapes := ParamShapes(cfg)
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	// Deterministic order so the same seed gives the same weights.
	slices.Sort(names)
	for _, name := range names {
		shape := shapes[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		switch {
		case len(shape) == 2 && shape[0] == 1: // pad tokens
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		case len(shape) == 2:
			a := 1 / math.Sqrt(float64(shape[1]))
			for i := range v {
				v[i] = float32((2*rng.Float64() - 1) * a)
			}
		case isNormName(name):
			for i := range v {
				v[i] = float32(1 + 0.1*(2*rng.Float64()-1))
			}
		default: // biases
			for i := range v {
				v[i] = float32(0.02 * (2*rng.Float64() - 1))
			}
		}
		t, err := tensor.FromFloat32As(dt, v, shape...)
		if err != nil {
			return nil, fmt.Errorf("zimage: random weights: %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// NewRandom builds a model of cfg with RandomWeights on be.
func NewRandom(cfg Config, be tensor.Backend, dt tensor.DType, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ws, err := RandomWeights(cfg, dt, seed)
	if err != nil {
		return nil, err
	}
	return NewFromTensors(cfg, ws, be, Options{})
}

func isNormName(name string) bool {
	for _, suf := range []string{"norm1.weight", "norm2.weight", "q_norm.weight", "k_norm.weight", "cap_embedder.0.weight"} {
		if len(name) >= len(suf) && name[len(name)-len(suf):] == suf {
			return true
		}
	}
	return false
}
