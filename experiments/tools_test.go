package experiments

import (
	"context"
	"encoding/csv"
	"image"
	"image/color"
	"image/draw"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/nodes"
	"github.com/dypegraph/dypegraph/workflows/build"
)

// decodeSize returns an image file's size.
func decodeSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	return cfg.Width, cfg.Height, err
}

func TestParseResolutions(t *testing.T) {
	cases := []struct {
		in      string
		want    []Resolution
		wantErr string
	}{
		{DefaultResolutions, []Resolution{{"1K_square", 1024, 1024}, {"1.5K_square", 1536, 1536}, {"2K_square", 2048, 2048},
			{"3K_square", 3072, 3072}, {"4K_square", 4096, 4096}}, ""},
		{QuickResolutions, []Resolution{{"1K_square", 1024, 1024}, {"2K_square", 2048, 2048}}, ""},
		{"256, 384", []Resolution{{"256_square", 256, 256}, {"384_square", 384, 384}}, ""},
		{"2048x1024,0.25k", []Resolution{{"2048x1024", 2048, 1024}, {"0.25K_square", 256, 256}}, ""},
		{"1000", nil, "multiples of 16"},
		{"1.1K", nil, "whole number of pixels"},
		{"2Kx", nil, "WIDTHxHEIGHT"},
		{"2xK", nil, "want a size like"},
		{"abc", nil, "want a size like"},
		{"20x", nil, "WIDTHxHEIGHT"},
		{"256,,512", nil, "empty entry"},
		{"256,256", nil, "listed twice"},
		{"32K", nil, "up to 16384"},
		{"-1K", nil, "want a size like"},
		{"0", nil, "multiples of 16"},
	}
	for _, c := range cases {
		got, err := ParseResolutions(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func solid(w, h int, c color.Color) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
	return img
}

// darkPixels counts pixels darker than mid-grey in a rectangle.
func darkPixels(img *image.RGBA, r image.Rectangle) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if img.RGBAAt(x, y).R < 128 {
				n++
			}
		}
	}
	return n
}

func TestGrid(t *testing.T) {
	red := color.RGBA{255, 0, 0, 255}
	cells := []Cell{
		{solid(64, 48, red), "Baseline\n1.0s"},
		{solid(32, 32, red), "DyPE vision_yarn\n2.0s"},
		{solid(64, 48, red), "three"},
		{solid(64, 48, red), "four×"},
	}
	g, err := Grid(cells, 3)
	if err != nil {
		t.Fatal(err)
	}
	band := LabelScale(64) * (10 + glyphH*2 + 8)
	if g.Bounds().Dx() != 3*64 || g.Bounds().Dy() != 2*(48+band) {
		t.Fatalf("grid %v, band %d", g.Bounds(), band)
	}
	// Images are placed (centred) and labels drawn under them; empty cells stay white.
	if c := g.RGBAAt(64+16, 10); c != red {
		t.Errorf("cell 2 image pixel %v", c)
	}
	if c := g.RGBAAt(64+2, 10); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("cell 2 margin %v, want white (the image is centred)", c)
	}
	for i := range cells {
		x0, y0 := (i%3)*64, (i/3)*(48+band)
		if n := darkPixels(g, image.Rect(x0, y0+48, x0+64, y0+48+band)); n < 10 {
			t.Errorf("cell %d: label band has %d dark pixels", i, n)
		}
	}
	if n := darkPixels(g, image.Rect(128, 48+band, 192, 2*(48+band))); n != 0 {
		t.Errorf("empty cell has %d dark pixels", n)
	}
	// Default columns: about square.
	g2, err := Grid(cells, 0)
	if err != nil || g2.Bounds().Dx() != 2*64 {
		t.Fatalf("default columns: %v %v", g2.Bounds(), err)
	}
	if _, err := Grid(nil, 2); err == nil {
		t.Fatal("empty grid accepted")
	}
	if _, err := Grid([]Cell{{nil, "x"}}, 1); err == nil {
		t.Fatal("nil image accepted")
	}
	if LabelScale(4096) != 8 || LabelScale(100) != 1 {
		t.Errorf("label scales %d %d", LabelScale(4096), LabelScale(100))
	}
}

func TestLoadCells(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.png", "a.png"} {
		if err := WritePNG(filepath.Join(dir, name), solid(8, 8, color.Black)); err != nil {
			t.Fatal(err)
		}
	}
	writeText(t, filepath.Join(dir, "notes.txt"), "x")
	writeText(t, filepath.Join(dir, ".hidden.png"), "x")
	cells, err := LoadCells(dir, filepath.Join(dir, "b.png"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 1 || cells[0].Label != "a.png" {
		t.Fatalf("cells %v", cells)
	}
	writeText(t, filepath.Join(dir, "c.png"), "not a png")
	if _, err := LoadCells(dir); err == nil || !strings.Contains(err.Error(), "c.png: not a readable image") {
		t.Fatalf("error %v", err)
	}
	if _, err := LoadCells(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Fatalf("error %v", err)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestRunBench runs a 2-resolution, 2-method matrix on the fixture and checks every file.
func TestRunBench(t *testing.T) {
	env := fixtureEnv(t)
	r := NewRunner(env)
	defer r.Close()
	res, err := ParseResolutions("128,256")
	if err != nil {
		t.Fatal(err)
	}
	base := small(nil)
	base.DyPE.BaseResolution = 256 // so DyPE extrapolates at 256² … and is plain at 128²
	opt := BenchOptions{Base: base, Resolutions: res, Methods: []string{"vision_yarn", "ntk"}, OutputDir: env.OutputDir}
	if n, err := BenchCount(opt); err != nil || n != 7 {
		t.Fatalf("count %d, %v", n, err)
	}
	var seen int
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rows, err := RunBench(context.Background(), r, opt, now, func(i, n int, row BenchRow) {
		seen++
		if i != seen || n != 7 {
			t.Errorf("callback %d/%d", i, n)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, name := range []string{"128_square_baseline.png", "128_square_dype_vision_yarn.png", "128_square_dype_ntk.png",
		"256_square_baseline.png", "256_square_dype_vision_yarn.png", "256_square_dype_ntk.png", "256_square_multipass.png"} {
		w, h, err := decodeSize(filepath.Join(env.OutputDir, name))
		if err != nil || w != h || (w != 128 && w != 256) || !strings.HasPrefix(name, map[int]string{128: "128", 256: "256"}[w]) {
			t.Errorf("%s: %dx%d %v", name, w, h, err)
		}
	}
	csvRows := readCSV(t, filepath.Join(env.OutputDir, "results.csv"))
	if !reflect.DeepEqual(csvRows[0], []string{"resolution", "method", "dype_enabled", "multipass", "generation_time", "peak_memory_gb", "image_path", "seed"}) {
		t.Fatalf("header %v", csvRows[0])
	}
	if len(csvRows) != 8 {
		t.Fatalf("%d CSV lines", len(csvRows))
	}
	want := [][]string{
		{"128_square", "baseline", "False", "False"}, {"128_square", "vision_yarn", "True", "False"}, {"128_square", "ntk", "True", "False"},
		{"256_square", "baseline", "False", "False"}, {"256_square", "vision_yarn", "True", "False"}, {"256_square", "ntk", "True", "False"},
		{"256_square", "vision_yarn", "True", "True"},
	}
	for i, w := range want {
		row := csvRows[i+1]
		if !reflect.DeepEqual(row[:4], w) || row[7] != "42" || !strings.HasSuffix(row[6], ".png") {
			t.Errorf("row %d: %v, want %v…", i, row, w)
		}
		if _, err := os.Stat(row[6]); err != nil {
			t.Errorf("row %d image: %v", i, err)
		}
	}
	summary, err := os.ReadFile(filepath.Join(env.OutputDir, "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(summary)
	for _, part := range []string{"DyPE Test Results\n", "Generated: 2025-01-02 03:04:05\n", strings.Repeat("=", 80),
		"\n128_square\n" + strings.Repeat("-", 80) + "\n  Baseline            :", "  vision_yarn (multipass):", "Notes:"} {
		if !strings.Contains(s, part) {
			t.Errorf("summary lacks %q:\n%s", part, s)
		}
	}
	for _, res := range []string{"128_square", "256_square"} {
		w, h, err := decodeSize(filepath.Join(env.OutputDir, res+"_comparison.png"))
		size := map[string]int{"128_square": 128, "256_square": 256}[res]
		cells := map[string]int{"128_square": 3, "256_square": 4}[res]
		rowsN := (cells + 2) / 3
		if err != nil || w != 3*size || h <= rowsN*size {
			t.Errorf("%s comparison %dx%d %v", res, w, h, err)
		}
	}

	// Multipass only: one image at the largest resolution.
	opt.MultipassOnly = true
	opt.OutputDir = filepath.Join(env.OutputDir, "mp")
	r2 := NewRunner(workEnvFor(env, opt.OutputDir))
	defer r2.Close()
	rows, err = RunBench(context.Background(), r2, opt, now, nil)
	if err != nil || len(rows) != 1 || !rows[0].Multipass || rows[0].Resolution.Width != 256 {
		t.Fatalf("multipass only: %+v %v", rows, err)
	}
}

func workEnvFor(env nodes.Env, out string) nodes.Env {
	env.OutputDir = out
	return env
}

func TestBenchPlanErrors(t *testing.T) {
	res, _ := ParseResolutions("256")
	for name, opt := range map[string]BenchOptions{
		"no resolutions": {Base: small(nil), Methods: BenchMethods},
		"no methods":     {Base: small(nil), Resolutions: res},
		"bad method":     {Base: small(nil), Resolutions: res, Methods: []string{"pi"}},
		"bad base":       {Base: small(func(p *build.Params) { p.Steps = 0 }), Resolutions: res, Methods: BenchMethods},
	} {
		if _, err := BenchCount(opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBenchSummaryOrder(t *testing.T) {
	rows := []BenchRow{
		{Resolution: Resolution{Label: "1K_square"}, Method: "baseline", Seconds: 1.25, PeakBytes: 1 << 30},
		{Resolution: Resolution{Label: "1.5K_square"}, Method: "ntk", DyPE: true, Seconds: 12.5, PeakBytes: 3 << 29},
	}
	s := BenchSummary(rows, time.Unix(0, 0).UTC())
	if strings.Index(s, "1.5K_square") > strings.Index(s, "\n1K_square") {
		t.Fatalf("resolutions not in lexicographic order:\n%s", s)
	}
	if !strings.Contains(s, "  Baseline            :    1.2s, RSS:  1.00 GB\n") && !strings.Contains(s, "  Baseline            :    1.3s, RSS:  1.00 GB\n") {
		t.Fatalf("baseline line:\n%s", s)
	}
	if !strings.Contains(s, "  ntk                 :   12.5s, RSS:  1.50 GB\n") {
		t.Fatalf("ntk line:\n%s", s)
	}
}

func TestRunSweep(t *testing.T) {
	env := fixtureEnv(t)
	r := NewRunner(env)
	defer r.Close()
	base := small(nil)
	base.DyPE.Method = "vision_yarn"
	base.DyPE.BaseResolution = 256
	base.DyPE.Mode = "comfy" // ComfyUI-DyPE's positions change the image at any size
	base.Width, base.Height = 256, 256
	opt := SweepOptions{Base: base, Scales: []float64{1, 2.5}, Exponents: []float64{2}, OutputDir: env.OutputDir}
	var files []string
	rows, err := RunSweep(context.Background(), r, opt, func(i, n int, file string, secs float64) {
		files = append(files, file)
		if n != 3 {
			t.Errorf("n = %d", n)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []string{"baseline.png", "dype_s1.0_e2.0.png", "dype_s2.5_e2.0.png"}) {
		t.Fatalf("files %v", files)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %v", rows)
	}
	for _, f := range append(files, "sweep_grid.png") {
		if _, _, err := decodeSize(filepath.Join(env.OutputDir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	csvRows := readCSV(t, filepath.Join(env.OutputDir, "sweep_results.csv"))
	if !reflect.DeepEqual(csvRows[0], []string{"scale", "exponent", "output_file", "generation_time"}) || len(csvRows) != 3 ||
		!reflect.DeepEqual(csvRows[2][:3], []string{"2.5", "2.0", "dype_s2.5_e2.0.png"}) {
		t.Fatalf("csv %v", csvRows)
	}
	// DyPE changes the image: the baseline and a DyPE image differ.
	a, _ := os.ReadFile(filepath.Join(env.OutputDir, "baseline.png"))
	b, _ := os.ReadFile(filepath.Join(env.OutputDir, "dype_s2.5_e2.0.png"))
	if string(a) == string(b) {
		t.Fatal("DyPE (comfy mode) left the image unchanged")
	}
	if _, err := RunSweep(context.Background(), r, SweepOptions{Base: base, OutputDir: env.OutputDir}, nil); err == nil {
		t.Fatal("empty sweep accepted")
	}
	if SweepFileName(1, 2.5) != "dype_s1.0_e2.5.png" {
		t.Fatal(SweepFileName(1, 2.5))
	}
}
