package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/experiments"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// bench.go's dispatcher reads benchSubcommands, a package-level map, so `bench dype` registers
// itself here without editing that file.
func init() {
	benchSubcommands["dype"] = struct {
		summary string
		run     func(args []string, stdout, stderr io.Writer) int
	}{summary: "the DyPE test matrix: resolutions × methods, results.csv, summary.txt, comparison grids", run: runBenchDype}
}

const benchDypeUsage = `usage: dypegraph bench dype [flags]

The original DyPE test matrix, every image built as a workflow and run by the executor: per
resolution a baseline (no DyPE) and one image per DyPE method, plus a two-pass image (half size,
then img2img at full size with DyPE) at the largest resolution. Writes into OUTPUT/<timestamp>/
(OUTPUT itself with --multipass-only):

  {res}_baseline.png, {res}_dype_{method}.png, {res}_multipass.png
  {res}_comparison.png   labelled grid per resolution
  results.csv            resolution, method, dype_enabled, multipass, generation_time,
                         peak_memory_gb, image_path, seed
  summary.txt            time and peak memory per resolution and method

Times exclude model loading; memory is the peak resident set size of the process (CPU).

flags:
`

func runBenchDype(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	return benchDype(ctx, args, stdout, stderr, time.Now)
}

func benchDype(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dypegraph bench dype: %v\n", err)
		return exitCodeOf(err)
	}
	usage := func(format string, a ...any) int { return fail(usageError{fmt.Errorf(format, a...)}) }

	ef := newExperimentFlags("bench dype", benchDypeUsage, stderr)
	fs, pf, d := ef.fs, ef.pf, ef.base
	resolutions := fs.String("resolutions", experiments.DefaultResolutions, "sizes: 1K, 1.5K ... (square, 1K = 1024), 256 (square) or 2048x1024, comma-separated")
	quick := fs.Bool("quick", false, "only "+experiments.QuickResolutions)
	method := fs.String("method", "all", "DyPE method: vision_yarn, yarn, ntk, base or all ("+strings.Join(experiments.BenchMethods, ", ")+")")
	multipassOnly := fs.Bool("multipass-only", false, "only the multipass image at the largest resolution (written to OUTPUT itself)")
	noMultipass := fs.Bool("no-multipass", false, "leave the multipass image out")
	output := fs.String("output", filepath.Join("results", "dype_test"), "output folder (a timestamped folder is made inside)")
	pf.registerSampling(d)
	pf.registerDyPE(d, false, false, true)
	pf.registerVAE(d)
	pf.float("pass2-strength", d.Pass2Strength, "denoise of the multipass image's second pass", func(p *build.Params, v float64) { p.Pass2Strength = v })
	if code, stop, err := ef.parse(args); stop {
		return code
	} else if err != nil {
		return fail(err)
	}
	if *quick && flagGiven(fs, "resolutions") {
		return usage("--quick and --resolutions together: choose one")
	}
	if *multipassOnly && *noMultipass {
		return usage("--multipass-only and --no-multipass together: choose one")
	}
	resList := *resolutions
	if *quick {
		resList = experiments.QuickResolutions
	}
	res, err := experiments.ParseResolutions(resList)
	if err != nil {
		return usage("--resolutions: %v", err)
	}
	methods := experiments.BenchMethods
	if *method != "all" {
		methods = []string{*method}
	}
	p := d
	pf.applySet(&p)
	if strings.TrimSpace(p.Prompt) == "" {
		return usage("--prompt is empty")
	}

	mods, err := ef.models.resolve()
	if err != nil {
		return usage("%s", joinLines(err))
	}
	defer mods.Close()
	p.DiT, p.TextEncoder, p.VAE = mods.DiT, mods.TextEncoder, mods.VAE
	opt := experiments.BenchOptions{Base: p, Resolutions: res, Methods: methods, MultipassOnly: *multipassOnly, NoMultipass: *noMultipass}
	n, err := experiments.BenchCount(opt)
	if err != nil {
		return usage("%s", joinLines(err))
	}
	start := now()
	opt.OutputDir = absOrSame(*output)
	if !*multipassOnly {
		opt.OutputDir = filepath.Join(opt.OutputDir, start.Format("20060102_150405"))
	}
	if err := os.MkdirAll(opt.OutputDir, 0o755); err != nil {
		return fail(err)
	}
	runner := experiments.NewRunner(workEnv(mods, opt.OutputDir, ""))
	defer runner.Close()
	fmt.Fprintf(stdout, "bench dype: %d images into %s\n", n, opt.OutputDir)
	rows, err := experiments.RunBench(ctx, runner, opt, start, func(i, n int, row experiments.BenchRow) {
		fmt.Fprintf(stdout, "[%d/%d] %-12s %-24s %7.2fs  peak RSS %5.2f GB  %s\n", i, n, row.Resolution.Label, row.Label(),
			row.Seconds, float64(row.PeakBytes)/(1<<30), filepath.Base(row.Image))
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "dypegraph bench dype: interrupted after %d of %d images (kept in %s)\n", len(rows), n, opt.OutputDir)
			return 1
		}
		return fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %d comparison grids\n", filepath.Join(opt.OutputDir, "results.csv"),
		filepath.Join(opt.OutputDir, "summary.txt"), countResolutions(rows))
	return 0
}

func countResolutions(rows []experiments.BenchRow) int {
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Resolution.Label] = true
	}
	return len(seen)
}
