package qwen3

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/tensor"
)

// ComfyKeyPrefix is the prefix of every tensor in ComfyUI's single-file qwen_3_4b.safetensors
// ("model.embed_tokens.weight", "model.layers.0…", "model.norm.weight").
const ComfyKeyPrefix = "model."

// ParamShapes lists every tensor of a Qwen3 decoder of configuration cfg under the names of
// ComfyUI's single file (prefix "model."): the token embedding, per layer the two RMSNorms, the
// q/k/v/o projections, the per-head q/k norms and the SwiGLU MLP, and the final norm.
func ParamShapes(cfg Config) (map[string][]int, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("qwen3: param shapes: %w", err)
	}
	H, D, I := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize
	q, kv := cfg.NumAttentionHeads*D, cfg.NumKeyValueHeads*D
	p := ComfyKeyPrefix
	s := map[string][]int{
		p + "embed_tokens.weight": {cfg.VocabSize, H},
		p + "norm.weight":         {H},
	}
	for l := range cfg.NumHiddenLayers {
		lp := p + "layers." + strconv.Itoa(l) + "."
		s[lp+"input_layernorm.weight"] = []int{H}
		s[lp+"post_attention_layernorm.weight"] = []int{H}
		s[lp+"self_attn.q_proj.weight"] = []int{q, H}
		s[lp+"self_attn.k_proj.weight"] = []int{kv, H}
		s[lp+"self_attn.v_proj.weight"] = []int{kv, H}
		s[lp+"self_attn.o_proj.weight"] = []int{H, q}
		s[lp+"self_attn.q_norm.weight"] = []int{D}
		s[lp+"self_attn.k_norm.weight"] = []int{D}
		s[lp+"mlp.gate_proj.weight"] = []int{I, H}
		s[lp+"mlp.up_proj.weight"] = []int{I, H}
		s[lp+"mlp.down_proj.weight"] = []int{H, I}
	}
	return s, nil
}

// RandomWeights makes seeded host tensors of dtype dt for every tensor of ParamShapes(cfg):
// matrices uniform in ±1/√fan_in, the embedding of unit scale, norm gains near 1. The same seed
// gives the same weights. For tests, fixtures and benchmarks; the values mean nothing.
func RandomWeights(cfg Config, dt tensor.DType, seed uint64) (map[string]*tensor.Tensor, error) {
	if !dt.IsComputeType() {
		return nil, fmt.Errorf("qwen3: random weights: dtype %v is not a compute dtype", dt)
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
	rng := rand.New(rand.NewPCG(seed, 0x9e3))
	out := make(map[string]*tensor.Tensor, len(shapes))
	for _, name := range names {
		shape := shapes[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		switch {
		case strings.HasSuffix(name, "embed_tokens.weight"):
			for i := range v {
				v[i] = float32(2*rng.Float64() - 1)
			}
		case len(shape) == 2:
			a := 1 / math.Sqrt(float64(shape[1]))
			for i := range v {
				v[i] = float32((2*rng.Float64() - 1) * a)
			}
		default: // RMSNorm gains
			for i := range v {
				v[i] = float32(1 + 0.1*(2*rng.Float64()-1))
			}
		}
		t, err := tensor.FromFloat32As(dt, v, shape...)
		if err != nil {
			return nil, fmt.Errorf("qwen3: random weights: %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}
