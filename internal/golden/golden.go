// Package golden locates the upstream reference outputs that numeric tests compare against.
//
// It owns one thing: resolving the golden directory (env GOLDEN_DIR, else shared/golden beside
// the repository root, found from the module root so it works from any package folder) and
// reading its manifest.json. It must not know about tensors or models: callers interpret cases.
package golden

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvVar names the environment variable that overrides the golden directory.
const EnvVar = "GOLDEN_DIR"

// ModuleRoot walks up from the working directory to the folder holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: no go.mod found above the working directory")
		}
		dir = parent
	}
}

// SharedDir returns the shared/ folder beside the repository root (../shared from the module
// root), where golden files, DyPE vectors and the tokenizer live.
func SharedDir() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(root), "shared"), nil
}

// Dir returns the golden directory: $GOLDEN_DIR when set, else shared/golden beside the
// repository root. It does not check that the folder exists.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		return filepath.Abs(d)
	}
	shared, err := SharedDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(shared, "golden"), nil
}

// Manifest is the parsed manifest.json: Cases maps a case name to its raw JSON description;
// Top holds every other top-level key (configs, file hashes) raw.
type Manifest struct {
	Dir   string
	Cases map[string]json.RawMessage
	Top   map[string]json.RawMessage
}

// Load reads dir/manifest.json.
func Load(dir string) (*Manifest, error) {
	path := filepath.Join(dir, "manifest.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("golden manifest: %w (set %s to a golden directory)", err, EnvVar)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("golden manifest %s: %w", path, err)
	}
	m := &Manifest{Dir: dir, Top: top, Cases: map[string]json.RawMessage{}}
	if raw, ok := top["cases"]; ok {
		if err := json.Unmarshal(raw, &m.Cases); err != nil {
			return nil, fmt.Errorf("golden manifest %s: cases: %w", path, err)
		}
	}
	return m, nil
}

// TB is the subset of testing.TB the helpers need (kept small so this package does not import
// testing into non-test binaries).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// MustLoad resolves the golden directory and loads its manifest, failing the test when absent.
func MustLoad(t TB) *Manifest {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatalf("golden dir: %v", err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return m
}

// Path joins a file name from the manifest with the golden directory.
func (m *Manifest) Path(name string) string { return filepath.Join(m.Dir, name) }
