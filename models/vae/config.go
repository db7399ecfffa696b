package vae

import (
	"fmt"
	"slices"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/tensor"
)

// Config is the autoencoder configuration, under the key names of models/detect and of the
// sidecar files (ComfyUI's ddconfig). The real FLUX.1 VAE is ch 128, ch_mult [1,2,4,4],
// num_res_blocks 2, z_channels 16, double_z, no attention outside the mid blocks, GroupNorm with
// 32 groups and eps 1e-6.
type Config struct {
	Ch              int     `json:"ch"`
	ChMult          []int   `json:"ch_mult"`
	NumResBlocks    int     `json:"num_res_blocks"`
	ZChannels       int     `json:"z_channels"`
	InChannels      int     `json:"in_channels"`
	OutCh           int     `json:"out_ch"`
	DoubleZ         bool    `json:"double_z"`
	AttnResolutions []int   `json:"attn_resolutions"`
	Resolution      int     `json:"resolution"`
	GroupNormGroups int     `json:"groupnorm_groups"`
	GroupNormEps    float64 `json:"groupnorm_eps"`
	// Layout is "ldm" (ae.safetensors names) or "diffusers" (AutoencoderKL names); empty means
	// "ldm".
	Layout string `json:"layout"`
}

// FluxConfig returns the configuration of the real FLUX.1 / Z-Image VAE.
func FluxConfig() Config {
	return Config{
		Ch: 128, ChMult: []int{1, 2, 4, 4}, NumResBlocks: 2, ZChannels: 16, InChannels: 3, OutCh: 3,
		DoubleZ: true, AttnResolutions: []int{}, Resolution: 256, GroupNormGroups: 32,
		GroupNormEps: 1e-6, Layout: "ldm",
	}
}

// Downscale is the pixel size of one latent cell: 2^(levels-1) (8 for the Flux VAE).
func (c Config) Downscale() int { return 1 << (len(c.ChMult) - 1) }

// validate checks the values the forward passes rely on.
func (c Config) validate() error {
	switch {
	case c.Ch <= 0:
		return fmt.Errorf("ch %d must be positive", c.Ch)
	case len(c.ChMult) == 0 || len(c.ChMult) > 8:
		return fmt.Errorf("ch_mult %v must have 1 to 8 levels", c.ChMult)
	case c.NumResBlocks <= 0:
		return fmt.Errorf("num_res_blocks %d must be positive", c.NumResBlocks)
	case c.ZChannels <= 0:
		return fmt.Errorf("z_channels %d must be positive", c.ZChannels)
	case c.GroupNormGroups <= 0:
		return fmt.Errorf("groupnorm_groups %d must be positive", c.GroupNormGroups)
	case !(c.GroupNormEps > 0):
		return fmt.Errorf("groupnorm_eps %g must be positive", c.GroupNormEps)
	case c.Layout != "" && c.Layout != "ldm" && c.Layout != "diffusers":
		return fmt.Errorf("unknown layout %q (want ldm or diffusers)", c.Layout)
	}
	for i, m := range c.ChMult {
		if m <= 0 {
			return fmt.Errorf("ch_mult[%d] = %d must be positive", i, m)
		}
		if (c.Ch*m)%c.GroupNormGroups != 0 {
			return fmt.Errorf("level %d has %d channels, not a multiple of %d groups", i, c.Ch*m, c.GroupNormGroups)
		}
	}
	return nil
}

// levelChannels returns ch·ch_mult[i].
func (c Config) levelChannels(i int) int { return c.Ch * c.ChMult[i] }

// levelHasAttn reports whether level i carries attention blocks by the configuration
// (ComfyUI: curr_res = resolution >> i is in attn_resolutions).
func (c Config) levelHasAttn(i int) bool {
	return c.Resolution > 0 && slices.Contains(c.AttnResolutions, c.Resolution>>i)
}

// configFromDetect turns a detection result into a Config, failing when detection did not see
// a Flux VAE or left required keys missing.
func configFromDetect(r detect.Result, path string) (Config, error) {
	if r.Model != detect.FluxVAE {
		why := r.Reason
		if why == "" {
			why = "detected " + r.Model
		}
		return Config{}, fmt.Errorf("vae: %s is not a Flux VAE checkpoint: %s", path, why)
	}
	if len(r.Missing) > 0 {
		return Config{}, fmt.Errorf("vae: %s: configuration keys %v are neither in the shapes nor in a sidecar", path, r.Missing)
	}
	c := Config{GroupNormGroups: 32, GroupNormEps: 1e-6, Resolution: 256, InChannels: 3, OutCh: 3, DoubleZ: true}
	if err := r.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("vae: %s: %w", path, err)
	}
	return c, nil
}

// checkCompute accepts the compute dtypes this package supports.
func checkCompute(dt tensor.DType) (tensor.DType, error) {
	switch dt {
	case tensor.InvalidDType, tensor.F32:
		return tensor.F32, nil
	case tensor.BF16:
		return tensor.BF16, nil
	case tensor.F16:
		return 0, fmt.Errorf("vae: float16 compute is not supported (activations overflow to NaN at high resolution); use F32 or BF16")
	default:
		return 0, fmt.Errorf("vae: compute dtype %v is not supported; use F32 or BF16", dt)
	}
}
