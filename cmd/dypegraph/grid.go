package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dypegraph/dypegraph/experiments"
)

func init() {
	commands["grid"] = command{summary: "put a folder of images into one labelled grid PNG", run: runGrid}
}

const gridUsage = `usage: dypegraph grid --input DIR [--cols N] [--output FILE]

Lays every image at the top level of DIR (PNG, JPEG, GIF, WebP, BMP, TIFF; sorted by name) into
one PNG grid, each labelled with its file name. Cells are as large as the largest image.

flags:
`

func runGrid(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("grid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, gridUsage)
		fs.PrintDefaults()
	}
	input := fs.String("input", "", "folder of images (required)")
	cols := fs.Int("cols", 0, "images per row (0 = about square)")
	output := fs.String("output", "", "PNG to write (default DIR/grid.png)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dypegraph grid: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q (give the folder with --input)", fs.Arg(0))
	}
	if *input == "" {
		fmt.Fprintln(stderr, "dypegraph grid: --input DIR is required")
		fs.Usage()
		return 2
	}
	if *cols < 0 {
		return usage("--cols %d must not be negative", *cols)
	}
	if fi, err := os.Stat(*input); err != nil || !fi.IsDir() {
		return usage("--input %s is not a folder", *input)
	}
	out := *output
	if out == "" {
		out = filepath.Join(*input, "grid.png")
	}
	cells, err := experiments.LoadCells(*input, out)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph grid: %v\n", err)
		return 1
	}
	img, err := experiments.Grid(cells, *cols)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph grid: %v\n", err)
		return 1
	}
	if err := experiments.WritePNG(out, img); err != nil {
		fmt.Fprintf(stderr, "dypegraph grid: %v\n", err)
		return 1
	}
	b := img.Bounds()
	fmt.Fprintf(stdout, "wrote %s (%d images, %d×%d)\n", out, len(cells), b.Dx(), b.Dy())
	return 0
}
