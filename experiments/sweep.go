package experiments

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// SweepValues is the original sweep's grid of dype_scale and dype_exponent values, and
// QuickSweepValues its --quick subset.
var (
	SweepValues      = []float64{1, 1.5, 2, 2.5, 3}
	QuickSweepValues = []float64{1, 2, 3}
)

// SweepOptions configure a dype_scale × dype_exponent sweep.
type SweepOptions struct {
	// Base is every run's settings; the sweep sets DyPE on (its Method, vision_yarn by default),
	// dype_scale and dype_exponent, and the file prefix.
	Base      build.Params
	Scales    []float64
	Exponents []float64
	// OutputDir receives every file; the runner's output folder must be this folder.
	OutputDir string
}

// SweepRow is one DyPE image of the sweep (one line of sweep_results.csv).
type SweepRow struct {
	Scale, Exponent float64
	File            string // file name inside OutputDir
	Seconds         float64
}

// SweepFileName is the original script's name for one image: dype_s{scale}_e{exponent}.png with
// Python's float formatting (dype_s1.0_e2.5.png).
func SweepFileName(scale, exponent float64) string {
	return "dype_s" + ojson.FormatFloat(scale) + "_e" + ojson.FormatFloat(exponent) + ".png"
}

// SweepCount returns how many images opt makes (the baseline included).
func SweepCount(opt SweepOptions) int { return 1 + len(opt.Scales)*len(opt.Exponents) }

// RunSweep generates baseline.png (DyPE off) and one image per (scale, exponent), calling
// onImage after each, and writes sweep_results.csv (scale, exponent, output_file,
// generation_time; the baseline is not listed, as in the original) and sweep_grid.png (rows:
// scales, columns: exponents). Rows done so far are returned on error.
func RunSweep(ctx context.Context, r *Runner, opt SweepOptions, onImage func(i, n int, file string, seconds float64)) ([]SweepRow, error) {
	if len(opt.Scales) == 0 || len(opt.Exponents) == 0 {
		return nil, errors.New("sweep: no scales or exponents")
	}
	if err := os.MkdirAll(opt.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	n := SweepCount(opt)
	gen := func(p build.Params, file string) (float64, error) {
		p.FilenamePrefix = strings.TrimSuffix(file, ".png")
		prompt, err := build.Build(p)
		if err != nil {
			return 0, fmt.Errorf("sweep: %s: %w", file, err)
		}
		res, err := r.Run(ctx, prompt)
		if err != nil {
			return 0, fmt.Errorf("sweep: %s: %w", file, err)
		}
		if err := moveLast(res.Images, filepath.Join(opt.OutputDir, file)); err != nil {
			return 0, fmt.Errorf("sweep: %s: %w", file, err)
		}
		return res.Generation().Seconds(), nil
	}
	base := opt.Base
	base.DyPE.Enabled = false
	secs, err := gen(base, "baseline.png")
	if err != nil {
		return nil, err
	}
	if onImage != nil {
		onImage(1, n, "baseline.png", secs)
	}
	var rows []SweepRow
	for _, s := range opt.Scales {
		for _, e := range opt.Exponents {
			p := opt.Base
			p.DyPE.Enabled = true
			p.DyPE.Scale, p.DyPE.Exponent = s, e
			file := SweepFileName(s, e)
			secs, err := gen(p, file)
			if err != nil {
				return rows, err
			}
			rows = append(rows, SweepRow{Scale: s, Exponent: e, File: file, Seconds: secs})
			if onImage != nil {
				onImage(len(rows)+1, n, file, secs)
			}
		}
	}
	if err := WriteSweepCSV(filepath.Join(opt.OutputDir, "sweep_results.csv"), rows); err != nil {
		return rows, err
	}
	var cells []Cell
	for _, row := range rows {
		img, err := readImage(filepath.Join(opt.OutputDir, row.File))
		if err != nil {
			return rows, fmt.Errorf("sweep: grid: %w", err)
		}
		cells = append(cells, Cell{Image: img, Label: fmt.Sprintf("scale %s, exp %s\n%.1fs",
			ojson.FormatFloat(row.Scale), ojson.FormatFloat(row.Exponent), row.Seconds)})
	}
	grid, err := Grid(cells, len(opt.Exponents))
	if err != nil {
		return rows, fmt.Errorf("sweep: grid: %w", err)
	}
	if err := WritePNG(filepath.Join(opt.OutputDir, "sweep_grid.png"), grid); err != nil {
		return rows, fmt.Errorf("sweep: %w", err)
	}
	return rows, nil
}

// WriteSweepCSV writes sweep_results.csv: scale, exponent, output_file, generation_time.
func WriteSweepCSV(path string, rows []SweepRow) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"scale", "exponent", "output_file", "generation_time"})
	for _, r := range rows {
		_ = w.Write([]string{ojson.FormatFloat(r.Scale), ojson.FormatFloat(r.Exponent), r.File,
			strconv.FormatFloat(r.Seconds, 'f', 2, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("sweep: sweep_results.csv: %w", err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}
