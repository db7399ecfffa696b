package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/experiments"
	"github.com/dypegraph/dypegraph/workflows/build"
)

func init() {
	commands["sweep"] = command{summary: "parameter sweeps (sweep dype: dype_scale × dype_exponent grid)", run: runSweep}
}

// sweepSubcommands are the `dypegraph sweep` subcommands.
var sweepSubcommands = map[string]struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}{
	"dype": {summary: "images for every dype_scale × dype_exponent, sweep_results.csv and a grid", run: runSweepDype},
}

func runSweep(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		sweepUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := sweepSubcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dypegraph sweep: unknown subcommand %q\n\n", args[0])
		sweepUsage(stderr)
		return 2
	}
	return sub.run(args[1:], stdout, stderr)
}

func sweepUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: dypegraph sweep <subcommand> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	names := make([]string, 0, len(sweepSubcommands))
	for n := range sweepSubcommands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, sweepSubcommands[n].summary)
	}
}

const sweepDypeUsage = `usage: dypegraph sweep dype [flags]

The original DyPE parameter sweep: at one resolution, a baseline (no DyPE) and one image per
dype_scale × dype_exponent (vision_yarn unless --method), each built as a workflow and run by
the executor. Writes into OUTPUT/<timestamp>/:

  baseline.png, dype_s{scale}_e{exponent}.png (e.g. dype_s1.5_e2.0.png)
  sweep_results.csv   scale, exponent, output_file, generation_time (the baseline is not listed)
  sweep_grid.png      labelled grid, one row per scale

flags:
`

func runSweepDype(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	return sweepDype(ctx, args, stdout, stderr, time.Now)
}

func sweepDype(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dypegraph sweep dype: %v\n", err)
		return exitCodeOf(err)
	}
	usage := func(format string, a ...any) int { return fail(usageError{fmt.Errorf(format, a...)}) }

	ef := newExperimentFlags("sweep dype", sweepDypeUsage, stderr)
	fs, pf, d := ef.fs, ef.pf, ef.base
	resolution := fs.String("resolution", "2048", "size: 2048 (square), 2K or 2048x1024")
	quick := fs.Bool("quick", false, "scales and exponents {1, 2, 3} instead of {1, 1.5, 2, 2.5, 3}")
	scales := fs.String("scales", "", "comma-separated dype_scale values (overrides the default grid)")
	exponents := fs.String("exponents", "", "comma-separated dype_exponent values (overrides the default grid)")
	output := fs.String("output", filepath.Join("results", "dype_sweep"), "output folder (a timestamped folder is made inside)")
	pf.str("method", "vision_yarn", "DyPE method: vision_yarn, yarn, ntk or base", func(p *build.Params, v string) { p.DyPE.Method = v })
	pf.registerSampling(d)
	pf.registerDyPE(d, false, false, false)
	pf.registerVAE(d)
	if code, stop, err := ef.parse(args); stop {
		return code
	} else if err != nil {
		return fail(err)
	}
	res, err := experiments.ParseResolutions(*resolution)
	if err != nil {
		return usage("--resolution: %v", err)
	}
	if len(res) != 1 {
		return usage("--resolution takes one size, got %d", len(res))
	}
	values := experiments.SweepValues
	if *quick {
		values = experiments.QuickSweepValues
	}
	sv, err := parseFloatList(*scales, values)
	if err != nil {
		return usage("--scales: %v", err)
	}
	ev, err := parseFloatList(*exponents, values)
	if err != nil {
		return usage("--exponents: %v", err)
	}
	p := d
	p.DyPE.Method = "vision_yarn"
	pf.applySet(&p)
	p.Width, p.Height = res[0].Width, res[0].Height
	// Check every combination before generating anything.
	for _, s := range sv {
		for _, e := range ev {
			q := p
			q.DyPE.Enabled, q.DyPE.Scale, q.DyPE.Exponent = true, s, e
			if err := q.Validate(); err != nil {
				return usage("scale %v, exponent %v: %s", s, e, joinLines(err))
			}
		}
	}
	mods, err := ef.models.resolve()
	if err != nil {
		return usage("%s", joinLines(err))
	}
	defer mods.Close()
	p.DiT, p.TextEncoder, p.VAE = mods.DiT, mods.TextEncoder, mods.VAE
	opt := experiments.SweepOptions{Base: p, Scales: sv, Exponents: ev,
		OutputDir: filepath.Join(absOrSame(*output), now().Format("20060102_150405"))}
	if err := os.MkdirAll(opt.OutputDir, 0o755); err != nil {
		return fail(err)
	}
	runner := experiments.NewRunner(workEnv(mods, opt.OutputDir, ""))
	defer runner.Close()
	n := experiments.SweepCount(opt)
	fmt.Fprintf(stdout, "sweep dype: %s at %d×%d, %d images into %s\n", p.DyPE.Method, p.Width, p.Height, n, opt.OutputDir)
	rows, err := experiments.RunSweep(ctx, runner, opt, func(i, n int, file string, secs float64) {
		fmt.Fprintf(stdout, "[%d/%d] %-24s %7.2fs\n", i, n, file, secs)
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "dypegraph sweep dype: interrupted after %d DyPE images (kept in %s)\n", len(rows), opt.OutputDir)
			return 1
		}
		return fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(opt.OutputDir, "sweep_results.csv"), filepath.Join(opt.OutputDir, "sweep_grid.png"))
	return 0
}

// parseFloatList parses comma-separated numbers; "" gives def.
func parseFloatList(s string, def []float64) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(def), nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", strings.TrimSpace(f))
		}
		if slices.Contains(out, v) {
			return nil, fmt.Errorf("%v is listed twice", v)
		}
		out = append(out, v)
	}
	return out, nil
}
