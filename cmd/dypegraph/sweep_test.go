package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSweepDype(t *testing.T) {
	models := fixtureModels(t)
	out := filepath.Join(t.TempDir(), "sweep")
	var stdout, stderr bytes.Buffer
	code := sweepDype(context.Background(), []string{"--model-path", models, "--resolution", "128", "--scales", "1,2",
		"--exponents", "0.5", "--steps", "2", "--output", out}, &stdout, &stderr, fixedNow)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	run := filepath.Join(out, "20250607_080910")
	for _, f := range []string{"baseline.png", "dype_s1.0_e0.5.png", "dype_s2.0_e0.5.png", "sweep_results.csv", "sweep_grid.png"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(run, "sweep_results.csv"))
	if !strings.HasPrefix(string(csv), "scale,exponent,output_file,generation_time\n1.0,0.5,dype_s1.0_e0.5.png,") {
		t.Errorf("sweep_results.csv:\n%s", csv)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--resolution", "100"}, "--resolution:"},
		{[]string{"--resolution", "1K,2K"}, "--resolution takes one size"},
		{[]string{"--scales", "1,x"}, `--scales: "x" is not a number`},
		{[]string{"--exponents", "1,1"}, "--exponents: 1 is listed twice"},
		{[]string{"--scales", "9"}, "scale 9, exponent 1: DyPE scale 9"},
		{[]string{"--method", "pi"}, `DyPE method "pi"`},
		{[]string{"now"}, `unexpected argument "now"`},
	} {
		code, stdout, stderr := runCLI(append([]string{"sweep", "dype", "--model-path", models, "--output", t.TempDir()}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
	}
	if code, _, stderr := runCLI("sweep", "grid"); code != 2 || !strings.Contains(stderr, `unknown subcommand "grid"`) {
		t.Errorf("sweep grid: %d %s", code, stderr)
	}
	if code, _, _ := runCLI("sweep"); code != 2 {
		t.Errorf("sweep without a subcommand: %d", code)
	}
}
