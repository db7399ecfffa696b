package experiments

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/workflows/build"
)

// BenchMethods are the DyPE methods of the matrix, in the original tool's order.
var BenchMethods = []string{"vision_yarn", "yarn", "ntk"}

// BenchPrompt, BenchSeed and BenchSteps are the original test script's prompt and settings.
const (
	BenchPrompt = "Homer Simpson eating a donut"
	BenchSeed   = 42
	BenchSteps  = 9
)

// BenchOptions configure a resolution × method matrix.
type BenchOptions struct {
	// Base is every run's settings (models, prompt, seed, steps, shift, sampler, tiles); size,
	// DyPE switch and method, multipass and file prefix are set per run.
	Base        build.Params
	Resolutions []Resolution
	Methods     []string
	// MultipassOnly runs only the multipass generation at the largest resolution.
	MultipassOnly bool
	// NoMultipass leaves the multipass run out.
	NoMultipass bool
	// OutputDir receives every file; the runner's output folder must be this folder.
	OutputDir string
}

// BenchRow is one image of the matrix (one line of results.csv).
type BenchRow struct {
	Resolution Resolution
	// Method is "baseline" for the run without DyPE, else the DyPE method.
	Method    string
	DyPE      bool
	Multipass bool
	// Seconds is the generation time without model loading; PeakBytes the peak resident memory.
	Seconds   float64
	PeakBytes int64
	// Image is the image's path (OutputDir joined with its file name).
	Image string
	Seed  uint64
}

// Label is the summary's name for the row: "Baseline", the method, or "<method> (multipass)".
func (r BenchRow) Label() string {
	switch {
	case r.Multipass:
		return r.Method + " (multipass)"
	case !r.DyPE:
		return "Baseline"
	}
	return r.Method
}

// GridLabel is the comparison grid's caption.
func (r BenchRow) GridLabel() string {
	switch {
	case r.Multipass:
		return fmt.Sprintf("Multipass\n%.1fs", r.Seconds)
	case !r.DyPE:
		return fmt.Sprintf("Baseline\n%.1fs", r.Seconds)
	}
	return fmt.Sprintf("DyPE %s\n%.1fs", r.Method, r.Seconds)
}

// benchRun is one planned generation.
type benchRun struct {
	row    BenchRow
	params build.Params
	file   string
}

// planBench lists the runs: per resolution the baseline then each method; the multipass run
// (twopass with the first method) at the largest resolution.
func planBench(opt BenchOptions) ([]benchRun, error) {
	if len(opt.Resolutions) == 0 {
		return nil, errors.New("bench: no resolutions")
	}
	if len(opt.Methods) == 0 {
		return nil, errors.New("bench: no methods")
	}
	for _, m := range opt.Methods {
		if !slices.Contains([]string{"vision_yarn", "yarn", "ntk", "base"}, m) {
			return nil, fmt.Errorf("bench: unknown method %q (want vision_yarn, yarn, ntk or base)", m)
		}
	}
	var runs []benchRun
	add := func(res Resolution, method string, dypeOn, multipass bool) error {
		p := opt.Base
		p.Width, p.Height = res.Width, res.Height
		p.DyPE.Enabled = dypeOn
		if dypeOn {
			p.DyPE.Method = method
		}
		name := res.Label + "_baseline"
		switch {
		case multipass:
			p.Multipass = build.TwoPass
			name = res.Label + "_multipass"
		case dypeOn:
			name = res.Label + "_dype_" + method
		}
		p.FilenamePrefix = name
		if err := p.Validate(); err != nil {
			return fmt.Errorf("bench: %s: %w", name, err)
		}
		runs = append(runs, benchRun{
			row:    BenchRow{Resolution: res, Method: method, DyPE: dypeOn, Multipass: multipass, Seed: p.Seed},
			params: p, file: name + ".png",
		})
		return nil
	}
	largest := opt.Resolutions[0]
	for _, r := range opt.Resolutions {
		if r.Width*r.Height > largest.Width*largest.Height {
			largest = r
		}
	}
	if !opt.MultipassOnly {
		for _, res := range opt.Resolutions {
			if err := add(res, "baseline", false, false); err != nil {
				return nil, err
			}
			for _, m := range opt.Methods {
				if err := add(res, m, true, false); err != nil {
					return nil, err
				}
			}
		}
	}
	if opt.MultipassOnly || !opt.NoMultipass {
		if err := add(largest, opt.Methods[0], true, true); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

// BenchCount returns how many images opt makes, or an error for an impossible plan.
func BenchCount(opt BenchOptions) (int, error) {
	runs, err := planBench(opt)
	return len(runs), err
}

// RunBench generates the matrix with r (whose output folder must be opt.OutputDir), calling
// onRow after each image, and writes results.csv, summary.txt and one {res}_comparison.png per
// resolution. On error or interruption the rows done so far are returned and their files kept.
func RunBench(ctx context.Context, r *Runner, opt BenchOptions, now time.Time, onRow func(i, n int, row BenchRow)) ([]BenchRow, error) {
	runs, err := planBench(opt)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var rows []BenchRow
	for i, run := range runs {
		prompt, err := build.Build(run.params)
		if err != nil {
			return rows, fmt.Errorf("bench: %s: %w", run.file, err)
		}
		res, err := r.Run(ctx, prompt)
		if err != nil {
			return rows, fmt.Errorf("bench: %s: %w", run.file, err)
		}
		dst := filepath.Join(opt.OutputDir, run.file)
		if err := moveLast(res.Images, dst); err != nil {
			return rows, fmt.Errorf("bench: %s: %w", run.file, err)
		}
		row := run.row
		row.Seconds = res.Generation().Seconds()
		row.PeakBytes = res.PeakRSS
		row.Image = dst
		rows = append(rows, row)
		if onRow != nil {
			onRow(i+1, len(runs), row)
		}
	}
	if err := writeBenchFiles(opt.OutputDir, rows, now); err != nil {
		return rows, err
	}
	return rows, nil
}

// moveLast renames the last image a run saved to dst.
func moveLast(images []string, dst string) error {
	if len(images) == 0 {
		return errors.New("the workflow saved no image (was it answered from the cache?)")
	}
	src := images[len(images)-1]
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("move %s to %s: %w", src, dst, err)
	}
	return nil
}

// writeBenchFiles writes results.csv, summary.txt and the comparison grids.
func writeBenchFiles(dir string, rows []BenchRow, now time.Time) error {
	if err := WriteBenchCSV(filepath.Join(dir, "results.csv"), rows); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(BenchSummary(rows, now)), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	byRes := map[string][]BenchRow{}
	var order []string
	for _, row := range rows {
		if _, ok := byRes[row.Resolution.Label]; !ok {
			order = append(order, row.Resolution.Label)
		}
		byRes[row.Resolution.Label] = append(byRes[row.Resolution.Label], row)
	}
	for _, label := range order {
		var cells []Cell
		for _, row := range byRes[label] {
			img, err := readImage(row.Image)
			if err != nil {
				return fmt.Errorf("bench: comparison grid: %w", err)
			}
			cells = append(cells, Cell{Image: img, Label: row.GridLabel()})
		}
		grid, err := Grid(cells, 3)
		if err != nil {
			return fmt.Errorf("bench: comparison grid %s: %w", label, err)
		}
		if err := WritePNG(filepath.Join(dir, label+"_comparison.png"), grid); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// WriteBenchCSV writes results.csv: resolution, method, dype_enabled, multipass,
// generation_time (s, 2 decimals), peak_memory_gb (2 decimals), image_path, seed.
func WriteBenchCSV(path string, rows []BenchRow) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"resolution", "method", "dype_enabled", "multipass", "generation_time", "peak_memory_gb", "image_path", "seed"})
	for _, r := range rows {
		_ = w.Write([]string{r.Resolution.Label, r.Method, pyBool(r.DyPE), pyBool(r.Multipass),
			strconv.FormatFloat(r.Seconds, 'f', 2, 64), strconv.FormatFloat(gb(r.PeakBytes), 'f', 2, 64),
			r.Image, strconv.FormatUint(r.Seed, 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("bench: results.csv: %w", err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func gb(bytes int64) float64 { return float64(bytes) / (1 << 30) }

// benchNotes describes each method in summary.txt.
var benchNotes = []string{
	"Baseline: plain Z-Image RoPE (no DyPE); expect repetition and broken structure above 1K.",
	"vision_yarn: DyPE with per-axis YaRN-style interpolation, the recommended method.",
	"yarn: DyPE with YaRN (isotropic unless anisotropic is set).",
	"ntk: DyPE with NTK-aware base scaling.",
	"base: ComfyUI-DyPE's static NTK.",
	"multipass: txt2img at half size, upscale, then img2img at full size with DyPE.",
	"Times exclude model loading; memory is the process's peak resident set size (CPU).",
}

// BenchSummary renders summary.txt: a title, the time, then per resolution (in lexicographic
// order of the labels, as the original tool) one line per image with its time and peak memory,
// and notes on the methods.
func BenchSummary(rows []BenchRow, now time.Time) string {
	var b strings.Builder
	b.WriteString("DyPE Test Results\n")
	fmt.Fprintf(&b, "Generated: %s\n", now.Format("2006-01-02 15:04:05"))
	b.WriteString(strings.Repeat("=", 80) + "\n")
	labels := map[string]bool{}
	for _, r := range rows {
		labels[r.Resolution.Label] = true
	}
	sorted := make([]string, 0, len(labels))
	for l := range labels {
		sorted = append(sorted, l)
	}
	slices.Sort(sorted)
	for _, l := range sorted {
		fmt.Fprintf(&b, "\n%s\n", l)
		b.WriteString(strings.Repeat("-", 80) + "\n")
		for _, r := range rows {
			if r.Resolution.Label == l {
				fmt.Fprintf(&b, "  %-20s: %6.1fs, RSS: %5.2f GB\n", r.Label(), r.Seconds, gb(r.PeakBytes))
			}
		}
	}
	b.WriteString("\nNotes:\n")
	for _, n := range benchNotes {
		b.WriteString("  - " + n + "\n")
	}
	return b.String()
}
