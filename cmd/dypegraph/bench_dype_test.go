package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var fixedNow = func() time.Time { return time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC) }

func TestBenchDype(t *testing.T) {
	models := fixtureModels(t)
	out := filepath.Join(t.TempDir(), "results")
	var stdout, stderr bytes.Buffer
	code := benchDype(context.Background(), []string{"--model-path", models, "--resolutions", "64,128", "--method", "vision_yarn",
		"--steps", "2", "--dype-base-resolution", "256", "--output", out}, &stdout, &stderr, fixedNow)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	run := filepath.Join(out, "20250607_080910")
	for _, f := range []string{"64_square_baseline.png", "64_square_dype_vision_yarn.png", "128_square_baseline.png",
		"128_square_dype_vision_yarn.png", "128_square_multipass.png", "64_square_comparison.png", "128_square_comparison.png",
		"results.csv", "summary.txt"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(stdout.String(), "[5/5] 128_square") || !strings.Contains(stdout.String(), "peak RSS") {
		t.Errorf("stdout %s", stdout.String())
	}
	csv, _ := os.ReadFile(filepath.Join(run, "results.csv"))
	if strings.Count(string(csv), "\n") != 6 {
		t.Errorf("results.csv:\n%s", csv)
	}

	// Through the bench dispatcher, --multipass-only writes into OUTPUT itself.
	mp := filepath.Join(t.TempDir(), "mp")
	code, so, se := runCLI("bench", "dype", "--model-path", models, "--resolutions", "64", "--steps", "2", "--multipass-only", "--output", mp)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, so, se)
	}
	if _, err := os.Stat(filepath.Join(mp, "64_square_multipass.png")); err != nil {
		t.Fatal(err)
	}
}

func TestBenchDypeErrors(t *testing.T) {
	models := fixtureModels(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--resolutions", "1000"}, "--resolutions: resolution \"1000\": sides must be multiples of 16"},
		{[]string{"--quick", "--resolutions", "1K"}, "--quick and --resolutions together"},
		{[]string{"--method", "pi"}, `unknown method "pi"`},
		{[]string{"--steps", "0"}, "steps 0 must be 1 to 10000"},
		{[]string{"--prompt", " "}, "--prompt is empty"},
		{[]string{"--multipass-only", "--no-multipass"}, "choose one"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--model-path", "/nonexistent/models"}, "does not exist"},
		{[]string{"--resolutions", "9216", "--dype-scale", "0"}, "DyPE scale 0"},
	} {
		args := append([]string{"bench", "dype", "--model-path", models, "--output", t.TempDir()}, c.args...)
		code, stdout, stderr := runCLI(args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q", c.args, stdout)
		}
	}
}
