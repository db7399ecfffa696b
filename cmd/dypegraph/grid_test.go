package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGridCommand(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"a.png", "b.png", "c.png"} {
		var b bytes.Buffer
		if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 40+10*i, 30))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCLI("grid", "--input", dir, "--cols", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out := filepath.Join(dir, "grid.png")
	if !strings.Contains(stdout, "wrote "+out+" (3 images, 120×") {
		t.Errorf("stdout %q", stdout)
	}
	// Running again skips its own output.
	code, stdout, _ = runCLI("grid", "--input", dir, "--cols", "3", "--output", out)
	if code != 0 || !strings.Contains(stdout, "(3 images, 180×") {
		t.Errorf("second run: %d %q", code, stdout)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil || cfg.Width != 180 {
		t.Fatalf("grid %v %v", cfg, err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "--input DIR is required"},
		{[]string{"--input", filepath.Join(dir, "none")}, 2, "is not a folder"},
		{[]string{"--input", dir, "--cols", "-1"}, 2, "--cols -1 must not be negative"},
		{[]string{"--input", dir, "x"}, 2, `unexpected argument "x"`},
		{[]string{"--input", t.TempDir()}, 1, "no images"},
	} {
		code, _, stderr := runCLI(append([]string{"grid"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
	}
}
