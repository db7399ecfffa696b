package golden

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirFromEnv(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv(EnvVar, tmp)
	got, err := Dir()
	if err != nil || got != tmp {
		t.Fatalf("Dir() = %q, %v; want %q", got, err, tmp)
	}
}

func TestDefaultDirIsBesideRepository(t *testing.T) {
	t.Setenv(EnvVar, "")
	got, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := ModuleRoot()
	if want := filepath.Join(filepath.Dir(root), "shared", "golden"); got != want {
		t.Fatalf("Dir() = %q, want %q", got, want)
	}
}

func TestLoadManifest(t *testing.T) {
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "manifest.json"), []byte(`{"set":"x","cases":{"a":{"what":"y"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) != 1 || m.Cases["a"] == nil || m.Top["set"] == nil {
		t.Fatalf("unexpected manifest %+v", m)
	}
	if _, err := Load(filepath.Join(tmp, "missing")); err == nil {
		t.Fatal("want error for a missing manifest")
	}
}
