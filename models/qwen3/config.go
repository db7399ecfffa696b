package qwen3

import (
	"fmt"
	"math"
	"strings"

	"github.com/dypegraph/dypegraph/models/detect"
)

// DefaultLayerIdx is the hidden state Z-Image conditions on: the output of the last but one
// decoder layer (ComfyUI layer_idx -2, Hugging Face hidden_states[-2]).
const DefaultLayerIdx = -2

// Config is the architecture of a Qwen3 decoder, under the key names of Hugging Face config.json
// files and of this project's sidecars.
type Config struct {
	VocabSize         int     `json:"vocab_size"`
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumKeyValueHeads  int     `json:"num_key_value_heads"`
	HeadDim           int     `json:"head_dim"`
	RMSNormEps        float64 `json:"rms_norm_eps"`
	RoPETheta         float64 `json:"rope_theta"`
	// LayerIdx selects the decoder layer whose output Hidden returns; negative values count from
	// the end (ComfyUI's layer_idx). Nil means DefaultLayerIdx.
	LayerIdx *int `json:"layer_idx,omitempty"`
}

// Qwen3_4B is the configuration of Qwen3-4B, the text encoder of Z-Image (ComfyUI
// Qwen3_4BConfig; identical to the Hugging Face config).
func Qwen3_4B() Config {
	return Config{
		VocabSize: 151936, HiddenSize: 2560, IntermediateSize: 9728, NumHiddenLayers: 36,
		NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 128, RMSNormEps: 1e-6, RoPETheta: 1e6,
	}
}

// Validate checks that the configuration describes a runnable model.
func (c Config) Validate() error {
	var bad []string
	for _, f := range []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
	} {
		if f.v <= 0 {
			bad = append(bad, fmt.Sprintf("%s = %d must be positive", f.name, f.v))
		}
	}
	if c.HeadDim > 0 && c.HeadDim%2 != 0 {
		bad = append(bad, fmt.Sprintf("head_dim = %d must be even (rotate-half RoPE)", c.HeadDim))
	}
	if c.NumAttentionHeads > 0 && c.NumKeyValueHeads > 0 && c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		bad = append(bad, fmt.Sprintf("num_attention_heads = %d is not a multiple of num_key_value_heads = %d",
			c.NumAttentionHeads, c.NumKeyValueHeads))
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) || float32(c.RMSNormEps) == 0 {
		bad = append(bad, fmt.Sprintf("rms_norm_eps = %g must be a positive float32", c.RMSNormEps))
	}
	if !(c.RoPETheta > 1) || math.IsInf(c.RoPETheta, 0) {
		bad = append(bad, fmt.Sprintf("rope_theta = %g must be a finite number above 1", c.RoPETheta))
	}
	if c.NumHiddenLayers > 0 {
		if _, err := c.resolveLayer(c.layerIdx()); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("qwen3 config: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (c Config) layerIdx() int {
	if c.LayerIdx == nil {
		return DefaultLayerIdx
	}
	return *c.LayerIdx
}

// resolveLayer turns a ComfyUI layer_idx (negative counts from the end) into a layer index.
// ComfyUI accepts |idx| < num_hidden_layers (so -L, which Hugging Face would read as layer 0, is
// refused).
func (c Config) resolveLayer(idx int) (int, error) {
	if idx <= -c.NumHiddenLayers || idx >= c.NumHiddenLayers {
		return 0, fmt.Errorf("layer_idx = %d is outside the %d decoder layers (|layer_idx| < %d)", idx, c.NumHiddenLayers, c.NumHiddenLayers)
	}
	if idx < 0 {
		idx += c.NumHiddenLayers
	}
	return idx, nil
}

// detected is a detect.Result config decoded: the architecture plus where the tensors are.
type detected struct {
	Config
	Layout    string `json:"layout"`     // "hf" (model.layers…) or "qwen3model" (layers…)
	KeyPrefix string `json:"key_prefix"` // outer prefix of a combined checkpoint
	// Hugging Face config.json fields that would change the arithmetic.
	HiddenAct     string `json:"hidden_act"`
	AttentionBias bool   `json:"attention_bias"`
	RoPEScaling   any    `json:"rope_scaling"`

	// conflicts describes sidecar values that contradict the shapes (detect.Result.Conflicts).
	conflicts string
}

// tensorPrefix is what precedes "embed_tokens.weight" and "layers.N…" in the tensor names.
func (d detected) tensorPrefix() string {
	if d.Layout == "hf" {
		return d.KeyPrefix + "model."
	}
	return d.KeyPrefix
}

// configFrom decodes and checks a detection result; layerIdx (an Options override) replaces the
// configured hidden layer when not nil.
func configFrom(r detect.Result, file string, layerIdx *int) (detected, error) {
	if r.Model != detect.Qwen3 {
		reason := r.Reason
		if reason == "" {
			reason = "the tensors are a " + r.Model
		}
		return detected{}, fmt.Errorf("qwen3: %s: not a Qwen3 text encoder: %s", file, reason)
	}
	var d detected
	if err := r.Decode(&d); err != nil {
		return detected{}, fmt.Errorf("qwen3: %s: %w", file, err)
	}
	var unsupported []string
	if d.HiddenAct != "" && d.HiddenAct != "silu" {
		unsupported = append(unsupported, fmt.Sprintf("hidden_act %q (only silu)", d.HiddenAct))
	}
	if d.AttentionBias {
		unsupported = append(unsupported, "attention_bias true")
	}
	if d.RoPEScaling != nil {
		unsupported = append(unsupported, fmt.Sprintf("rope_scaling %v", d.RoPEScaling))
	}
	if len(unsupported) > 0 {
		return detected{}, fmt.Errorf("qwen3: %s: unsupported configuration: %s", file, strings.Join(unsupported, ", "))
	}
	if len(r.Missing) > 0 {
		return detected{}, fmt.Errorf("qwen3: %s: configuration incomplete, missing %s (put them in %s)",
			file, strings.Join(r.Missing, ", "), detect.SidecarPath(file))
	}
	if layerIdx != nil {
		idx := *layerIdx
		d.LayerIdx = &idx
	}
	if len(r.Conflicts) > 0 {
		d.conflicts = fmt.Sprintf("%s contradicts the tensor shapes: %s", r.Sidecar, strings.Join(r.Conflicts, "; "))
	}
	if err := d.Validate(); err != nil {
		if d.conflicts != "" {
			return detected{}, fmt.Errorf("qwen3: %s: %w (%s)", file, err, d.conflicts)
		}
		return detected{}, fmt.Errorf("qwen3: %s: %w", file, err)
	}
	return d, nil
}
