package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/safetensors"
)

type inspectOut struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  map[string]struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"offsets"`
		File    string   `json:"file"`
	} `json:"tensors"`
	Detected *struct {
		Model   string         `json:"model"`
		Config  map[string]any `json:"config"`
		Missing []string       `json:"missing"`
		Sidecar string         `json:"sidecar"`
		Reason  string         `json:"reason"`
	} `json:"detected"`
}

func runInspect(t *testing.T, args ...string) (code int, out inspectOut, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runMain(append([]string{"models", "inspect"}, args...), &o, &e)
	if code == 0 {
		dec := json.NewDecoder(bytes.NewReader(o.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("output is not the inspect JSON: %v\n%s", err, o.String())
		}
	}
	return code, out, o.String(), e.String()
}

// goldenWeights lists the safetensors files the manifest names (its "files" table).
func goldenWeights(t *testing.T) (*golden.Manifest, []string) {
	m := golden.MustLoad(t)
	var files map[string]json.RawMessage
	if err := json.Unmarshal(m.Top["files"], &files); err != nil {
		t.Fatalf("manifest files: %v", err)
	}
	var names []string
	for name := range files {
		if strings.HasSuffix(name, ".safetensors") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatal("the manifest lists no safetensors file")
	}
	return m, names
}

func TestModelsInspectGolden(t *testing.T) {
	m, names := goldenWeights(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			path := m.Path(name)
			code, out, _, stderr := runInspect(t, path)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			f, err := safetensors.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if len(out.Tensors) != f.Len() {
				t.Fatalf("%d tensors printed, file has %d", len(out.Tensors), f.Len())
			}
			for _, info := range f.Tensors() {
				got, ok := out.Tensors[info.Name]
				if !ok {
					t.Fatalf("tensor %q not printed", info.Name)
				}
				if got.DType != string(info.DType) || len(got.Shape) != len(info.Shape) || got.Offsets != info.Offsets || got.File != "" {
					t.Errorf("%s: printed %+v, header says %s %v %v", info.Name, got, info.DType, info.Shape, info.Offsets)
				}
				for i := range info.Shape {
					if got.Shape[i] != info.Shape[i] {
						t.Errorf("%s: shape %v, want %v", info.Name, got.Shape, info.Shape)
					}
				}
			}
			if len(out.Metadata) != len(f.Metadata()) {
				t.Errorf("metadata %v, want %v", out.Metadata, f.Metadata())
			}
			if out.Detected != nil {
				t.Error("detected printed without --detect")
			}
		})
	}
}

func TestModelsInspectDetect(t *testing.T) {
	m, names := goldenWeights(t)
	withSidecar := 0
	for _, name := range names {
		path := m.Path(name)
		sc := detect.SidecarPath(path)
		cfg, err := detect.ReadSidecar(sc)
		if err != nil {
			continue // only the weights files have sidecars
		}
		withSidecar++
		t.Run(name, func(t *testing.T) {
			// Flags may follow the file.
			code, out, _, stderr := runInspect(t, path, "--detect")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if out.Detected == nil {
				t.Fatal("no detected block")
			}
			if out.Detected.Model != cfg["model"] || out.Detected.Sidecar != sc || len(out.Detected.Missing) != 0 {
				t.Errorf("detected %+v, sidecar %s says %v", out.Detected, sc, cfg["model"])
			}
			for k, v := range cfg {
				if k == "model" {
					continue
				}
				want, _ := json.Marshal(v)
				got, _ := json.Marshal(out.Detected.Config[k])
				var a, b any
				json.Unmarshal(want, &a)
				json.Unmarshal(got, &b)
				if !jsonEqual(a, b) {
					t.Errorf("config %s = %s, sidecar %s", k, got, want)
				}
			}
		})
	}
	if withSidecar == 0 {
		t.Fatal("no golden weights file has a sidecar")
	}
	// Every other golden file gets a detected block too (input/output tensors: "unknown").
	for _, name := range names {
		code, out, _, stderr := runInspect(t, "--detect", m.Path(name))
		if code != 0 || out.Detected == nil {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		switch out.Detected.Model {
		case detect.ZImageDiT, detect.Qwen3, detect.FluxVAE:
		case detect.Unknown:
			if out.Detected.Reason == "" || len(out.Detected.Config) != 0 {
				t.Errorf("%s: unknown without a reason, or with a config: %+v", name, out.Detected)
			}
		default:
			t.Errorf("%s: model %q", name, out.Detected.Model)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestModelsInspectShardsAndUnknown(t *testing.T) {
	dir := t.TempDir()
	for i, names := range [][]string{{"a", "b"}, {"c"}} {
		entries := map[string]safetensors.Entry{}
		for _, n := range names {
			entries[n] = safetensors.Entry{DType: safetensors.I16, Shape: []int{3}, Data: make([]byte, 6)}
		}
		path := filepath.Join(dir, []string{"s1.safetensors", "s2.safetensors"}[i])
		if err := safetensors.WriteFile(path, entries, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _, stderr := runInspect(t, "--detect", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if len(out.Tensors) != 3 || out.Tensors["c"].File != "s2.safetensors" || out.Tensors["b"].Offsets != [2]int64{6, 12} {
		t.Errorf("tensors %+v", out.Tensors)
	}
	if out.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", out.Metadata)
	}
	if out.Detected == nil || out.Detected.Model != detect.Unknown || out.Detected.Reason == "" {
		t.Errorf("detected %+v", out.Detected)
	}
}

func TestModelsInspectErrors(t *testing.T) {
	m, names := goldenWeights(t)
	src, err := os.ReadFile(m.Path(names[0]))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badHeader := append([]byte{}, src...)
	copy(badHeader[8:], "[")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"truncated", []string{write("truncated.safetensors", src[:len(src)-1])}, 1, []string{"truncated.safetensors", "truncated file"}},
		{"truncated header", []string{"--detect", write("short.safetensors", src[:12])}, 1, []string{"short.safetensors", "truncated file"}},
		{"corrupt header", []string{write("corrupt.safetensors", badHeader)}, 1, []string{"corrupt.safetensors", "invalid header"}},
		{"empty file", []string{write("empty.safetensors", nil)}, 1, []string{"empty.safetensors", "0 bytes"}},
		{"not safetensors", []string{write("pickle.ckpt", []byte("PK\x03\x04 not a safetensors file at all"))}, 1, []string{"pickle.ckpt", "not a safetensors file?"}},
		{"missing file", []string{filepath.Join(dir, "nope.safetensors")}, 1, []string{"nope.safetensors"}},
		{"bad sidecar", []string{"--detect", write("side.safetensors", src)}, 1, []string{"side.config.json"}},
		{"no file", nil, 2, []string{"want exactly one FILE", "usage: dypegraph models inspect"}},
		{"two files", []string{"a", "b"}, 2, []string{"got 2 arguments"}},
		{"unknown flag", []string{"--frobnicate", "x"}, 2, []string{"frobnicate"}},
		{"help", []string{"-h"}, 0, []string{"usage: dypegraph models inspect", "-detect"}},
	}
	write("side.config.json", []byte("{not json"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			code := runMain(append([]string{"models", "inspect"}, tc.args...), &o, &e)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, e.String())
			}
			if o.Len() != 0 {
				t.Errorf("stdout not empty: %q", o.String())
			}
			for _, s := range tc.stderr {
				if !strings.Contains(e.String(), s) {
					t.Errorf("stderr %q does not contain %q", e.String(), s)
				}
			}
		})
	}
}

func TestModelsDispatcher(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"models"}, 2, "inspect"},
		{[]string{"models", "-h"}, 0, "subcommands:"},
		{[]string{"models", "frob"}, 2, `unknown subcommand "frob"`},
	}
	for _, tc := range cases {
		var o, e bytes.Buffer
		if code := runMain(tc.args, &o, &e); code != tc.code || !strings.Contains(e.String(), tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d containing %q", tc.args, code, e.String(), tc.code, tc.stderr)
		}
	}
	var o, e bytes.Buffer
	runMain([]string{"help"}, &o, &e)
	if !strings.Contains(e.String(), "models") {
		t.Errorf("top-level usage does not list models: %q", e.String())
	}
}
