package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/dypegraph/dypegraph/dype"
)

func init() {
	commands["dype"] = command{summary: "DyPE tools: print the RoPE frequencies of a size and step (dype table)", run: runDype}
}

// dypeSubcommands are the `dypegraph dype` subcommands.
var dypeSubcommands = map[string]struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}{
	"table": {summary: "print per-axis ω, mscale and positions for one image size and σ as JSON", run: runDypeTable},
}

func runDype(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		dypeUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := dypeSubcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dypegraph dype: unknown subcommand %q\n\n", args[0])
		dypeUsage(stderr)
		return 2
	}
	return sub.run(args[1:], stdout, stderr)
}

func dypeUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: dypegraph dype <subcommand> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	for _, name := range []string{"table"} {
		fmt.Fprintf(w, "  %-10s %s\n", name, dypeSubcommands[name].summary)
	}
}

// dypeTableInputs echoes the resolved inputs.
type dypeTableInputs struct {
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	Sigma          float64 `json:"sigma"`
	Mode           string  `json:"mode"`
	Enabled        bool    `json:"enabled"`
	Method         string  `json:"method"`
	DypeScale      float64 `json:"dype_scale"`
	DypeExponent   float64 `json:"dype_exponent"`
	DypeStartSigma float64 `json:"dype_start_sigma"`
	BaseShift      float64 `json:"base_shift"`
	MaxShift       float64 `json:"max_shift"`
	BaseResolution int     `json:"base_resolution"`
	Anisotropic    bool    `json:"anisotropic"`
}

type dypeTableAxis struct {
	Axis      int       `json:"axis"`
	Dims      int       `json:"dims"`
	Omega     []float64 `json:"omega"`
	MScale    float64   `json:"mscale"`
	Positions []float64 `json:"positions,omitempty"`
}

type dypeTableOutput struct {
	Inputs     dypeTableInputs `json:"inputs"`
	MethodUsed string          `json:"method_used"`
	Dynamic    bool            `json:"dynamic"`
	SigmaUsed  float64         `json:"sigma_used"`
	Scale      float64         `json:"scale"`
	KT         float64         `json:"k_t"`
	ShiftMu    *float64        `json:"shift_mu"`
	Blend      float64         `json:"blend"`
	Axes       []dypeTableAxis `json:"axes"`
}

const dypeTableUsage = `usage: dypegraph dype table --width W --height H [--method M] [--sigma S] [flags]

Prints one JSON object: the inputs, the global scale, k_t = dype_scale·σ^dype_exponent, the
schedule shift μ (null when comfy mode sets none), and per RoPE axis of Z-Image (θ 256, dims
32/48/48) the per-lane angular frequency ω actually used, the amplitude mscale and, for the
spatial axes, the distinct image-token positions (rows, columns). Lane value = mscale·exp(i·p·ω).

flags:
`

func runDypeTable(args []string, stdout, stderr io.Writer) int {
	def := dype.DefaultConfig()
	fs := flag.NewFlagSet("dypegraph dype table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, dypeTableUsage)
		fs.PrintDefaults()
	}
	width := fs.Int("width", 1024, "image width in pixels (multiple of 16)")
	height := fs.Int("height", 1024, "image height in pixels (multiple of 16)")
	method := fs.String("method", string(def.Method), "vision_yarn, yarn, ntk or base (ComfyUI-DyPE's static NTK)")
	sigma := fs.Float64("sigma", 1.0, "noise level σ of the step, in [0, 1] (1 = pure noise)")
	scale := fs.Float64("dype-scale", def.DypeScale, "λs: k_t = λs·σ^λt (must be > 0)")
	exponent := fs.Float64("dype-exponent", def.DypeExponent, "λt (≥ 0)")
	startSigma := fs.Float64("start-sigma", def.DypeStartSigma, "dype_start_sigma, clamped to [0.001, 1]")
	baseRes := fs.Int("base-resolution", def.BaseResolution, "training resolution in pixels (base grid (R/8)/2 tokens)")
	baseShift := fs.Float64("base-shift", def.BaseShift, "noise-schedule μ at the base resolution")
	maxShift := fs.Float64("max-shift", def.MaxShift, "noise-schedule μ at the maximum resolution")
	aniso := fs.Bool("anisotropic", def.Anisotropic, "per-axis YaRN (yarn, llm_dit mode)")
	disabled := fs.Bool("disabled", false, "DyPE schedule off (upstream semantics: static NTK above the base grid; comfy: no μ)")
	mode := fs.String("mode", string(def.Mode), "position mode: llm_dit (integer grid) or comfy (ComfyUI-DyPE v2.3.0)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag already printed the error and usage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dypegraph dype table: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (all inputs are flags)", fs.Arg(0))
	}
	for _, side := range []struct {
		name string
		v    int
	}{{"width", *width}, {"height", *height}} {
		if side.v <= 0 || side.v%dype.PixelsPerToken != 0 || side.v > dype.MaxImageSide {
			return fail("--%s must be a positive multiple of %d up to %d pixels, got %d", side.name, dype.PixelsPerToken, dype.MaxImageSide, side.v)
		}
	}
	if !(*sigma >= 0 && *sigma <= 1) {
		return fail("--sigma must lie in [0, 1], got %v", *sigma)
	}
	m, err := dype.ParseMethod(*method)
	if err != nil {
		return fail("--method: %v", err)
	}
	md, err := dype.ParseMode(*mode)
	if err != nil {
		return fail("--mode: %v", err)
	}
	cfg := dype.Config{
		Enabled: !*disabled, Method: m, DypeScale: *scale, DypeExponent: *exponent,
		DypeStartSigma: *startSigma, BaseShift: *baseShift, MaxShift: *maxShift,
		BaseResolution: *baseRes, Anisotropic: *aniso, Mode: md,
	}.Normalized()
	if err := cfg.Validate(); err != nil {
		return fail("%s", dypeFlagNames(err.Error()))
	}
	r, err := dype.New(cfg, dype.ZImageRope(), dype.Geometry{Width: *width, Height: *height})
	if err != nil {
		return fail("%s", dypeFlagNames(err.Error()))
	}
	st, err := r.StepAt(*sigma)
	if err != nil {
		return fail("%v", err)
	}
	out := dypeTableOutput{
		Inputs: dypeTableInputs{
			Width: *width, Height: *height, Sigma: *sigma, Mode: string(cfg.Mode),
			Enabled: cfg.Enabled, Method: string(cfg.Method), DypeScale: cfg.DypeScale,
			DypeExponent: cfg.DypeExponent, DypeStartSigma: cfg.DypeStartSigma,
			BaseShift: cfg.BaseShift, MaxShift: cfg.MaxShift, BaseResolution: cfg.BaseResolution,
			Anisotropic: cfg.Anisotropic,
		},
		MethodUsed: string(st.Method), Dynamic: st.Dynamic, SigmaUsed: st.Sigma,
		Scale: st.Scale, KT: st.KT, Blend: st.Blend,
	}
	if mu, ok := r.ShiftMu(); ok {
		out.ShiftMu = &mu
	}
	for a := range st.Image {
		ax := &st.Image[a]
		row := dypeTableAxis{Axis: a, Dims: ax.Dims, Omega: ax.Omega, MScale: ax.MScale}
		if a > 0 {
			row.Positions = make([]float64, len(ax.Positions))
			for i, p := range ax.Positions {
				row.Positions[i] = ax.Position(p) // the position the lanes rotate by
			}
		}
		out.Axes = append(out.Axes, row)
	}
	data, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph dype table: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(append(data, '\n')); err != nil {
		fmt.Fprintf(stderr, "dypegraph dype table: write: %v\n", err)
		return 1
	}
	return 0
}

// dypeFlagNames appends the flag that sets each config field named in a validation error.
func dypeFlagNames(msg string) string {
	for field, flagName := range map[string]string{
		"dype_scale:": "--dype-scale", "dype_exponent:": "--dype-exponent",
		"dype_start_sigma:": "--start-sigma", "base_resolution:": "--base-resolution",
		"base_shift:": "--base-shift", "max_shift:": "--max-shift",
	} {
		if strings.Contains(msg, field) {
			return msg + " (flag " + flagName + ")"
		}
	}
	return msg
}
