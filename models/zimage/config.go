package zimage

import (
	"errors"
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/models/detect"
)

// QKNormEps is the epsilon of the q/k RMSNorms in ComfyUI: the modules are built with eps=None,
// which its fused rms+rope path turns into torch.finfo(torch.float32).eps (zimage.md §9; the
// official repo and diffusers use 1e-5).
const QKNormEps = 1.1920928955078125e-07

// FinalNormEps is the epsilon of the final layer's affine-free LayerNorm.
const FinalNormEps = 1e-6

// FrequencyEmbeddingSize and MaxPeriod describe the timestep sinusoid (ComfyUI TimestepEmbedder).
const (
	FrequencyEmbeddingSize = 256
	MaxPeriod              = 10000
)

// Config is the NextDiT configuration, under the key names of models/detect and of the
// sidecar files. Zero values of optional fields take the defaults described on each field.
type Config struct {
	Dim            int `json:"dim"`
	NLayers        int `json:"n_layers"`
	NRefinerLayers int `json:"n_refiner_layers"`
	// NContextRefinerLayers is the number of context_refiner blocks when it differs from
	// NRefinerLayers (0 = same).
	NContextRefinerLayers int `json:"n_context_refiner_layers,omitempty"`
	NHeads                int `json:"n_heads"`
	NKVHeads              int `json:"n_kv_heads"`
	// HeadDim is Dim/NHeads (0 = derived).
	HeadDim    int `json:"head_dim,omitempty"`
	CapFeatDim int `json:"cap_feat_dim"`
	// FFNHidden is the SwiGLU width (w1/w3 rows).
	FFNHidden int `json:"ffn_hidden"`
	// TEmbedderHidden is the timestep MLP width (ComfyUI min(dim, 1024)).
	TEmbedderHidden int     `json:"t_embedder_hidden"`
	PatchSize       int     `json:"patch_size"`
	InChannels      int     `json:"in_channels"`
	AxesDims        [3]int  `json:"axes_dims"`
	AxesLens        [3]int  `json:"axes_lens"`
	RopeTheta       float64 `json:"rope_theta"`
	NormEps         float64 `json:"norm_eps"`
	// QKNormEps overrides the q/k RMSNorm epsilon (0 = QKNormEps, ComfyUI's).
	QKNormEps float64 `json:"qk_norm_eps,omitempty"`
	QKNorm    bool    `json:"qk_norm"`
	TimeScale float64 `json:"time_scale"`
	// PadTokensMultiple pads caption and image sequences with the learnt pad tokens to a
	// multiple of it (32 for Z-Image; 0 = no padding and no pad tokens).
	PadTokensMultiple int  `json:"pad_tokens_multiple"`
	ZImageModulation  bool `json:"z_image_modulation"`
	// Layout is "comfyui" (fused qkv) or "diffusers" (to_q/to_k/to_v); "" = comfyui.
	Layout string `json:"layout,omitempty"`
	// KeyPrefix is the prefix every tensor name carries in the file ("model.diffusion_model.").
	KeyPrefix string `json:"key_prefix,omitempty"`
}

// configJSON decodes the axes as slices so that a wrong number of entries is an error rather
// than silently truncated.
type configJSON struct {
	Config
	AxesDims []int `json:"axes_dims"`
	AxesLens []int `json:"axes_lens"`
}

// ConfigFrom decodes a detection result (shapes merged with a sidecar) into a Config and
// validates it. Keys that neither shapes nor a sidecar gave are reported by name.
func ConfigFrom(r detect.Result) (Config, error) {
	c, err := configFrom(r)
	if err != nil {
		return Config{}, fmt.Errorf("zimage: %w", err)
	}
	return c, nil
}

func configFrom(r detect.Result) (Config, error) {
	if r.Model != detect.ZImageDiT {
		reason := r.Reason
		if reason == "" {
			reason = "detected as " + r.Model
		}
		return Config{}, fmt.Errorf("not a Z-Image DiT checkpoint: %s", reason)
	}
	if len(r.Missing) > 0 {
		return Config{}, fmt.Errorf("configuration keys %v cannot be inferred from the tensor shapes; put them in a sidecar %s", r.Missing, "<weights>"+detect.SidecarSuffix)
	}
	var cj configJSON
	if err := r.Decode(&cj); err != nil {
		return Config{}, err
	}
	c := cj.Config
	for _, ax := range []struct {
		name string
		src  []int
		dst  *[3]int
	}{{"axes_dims", cj.AxesDims, &c.AxesDims}, {"axes_lens", cj.AxesLens, &c.AxesLens}} {
		if len(ax.src) != 3 {
			return Config{}, fmt.Errorf("%s %v must have 3 entries", ax.name, ax.src)
		}
		copy(ax.dst[:], ax.src)
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c.withDefaults(), nil
}

// withDefaults fills the derived fields.
func (c Config) withDefaults() Config {
	if c.HeadDim == 0 && c.NHeads > 0 {
		c.HeadDim = c.Dim / c.NHeads
	}
	if c.NKVHeads == 0 {
		c.NKVHeads = c.NHeads
	}
	if c.NContextRefinerLayers == 0 {
		c.NContextRefinerLayers = c.NRefinerLayers
	}
	if c.QKNormEps == 0 {
		c.QKNormEps = QKNormEps
	}
	if c.Layout == "" {
		c.Layout = "comfyui"
	}
	return c
}

// Validate checks that the configuration describes a NextDiT this package can run.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("zimage: %w", err)
	}
	return nil
}

func (c Config) validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Dim <= 0 || c.NLayers < 0 || c.NRefinerLayers < 0 || c.NContextRefinerLayers < 0 {
		bad("dim %d and layer counts (%d, %d, %d) must be positive", c.Dim, c.NLayers, c.NRefinerLayers, c.NContextRefinerLayers)
	}
	if c.NHeads <= 0 || c.NKVHeads <= 0 || c.NHeads%c.NKVHeads != 0 {
		bad("n_heads %d must be a positive multiple of n_kv_heads %d", c.NHeads, c.NKVHeads)
	} else if c.HeadDim*c.NHeads != c.Dim {
		bad("n_heads %d × head_dim %d != dim %d", c.NHeads, c.HeadDim, c.Dim)
	}
	sum := 0
	for i, d := range c.AxesDims {
		if d <= 0 || d%2 != 0 {
			bad("axes_dims[%d] = %d must be positive and even", i, d)
		}
		sum += d
	}
	if sum != c.HeadDim {
		bad("axes_dims %v sum to %d, head_dim is %d", c.AxesDims, sum, c.HeadDim)
	}
	if !(c.RopeTheta > 1) || math.IsInf(c.RopeTheta, 0) {
		bad("rope_theta %v must be finite and > 1", c.RopeTheta)
	}
	if !(c.NormEps > 0) || !(c.QKNormEps > 0) {
		bad("norm epsilons (%v, %v) must be positive", c.NormEps, c.QKNormEps)
	}
	if !(c.TimeScale > 0) || math.IsInf(c.TimeScale, 0) {
		bad("time_scale %v must be positive", c.TimeScale)
	}
	if c.CapFeatDim <= 0 || c.FFNHidden <= 0 || c.TEmbedderHidden <= 0 {
		bad("cap_feat_dim %d, ffn_hidden %d and t_embedder_hidden %d must be positive", c.CapFeatDim, c.FFNHidden, c.TEmbedderHidden)
	}
	if c.PatchSize <= 0 || c.InChannels <= 0 {
		bad("patch_size %d and in_channels %d must be positive", c.PatchSize, c.InChannels)
	}
	if c.PadTokensMultiple < 0 {
		bad("pad_tokens_multiple %d must not be negative", c.PadTokensMultiple)
	}
	if !c.ZImageModulation {
		bad("z_image_modulation is off: a Lumina 2 style DiT, not Z-Image")
	}
	if c.Layout != "comfyui" && c.Layout != "diffusers" {
		bad("layout %q is neither comfyui nor diffusers", c.Layout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// RopeSpec is the model's RoPE as the dype package needs it.
func (c Config) RopeSpec() dype.RopeSpec {
	return dype.RopeSpec{Theta: c.RopeTheta, AxesDims: c.AxesDims, AxesLens: c.AxesLens, PadMultiple: c.PadTokensMultiple}
}

// padded returns n rounded up to the pad multiple.
func (c Config) padded(n int) int {
	if m := c.PadTokensMultiple; m > 1 {
		return n + (m-n%m)%m
	}
	return n
}

// patchFeatures is the width of one token before the x embedder (patch² × channels).
func (c Config) patchFeatures() int { return c.PatchSize * c.PatchSize * c.InChannels }

// adaLNWidth is the width of the conditioning vector (the t_embedder output; 256 for Z-Image).
const adaLNWidth = FrequencyEmbeddingSize

// FLOPs returns the floating-point operations (2 per multiply-add, matrix products and
// attention only, as zimage.md §8) of one forward pass with batch b, imageTokens image tokens
// and a caption of captionTokens rows, both before padding.
func (c Config) FLOPs(b, imageTokens, captionTokens int) float64 {
	c = c.withDefaults()
	np, lp := float64(c.padded(imageTokens)), float64(c.padded(captionTokens))
	d, hd := float64(c.Dim), float64(c.HeadDim)
	qkv := d * float64(c.NHeads+2*c.NKVHeads) * hd
	perToken := 2 * (qkv + d*d + 3*d*float64(c.FFNHidden))
	attn := func(s float64) float64 { return 2 * 2 * s * s * float64(c.NHeads) * hd }
	block := func(s float64) float64 { return perToken*s + attn(s) }
	mod := 2 * float64(adaLNWidth) * 4 * d
	s := np + lp
	f := float64(c.NLayers)*(block(s)+mod) +
		float64(c.NRefinerLayers)*(block(np)+mod) +
		float64(c.NContextRefinerLayers)*block(lp)
	f += 2 * float64(c.patchFeatures()) * d * float64(imageTokens)                   // x embedder
	f += 2 * float64(c.CapFeatDim) * d * float64(captionTokens)                      // caption embedder
	f += 2*s*d*float64(c.patchFeatures()) + 2*float64(adaLNWidth)*d                  // final layer
	f += 2 * float64(FrequencyEmbeddingSize+adaLNWidth) * float64(c.TEmbedderHidden) // t embedder
	return f * float64(b)
}
