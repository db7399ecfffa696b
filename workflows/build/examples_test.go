package build_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/dypegraph/dypegraph/workflows"
	"github.com/dypegraph/dypegraph/workflows/build"
)

var update = flag.Bool("update", false, "rewrite the bundled example workflows in workflows/ from build.Examples")

// TestExampleFilesAreBuilt keeps the bundled example files identical to what the builder makes
// from build.Examples, so the examples and `generate` share one code path.
func TestExampleFilesAreBuilt(t *testing.T) {
	for _, ex := range build.Examples() {
		t.Run(ex.File, func(t *testing.T) {
			want, err := build.ExampleJSON(ex)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(filepath.Join("..", ex.File), want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := workflows.Read(ex.File)
			if err != nil {
				t.Fatalf("%v (run go test ./workflows/build -run TestExampleFilesAreBuilt -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("workflows/%s differs from the builder's output; run go test ./workflows/build -run TestExampleFilesAreBuilt -update\n got: %s\nwant: %s", ex.File, got, want)
			}
		})
	}
}
