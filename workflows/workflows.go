// Package workflows ships the example workflows with the binary (go:embed). They are used by the
// CLI, the UI and tests; this package only lists and reads them.
package workflows

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.json
var files embed.FS

// Names returns the example file names, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// Read returns the contents of one example.
func Read(name string) ([]byte, error) { return files.ReadFile(name) }
