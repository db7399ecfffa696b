package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/fixture"
)

func TestModelsFixtureCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fx")
	code, stdout, stderr := runCLI("models", "fixture", "--seed", "3", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "TEST FIXTURE (random weights, not a usable model) written to ") ||
		!strings.Contains(stdout, "  diffusion_models/z_image_turbo_bf16.safetensors\n") ||
		!strings.Contains(stdout, "  text_encoders/qwen_3_4b.tokenizer.json\n") {
		t.Errorf("stdout %s", stdout)
	}
	ok, err := fixture.IsFixture(filepath.Join(dir, "vae", "ae.safetensors"))
	if err != nil || !ok {
		t.Fatalf("vae: %v %v", ok, err)
	}
	// The fixture drives generate.
	out := filepath.Join(t.TempDir(), "g.png")
	if code, _, stderr := runCLI("generate", "--model-path", dir, "--width", "64", "--height", "64", "--steps", "1", "--output", out, "x"); code != 0 {
		t.Fatalf("generate on the fixture: %d %s", code, stderr)
	}
	// Real files are never overwritten.
	real := filepath.Join(t.TempDir(), "real")
	if err := os.MkdirAll(filepath.Join(real, "vae"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "vae", "ae.safetensors"), []byte("12 GB of weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI("models", "fixture", real)
	if code != 1 || !strings.Contains(stderr, "refusing") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "want exactly one DIR, got 0"},
		{[]string{"a", "b"}, "want exactly one DIR, got 2"},
		{[]string{"--seed", "0", "a"}, "--seed must not be 0"},
		{[]string{"--seed", "x", "a"}, "invalid value"},
	} {
		code, _, stderr := runCLI(append([]string{"models", "fixture"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
	// inspect still works beside it.
	if code, stdout, _ := runCLI("models", "inspect", "--detect", filepath.Join(dir, "vae", "ae.safetensors")); code != 0 || !strings.Contains(stdout, `"dypegraph_fixture": "true"`) {
		t.Fatalf("inspect: %d %s", code, stdout)
	}
}
