package vae

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// Options configures Load and New. The zero value computes in float32 with no memory budget.
type Options struct {
	// Compute is the activation dtype: tensor.F32 (the default, also for the zero value) or
	// tensor.BF16. tensor.F16 is refused. Weights stay in their stored dtype either way.
	Compute tensor.DType
	// MemoryBudget, when positive, is the activation memory in bytes that one plain Decode or
	// Encode may use. A batch is split into chunks that fit; when a single sample does not
	// fit, Decode and Encode switch to the tiled algorithm with ComfyUI's fallback tiles
	// (decode 64x64 latent cells, overlap 16; encode 512 px, overlap 64), halving the tile
	// until the estimate fits (down to 8 cells / 64 px). 0 means no budget: always plain.
	MemoryBudget int64
	// Config, when not nil, replaces detection from shapes and sidecar.
	Config *Config
}

// VAE is a loaded autoencoder. It is immutable after Load and safe for concurrent use.
type VAE struct {
	cfg     Config
	be      tensor.Backend
	compute tensor.DType
	budget  int64
	enc     *encoder // nil for a decoder-only checkpoint
	dec     *decoder // nil for an encoder-only checkpoint
	file    string

	weights []*tensor.Tensor
	closer  io.Closer
	once    sync.Once
}

// Prefixes under which combined checkpoints carry the VAE.
var prefixes = []string{"first_stage_model.", "vae."}

// Load opens a safetensors file, sharded index or folder, detects the VAE configuration from
// its shapes (merging the sidecar <weights>.config.json when present) unless opt.Config is
// given, and loads the weights onto be (memory-mapped and used in place on the CPU backend).
// Close releases the file.
func Load(path string, be tensor.Backend, opt Options) (*VAE, error) {
	set, err := safetensors.OpenSet(path)
	if err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	src := safetensors.StripPrefix(set, prefixes...)
	cfg := opt.Config
	var conflicts []string
	if cfg == nil {
		r, err := detect.DetectPath(path, src)
		if err != nil {
			set.Close()
			return nil, fmt.Errorf("vae: %w", err)
		}
		c, err := configFromDetect(r, path)
		if err != nil {
			set.Close()
			return nil, err
		}
		cfg = &c
		conflicts = r.Conflicts
	}
	v, err := build(src, path, *cfg, be, opt)
	if err != nil {
		set.Close()
		if len(conflicts) > 0 {
			err = fmt.Errorf("vae: the sidecar %s contradicts the shapes (%s):\n%w", detect.SidecarPath(path), strings.Join(conflicts, "; "), err)
		}
		return nil, err
	}
	v.closer = set
	return v, nil
}

// New builds a VAE from tensors already open (names without a checkpoint prefix, or with one of
// "first_stage_model." / "vae.", which is stripped) and a configuration; the caller keeps src
// open until Close and closes it afterwards. name is used in errors.
func New(src safetensors.Source, name string, cfg Config, be tensor.Backend, opt Options) (*VAE, error) {
	return build(safetensors.StripPrefix(src, prefixes...), name, cfg, be, opt)
}

func build(src safetensors.Source, file string, cfg Config, be tensor.Backend, opt Options) (*VAE, error) {
	if be == nil {
		return nil, errors.New("vae: no tensor backend")
	}
	compute, err := checkCompute(opt.Compute)
	if err != nil {
		return nil, err
	}
	if cfg.GroupNormGroups == 0 {
		cfg.GroupNormGroups = 32
	}
	if cfg.GroupNormEps == 0 {
		cfg.GroupNormEps = 1e-6
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("vae: %s: config: %w", file, err)
	}
	layout := cfg.Layout
	if layout == "" {
		layout = "ldm"
		if _, ok := src.Info("decoder.up_blocks.0.resnets.0.conv1.weight"); ok {
			layout = "diffusers"
		} else if _, ok := src.Info("encoder.down_blocks.0.resnets.0.conv1.weight"); ok {
			layout = "diffusers"
		}
		cfg.Layout = layout
	}
	l := &loader{src: src, file: file, layout: layout, nLevels: len(cfg.ChMult), be: be, used: map[string]bool{}}
	v := &VAE{cfg: cfg, be: be, compute: compute, budget: max(opt.MemoryBudget, 0), file: file}
	hasEnc, hasDec := l.has("encoder.conv_in.weight"), l.has("decoder.conv_in.weight")
	if !hasEnc && !hasDec {
		return nil, fmt.Errorf("vae: %s: neither encoder.conv_in.weight nor decoder.conv_in.weight is present (%s layout): not a VAE checkpoint", file, layout)
	}
	if hasEnc {
		v.enc = l.encoder(cfg)
	}
	if hasDec {
		v.dec = l.decoder(cfg)
	}
	var extra []string
	for _, n := range src.Names() {
		if (strings.HasPrefix(n, "encoder.") || strings.HasPrefix(n, "decoder.")) && !l.used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 5 {
			extra = append(extra[:5:5], fmt.Sprintf("... (%d in all)", len(extra)))
		}
		l.errs = append(l.errs, fmt.Errorf("vae: %s: tensors the configuration %s has no place for (wrong config or sidecar?): %s",
			file, cfg.summary(), strings.Join(extra, ", ")))
	}
	if err := l.err(); err != nil {
		be.Free(l.loaded...)
		return nil, err
	}
	v.weights = l.loaded
	return v, nil
}

func (c Config) summary() string {
	return fmt.Sprintf("ch %d, ch_mult %v, num_res_blocks %d, z_channels %d", c.Ch, c.ChMult, c.NumResBlocks, c.ZChannels)
}

// Close releases the weights and the file Load opened. The VAE must not be used afterwards.
func (v *VAE) Close() error {
	var err error
	v.once.Do(func() {
		v.be.Free(v.weights...)
		v.weights = nil
		if v.closer != nil {
			err = v.closer.Close()
		}
	})
	return err
}

// Config returns the configuration in use.
func (v *VAE) Config() Config {
	c := v.cfg
	c.ChMult = append([]int(nil), c.ChMult...)
	c.AttnResolutions = append([]int(nil), c.AttnResolutions...)
	return c
}

// Downscale is the pixel size of one latent cell (8 for the Flux VAE).
func (v *VAE) Downscale() int { return v.cfg.Downscale() }

// LatentChannels is the channel count of the latent (16 for the Flux VAE).
func (v *VAE) LatentChannels() int { return v.cfg.ZChannels }

// ImageChannels is the channel count of decoded images (3).
func (v *VAE) ImageChannels() int { return v.cfg.OutCh }

// HasEncoder reports whether the checkpoint holds the encoder (Encode works).
func (v *VAE) HasEncoder() bool { return v.enc != nil }

// HasDecoder reports whether the checkpoint holds the decoder (Decode works).
func (v *VAE) HasDecoder() bool { return v.dec != nil }

// Compute is the activation dtype (F32 or BF16).
func (v *VAE) Compute() tensor.DType { return v.compute }

// MemoryBudget is the budget given in Options (0: none).
func (v *VAE) MemoryBudget() int64 { return v.budget }

// Backend is the backend the weights live on.
func (v *VAE) Backend() tensor.Backend { return v.be }
