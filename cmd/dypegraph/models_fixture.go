package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/dypegraph/dypegraph/models/fixture"
)

func init() {
	modelsCommands["fixture"] = modelsSubcommand{
		summary: "write a TEST FIXTURE: tiny random-weight Z-Image models in ComfyUI's layout (not a usable model)",
		run:     runModelsFixture,
	}
}

const modelsFixtureUsage = `usage: dypegraph models fixture [--seed N] DIR

Writes a TEST FIXTURE into DIR: tiny Z-Image-shaped models with seeded RANDOM weights in
ComfyUI's folder layout, under the official file names, so every workflow, 'generate', 'bench
dype' and 'sweep dype' runs on a CPU in seconds. The images they make are noise; they are for
tests, demos and smoke runs, never for real use. Every weights file carries
"dypegraph_fixture": "true" in its metadata, and existing files that are not fixtures are never
overwritten.

  DIR/diffusion_models/z_image_turbo_bf16.safetensors (+ .config.json)
  DIR/text_encoders/qwen_3_4b.safetensors (+ .config.json, .tokenizer.json)
  DIR/vae/ae.safetensors (+ .config.json)
  DIR/DYPEGRAPH_TEST_FIXTURE.txt

flags:
`

func runModelsFixture(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("models fixture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", fixture.DefaultSeed, "seed of the random weights (the same seed writes the same bytes)")
	fs.Usage = func() {
		fmt.Fprint(stderr, modelsFixtureUsage)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "dypegraph models fixture: want exactly one DIR, got %d arguments\n\n", len(positional))
		fs.Usage()
		return 2
	}
	if *seed == 0 {
		fmt.Fprintln(stderr, "dypegraph models fixture: --seed must not be 0")
		return 2
	}
	set, err := fixture.Write(positional[0], fixture.Options{Seed: *seed})
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph models fixture: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "TEST FIXTURE (random weights, not a usable model) written to %s:\n", set.Dir)
	for _, f := range set.Files {
		rel, err := filepath.Rel(set.Dir, f)
		if err != nil {
			rel = f
		}
		fmt.Fprintf(stdout, "  %s\n", rel)
	}
	fmt.Fprintf(stdout, "try: dypegraph generate --model-path %s --width 256 --height 256 --steps 2 \"a test\"\n", set.Dir)
	return 0
}
