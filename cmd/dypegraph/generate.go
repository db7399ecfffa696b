package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/experiments"
	"github.com/dypegraph/dypegraph/workflows/build"
)

func init() {
	commands["generate"] = command{summary: "make an image from a prompt with Z-Image Turbo (DyPE, tiled VAE, img2img, multipass)", run: runGenerate}
}

const generateUsage = `usage: dypegraph generate [flags] PROMPT

Builds a Z-Image Turbo workflow from the flags (UNETLoader, CLIPLoader, CLIPTextEncode,
EmptySD3LatentImage or LoadImage, DyPE_FLUX, ModelSamplingAuraFlow, KSampler, VAEDecode or
VAEDecodeTiled, SaveImage), validates it and runs it like any workflow. The PNG carries the
prompt and the workflow, so it opens in ComfyUI or 'dypegraph run'.

Precedence: built-in defaults < --config FILE --profile NAME (TOML) < flags on the command line.
Exit status: 0 written; 1 the run failed, was interrupted (Ctrl-C) or a device is unavailable;
2 bad arguments (nothing is written).

flags:
`

func runGenerate(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	return generate(ctx, args, stdout, stderr)
}

// generate is runGenerate with a caller's context (tests cancel it).
func generate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dypegraph generate: %v\n", err)
		return exitCodeOf(err)
	}
	usage := func(format string, a ...any) int {
		return fail(usageError{fmt.Errorf(format, a...)})
	}

	d := build.Defaults()
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, generateUsage)
		fs.PrintDefaults()
	}
	pf := newParamFlags(fs)
	var models modelFlags
	models.register(fs)
	pf.int("width", d.Width, "image width in pixels (multiple of 16)", func(p *build.Params, v int) { p.Width = v })
	pf.int("height", d.Height, "image height in pixels (multiple of 16)", func(p *build.Params, v int) { p.Height = v })
	pf.registerSampling(d)
	pf.registerDyPE(d, true, true, true)
	pf.registerVAE(d)
	img2img := fs.String("img2img", "", "start from this image (img2img); the size defaults to the image's, floored to multiples of 16")
	pf.float("strength", d.Strength, "img2img strength: how much of the image is re-generated (0 < x ≤ 1)", func(p *build.Params, v float64) { p.Strength = v })
	pf.str("multipass", d.Multipass, "single, twopass (half size, then full size img2img) or threepass (¼, ½ at 0.6, full)", func(p *build.Params, v string) { p.Multipass = v })
	pf.float("pass2-strength", d.Pass2Strength, "denoise of the last multipass pass (0 < x ≤ 1)", func(p *build.Params, v float64) { p.Pass2Strength = v })
	pf.str("upscale-model", "", "with --multipass: upscale the image between passes with this ESRGAN-family model from models/upscale_models (NAME)", func(p *build.Params, v string) { p.UpscaleModel = v })
	teDev := fs.String("text-encoder-device", "cpu", "device of the text encoder: cpu or cuda")
	ditDev := fs.String("dit-device", "cpu", "device of the diffusion model: cpu or cuda")
	vaeDev := fs.String("vae-device", "cpu", "device of the VAE: cpu or cuda")
	configFile := fs.String("config", "", "TOML config file with profiles ([NAME.generation], [NAME.dype], [NAME.pytorch] ...)")
	profile := fs.String("profile", "default", "profile of --config to use")
	output := fs.String("output", "output.png", "PNG file to write")
	saveWorkflow := fs.String("save-workflow", "", "also write the API-format workflow JSON to this file")
	var loras loraFlag
	fs.Var(&loras, "lora", "apply a LoRA from models/loras: NAME[:STRENGTH] (repeatable, applied in order; strength 1 by default)")

	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	prompt := strings.TrimSpace(strings.Join(positional, " "))
	if prompt == "" {
		fmt.Fprintln(stderr, "dypegraph generate: no PROMPT given (quote it: dypegraph generate \"a red fox in the snow\")")
		fs.Usage()
		return 2
	}

	// Defaults, then the profile, then the flags given.
	p := d
	p.Prompt = prompt
	sizeFromProfile := false
	teDevice, pipeDevice := *teDev, *ditDev
	vaeDevice := *vaeDev
	if flagGiven(fs, "profile") && *configFile == "" {
		return usage("--profile needs --config FILE")
	}
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return usage("--config: %v", err)
		}
		pr, err := build.LoadProfile(data, *profile)
		if err != nil {
			return usage("%s: %v", *configFile, err)
		}
		pr.Apply(&p)
		for _, k := range pr.Keys() {
			sizeFromProfile = sizeFromProfile || k == "generation.width" || k == "generation.height"
		}
		if pr.ModelPath != "" && !flagGiven(fs, "model-path") {
			models.path = pr.ModelPath
		}
		if pr.TextEncoderDevice != "" && !flagGiven(fs, "text-encoder-device") {
			teDevice = pr.TextEncoderDevice
		}
		if pr.PipelineDevice != "" {
			if !flagGiven(fs, "dit-device") {
				pipeDevice = pr.PipelineDevice
			}
			if !flagGiven(fs, "vae-device") {
				vaeDevice = pr.PipelineDevice
			}
		}
	}
	pf.applySet(&p)
	if len(loras) > 0 {
		p.LoRAs = append([]build.LoRA(nil), loras...)
	}

	backend, err := deviceBackend(teDevice, pipeDevice, vaeDevice)
	if err != nil {
		return fail(err)
	}

	// img2img: the input image's folder becomes the input folder; its size is the default size.
	inputDir := ""
	if *img2img != "" {
		abs := absOrSame(*img2img)
		w, h, err := imageFileSize(abs)
		if err != nil {
			return usage("--img2img: %v", err)
		}
		if !flagGiven(fs, "width") && !flagGiven(fs, "height") && !sizeFromProfile {
			p.Width, p.Height = w/build.SizeStep*build.SizeStep, h/build.SizeStep*build.SizeStep
			if p.Width < build.MinSize || p.Height < build.MinSize {
				return usage("--img2img: the image is %d×%d; it must be at least %d pixels on each side", w, h, build.MinSize)
			}
		}
		inputDir = filepath.Dir(abs)
		p.Image = filepath.Base(abs)
	}
	if err := p.Validate(); err != nil {
		return usage("%s", joinLines(err))
	}
	for _, n := range ignoredFlags(fs, p, *img2img != "") {
		fmt.Fprintf(stderr, "dypegraph generate: note: %s\n", n)
	}
	if fi, err := os.Stat(*output); err == nil && fi.IsDir() {
		return usage("--output %s is a folder; give a file name such as %s", *output, filepath.Join(*output, "image.png"))
	}

	mods, err := models.resolve()
	if err != nil {
		return usage("%s", joinLines(err))
	}
	defer mods.Close()
	p.DiT, p.TextEncoder, p.VAE = mods.DiT, mods.TextEncoder, mods.VAE
	p.FilenamePrefix = "generate"
	wf, err := build.Build(p)
	if err != nil {
		return usage("%s", joinLines(err))
	}

	out := absOrSame(*output)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fail(fmt.Errorf("--output: %w", err))
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".dypegraph-generate-*")
	if err != nil {
		return fail(fmt.Errorf("--output: %w", err))
	}
	defer os.RemoveAll(work)
	env := workEnv(mods, work, inputDir)
	env.Backend = backend
	runner := experiments.NewRunner(env)
	defer runner.Close()
	if _, _, err := runner.Validate(wf); err != nil {
		return fail(err)
	}
	if *saveWorkflow != "" {
		data, err := build.PrettyJSON(wf)
		if err == nil {
			err = os.WriteFile(*saveWorkflow, data, 0o644)
		}
		if err != nil {
			return fail(fmt.Errorf("--save-workflow: %w", err))
		}
	}

	prog := newProgressPrinter(stderr, writerIsTerminal(stderr))
	runner.OnNode = prog.node
	runner.OnProgress = prog.step
	start := time.Now()
	res, err := runner.Run(ctx, wf)
	prog.finish()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "dypegraph generate: interrupted; no image written")
			return 1
		}
		return fail(err)
	}
	if len(res.Images) == 0 {
		return fail(errors.New("the workflow saved no image"))
	}
	if err := os.Rename(res.Images[len(res.Images)-1], out); err != nil {
		return fail(fmt.Errorf("write %s: %w", out, err))
	}
	_ = os.Chmod(out, 0o644) // SaveImage writes through an owner-only temporary file
	fmt.Fprintf(stdout, "wrote %s (%d×%d, %s, model loading %s)\n", *output, p.Width, p.Height,
		formatSeconds(time.Since(start).Seconds()), formatSeconds(res.Loading.Seconds()))
	return 0
}

// ignoredFlags names the flags given on the command line that the other settings make
// meaningless (DyPE settings without DyPE, tiles without tiling ...), so that a forgotten switch
// is noticed.
func ignoredFlags(fs *flag.FlagSet, p build.Params, img2img bool) []string {
	var notes []string
	fs.Visit(func(f *flag.Flag) {
		switch {
		case strings.HasPrefix(f.Name, "dype-") && !p.DyPE.Enabled:
			notes = append(notes, fmt.Sprintf("--%s has no effect without --dype", f.Name))
		case (f.Name == "tile-size" || f.Name == "tile-overlap") && !p.TiledVAE:
			notes = append(notes, fmt.Sprintf("--%s has no effect without --tiled-vae", f.Name))
		case f.Name == "strength" && !img2img:
			notes = append(notes, "--strength has no effect without --img2img (for multipass use --pass2-strength)")
		case f.Name == "pass2-strength" && (p.Multipass == build.Single || p.Multipass == ""):
			notes = append(notes, "--pass2-strength has no effect without --multipass twopass or threepass")
		case f.Name == "negative-prompt" && p.CFG == 1:
			notes = append(notes, "--negative-prompt has no effect with --cfg 1 (no guidance)")
		}
	})
	return notes
}

// imageFileSize reads an image file's dimensions from its header.
func imageFileSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("%s is not a readable image (PNG, JPEG, WebP, GIF, BMP or TIFF): %w", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

// joinLines joins a multi-error into one line.
func joinLines(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// loraFlag collects repeated --lora NAME[:STRENGTH] flags.
type loraFlag []build.LoRA

func (l *loraFlag) String() string {
	parts := make([]string, len(*l))
	for i, x := range *l {
		parts[i] = fmt.Sprintf("%s:%g", x.Name, x.Strength)
	}
	return strings.Join(parts, ",")
}

func (l *loraFlag) Set(v string) error {
	x, err := build.ParseLoRA(v)
	if err != nil {
		return err
	}
	*l = append(*l, x)
	return nil
}
