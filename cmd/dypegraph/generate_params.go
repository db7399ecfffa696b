package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dypegraph/dypegraph/experiments"
	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/sampling"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// paramFlags registers flags whose values land in build.Params only when given on the command
// line, so that they override a TOML profile applied before them.
type paramFlags struct {
	fs    *flag.FlagSet
	apply map[string]func(*build.Params)
}

func newParamFlags(fs *flag.FlagSet) *paramFlags {
	return &paramFlags{fs: fs, apply: map[string]func(*build.Params){}}
}

func (pf *paramFlags) str(name, def, usage string, set func(*build.Params, string)) {
	v := pf.fs.String(name, def, usage)
	pf.apply[name] = func(p *build.Params) { set(p, *v) }
}

func (pf *paramFlags) int(name string, def int, usage string, set func(*build.Params, int)) {
	v := pf.fs.Int(name, def, usage)
	pf.apply[name] = func(p *build.Params) { set(p, *v) }
}

func (pf *paramFlags) u64(name string, def uint64, usage string, set func(*build.Params, uint64)) {
	v := pf.fs.Uint64(name, def, usage)
	pf.apply[name] = func(p *build.Params) { set(p, *v) }
}

func (pf *paramFlags) float(name string, def float64, usage string, set func(*build.Params, float64)) {
	v := pf.fs.Float64(name, def, usage)
	pf.apply[name] = func(p *build.Params) { set(p, *v) }
}

func (pf *paramFlags) bool(name string, def bool, usage string, set func(*build.Params, bool)) {
	v := pf.fs.Bool(name, def, usage)
	pf.apply[name] = func(p *build.Params) { set(p, *v) }
}

// applySet writes every flag given on the command line into p.
func (pf *paramFlags) applySet(p *build.Params) {
	pf.fs.Visit(func(f *flag.Flag) {
		if a, ok := pf.apply[f.Name]; ok {
			a(p)
		}
	})
}

// flagGiven reports whether the named flag was on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// registerSampling registers the sampling flags shared by generate, bench dype and sweep dype.
func (pf *paramFlags) registerSampling(d build.Params) {
	pf.int("steps", d.Steps, "sampling steps per pass", func(p *build.Params, v int) { p.Steps = v })
	pf.u64("seed", d.Seed, "noise seed (0 to 18446744073709551615)", func(p *build.Params, v uint64) { p.Seed = v })
	pf.float("shift", d.Shift, "flow shift (ModelSamplingAuraFlow); 0 = the model's own, or with DyPE the DyPE node's μ", func(p *build.Params, v float64) { p.Shift = v })
	pf.float("cfg", d.CFG, "classifier-free guidance scale (1 = none, Z-Image Turbo's setting)", func(p *build.Params, v float64) { p.CFG = v })
	pf.str("sampler", d.Sampler, "sampler: "+strings.Join(sampling.Samplers(), ", "), func(p *build.Params, v string) { p.Sampler = v })
	pf.str("scheduler", d.Scheduler, "scheduler: simple, sgm_uniform, karras, exponential, ddim_uniform, beta, normal, linear_quadratic, kl_optimal", func(p *build.Params, v string) { p.Scheduler = v })
	pf.str("negative-prompt", "", "negative prompt (used only when --cfg is not 1); empty = zeroed positive, as the official workflow", func(p *build.Params, v string) { p.NegativePrompt = v })
}

// registerVAE registers the tiled VAE flags.
func (pf *paramFlags) registerVAE(d build.Params) {
	pf.bool("tiled-vae", false, "decode (and encode) the VAE in tiles (VAEDecodeTiled); needed for 2K+ on small memory", func(p *build.Params, v bool) { p.TiledVAE = v })
	pf.int("tile-size", d.TileSize, "VAE tile size in pixels (multiple of 32, 64-4096)", func(p *build.Params, v int) { p.TileSize = v })
	pf.int("tile-overlap", d.TileOverlap, "VAE tile overlap in pixels (multiple of 32)", func(p *build.Params, v int) { p.TileOverlap = v })
}

// registerDyPE registers the DyPE flags; withSwitch adds --dype (generate) and withMethod
// --dype-method.
func (pf *paramFlags) registerDyPE(d build.Params, withSwitch, withMethod, withScales bool) {
	if withSwitch {
		pf.bool("dype", false, "enable DyPE (DyPE_FLUX) for images above the 1024 px training size", func(p *build.Params, v bool) { p.DyPE.Enabled = v })
	}
	if withMethod {
		pf.str("dype-method", d.DyPE.Method, "DyPE method: vision_yarn, yarn, ntk or base", func(p *build.Params, v string) { p.DyPE.Method = v })
	}
	if withScales {
		pf.float("dype-scale", d.DyPE.Scale, "DyPE strength λs (0 < x ≤ 8)", func(p *build.Params, v float64) { p.DyPE.Scale = v })
		pf.float("dype-exponent", d.DyPE.Exponent, "DyPE decay λt (2 for 4K+, 1 for 2-3K, 0.5 just above 1K)", func(p *build.Params, v float64) { p.DyPE.Exponent = v })
	}
	pf.float("dype-start-sigma", d.DyPE.StartSigma, "σ below which DyPE's mscale starts to decay (0-1)", func(p *build.Params, v float64) { p.DyPE.StartSigma = v })
	pf.float("dype-base-shift", d.DyPE.BaseShift, "DyPE noise-schedule μ at the base size (applies with --shift 0)", func(p *build.Params, v float64) { p.DyPE.BaseShift = v })
	pf.float("dype-max-shift", d.DyPE.MaxShift, "DyPE noise-schedule μ at large sizes (applies with --shift 0)", func(p *build.Params, v float64) { p.DyPE.MaxShift = v })
	pf.int("dype-base-resolution", d.DyPE.BaseResolution, "training resolution in pixels (multiple of 16, 256-4096)", func(p *build.Params, v int) { p.DyPE.BaseResolution = v })
	pf.bool("dype-anisotropic", false, "per-axis YaRN scaling (yarn, llm_dit mode) for extreme aspect ratios", func(p *build.Params, v bool) { p.DyPE.Anisotropic = v })
	pf.str("dype-mode", d.DyPE.Mode, "position mode: llm_dit (integer positions, plain Z-Image up to 1024 px) or comfy (ComfyUI-DyPE's exact behaviour)", func(p *build.Params, v string) { p.DyPE.Mode = v })
}

// modelFlags are the model location flags.
type modelFlags struct {
	path, dit, textEncoder, vae string
}

func (m *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.path, "model-path", "models", "a ComfyUI models folder (diffusion_models/, text_encoders/, vae/) or a diffusers folder")
	fs.StringVar(&m.dit, "diffusion-model", "", "diffusion model file in diffusion_models/ (default: "+build.DefaultDiT+" or the only one)")
	fs.StringVar(&m.textEncoder, "text-encoder", "", "text encoder file in text_encoders/ (default: "+build.DefaultTextEncoder+" or the only one)")
	fs.StringVar(&m.vae, "vae", "", "VAE file in vae/ (default: "+build.DefaultVAE+" or the only one)")
}

func (m *modelFlags) resolve() (*experiments.Models, error) {
	return experiments.ResolveModels(m.path, experiments.ModelNames{DiT: m.dit, TextEncoder: m.textEncoder, VAE: m.vae})
}

// deviceBackend checks the device flags and returns the backend to run on (nil = the shared
// CPU backend). Only the CPU backend exists in this build; cuda is refused with a clear message.
// The three components must share one device.
func deviceBackend(textEncoder, dit, vae string) (tensor.Backend, error) {
	devs := []struct{ flag, v string }{{"--text-encoder-device", textEncoder}, {"--dit-device", dit}, {"--vae-device", vae}}
	for _, d := range devs {
		if d.v != "cpu" && d.v != "cuda" {
			return nil, usageError{fmt.Errorf("%s %q: want cpu or cuda", d.flag, d.v)}
		}
	}
	for _, d := range devs {
		if d.v == "cuda" && !slices.Contains(tensor.Backends(), "cuda") {
			return nil, fmt.Errorf("%s cuda: the CUDA backend is not available in this build (backends: %s); run on the CPU with %s cpu",
				d.flag, strings.Join(tensor.Backends(), ", "), d.flag)
		}
	}
	if textEncoder != dit || dit != vae {
		return nil, usageError{fmt.Errorf("the text encoder, DiT and VAE must run on one device for now (got %s, %s, %s)", textEncoder, dit, vae)}
	}
	if dit == "cpu" {
		return nil, nil
	}
	be, err := tensor.Open(dit)
	if err != nil {
		return nil, fmt.Errorf("open the %s backend: %w", dit, err)
	}
	return be, nil
}

// usageError marks an error as a usage problem (exit status 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// exitCodeOf is 2 for usage errors, 1 otherwise.
func exitCodeOf(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// workEnv makes the folders a tool's runner works in: models from m, saved images into out,
// inputs from in ("" = out).
func workEnv(m *experiments.Models, out, in string) nodes.Env {
	if in == "" {
		in = out
	}
	return nodes.Env{ModelsDir: m.Dir, OutputDir: out, InputDir: in, TempDir: out}
}

// writerIsTerminal reports whether w is a character device (a terminal), without extra modules.
func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// absOrSame makes p absolute for messages and folders.
func absOrSame(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// experimentFlags is the flag set that bench dype and sweep dype share: the benchmark defaults
// (prompt, seed, steps), the model flags and --prompt. Commands add their own flags to fs and
// the parameter groups they take to pf before parse.
type experimentFlags struct {
	fs     *flag.FlagSet
	pf     *paramFlags
	models modelFlags
	base   build.Params
}

func newExperimentFlags(name, usage string, stderr io.Writer) *experimentFlags {
	e := &experimentFlags{base: build.Defaults()}
	e.base.Prompt = experiments.BenchPrompt
	e.base.Seed = experiments.BenchSeed
	e.base.Steps = experiments.BenchSteps
	e.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	e.fs.SetOutput(stderr)
	e.fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		e.fs.PrintDefaults()
	}
	e.pf = newParamFlags(e.fs)
	e.models.register(e.fs)
	e.pf.str("prompt", e.base.Prompt, "prompt", func(p *build.Params, v string) { p.Prompt = v })
	return e
}

// parse parses args. stop reports that the command ends with exit code: 0 after -help, 2 after
// a bad flag (the flag package has printed why). err is a usage error for a stray argument.
func (e *experimentFlags) parse(args []string) (code int, stop bool, err error) {
	if err := e.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true, nil
		}
		return 2, true, nil
	}
	if e.fs.NArg() > 0 {
		return 0, false, usageError{fmt.Errorf("unexpected argument %q (all inputs are flags)", e.fs.Arg(0))}
	}
	return 0, false, nil
}
