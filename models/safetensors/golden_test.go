package safetensors

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
)

// tensorDesc is how manifest.json describes a tensor: its shape and stored dtype.
type tensorDesc struct {
	Shape  []int  `json:"shape"`
	Stored string `json:"stored"`
}

// collectDescs walks the manifest for every object of the form {"file": "x.safetensors",
// "tensors": {name: {shape, stored}}} and gathers the descriptions per file.
func collectDescs(t *testing.T, v any, out map[string]map[string]tensorDesc) {
	switch x := v.(type) {
	case map[string]any:
		file, okFile := x["file"].(string)
		tensors, okTensors := x["tensors"].(map[string]any)
		if okFile && okTensors && strings.HasSuffix(file, ".safetensors") {
			if out[file] == nil {
				out[file] = map[string]tensorDesc{}
			}
			for name, raw := range tensors {
				b, _ := json.Marshal(raw)
				var d tensorDesc
				if err := json.Unmarshal(b, &d); err != nil {
					t.Fatalf("manifest: %s: tensor %q: %v", file, name, err)
				}
				if prev, ok := out[file][name]; ok && (prev.Stored != d.Stored || !equalInts(prev.Shape, d.Shape)) {
					t.Fatalf("manifest describes %s:%s twice, differently", file, name)
				}
				out[file][name] = d
			}
		}
		for _, child := range x {
			collectDescs(t, child, out)
		}
	case []any:
		for _, child := range x {
			collectDescs(t, child, out)
		}
	}
}

func TestGoldenFilesMatchManifest(t *testing.T) {
	m := golden.MustLoad(t)
	var files map[string]struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	if raw, ok := m.Top["files"]; ok {
		if err := json.Unmarshal(raw, &files); err != nil {
			t.Fatalf("manifest files: %v", err)
		}
	}
	var whole any
	raw, err := json.Marshal(m.Top)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &whole); err != nil {
		t.Fatal(err)
	}
	descs := map[string]map[string]tensorDesc{}
	collectDescs(t, whole, descs)
	if len(descs) == 0 {
		t.Fatal("the manifest describes no safetensors file")
	}

	names := map[string]bool{}
	for name := range files {
		if strings.HasSuffix(name, ".safetensors") {
			names[name] = true
		}
	}
	for name := range descs {
		names[name] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	checkedTensors, identical := 0, 0
	for _, name := range sorted {
		t.Run(name, func(t *testing.T) {
			path := m.Path(name)
			content, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := files[name]; ok {
				if int64(len(content)) != want.Bytes {
					t.Errorf("%d bytes, manifest says %d", len(content), want.Bytes)
				}
				sum := sha256.Sum256(content)
				if got := hex.EncodeToString(sum[:]); got != want.SHA256 {
					t.Errorf("sha256 %s, manifest says %s", got, want.SHA256)
				}
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var covered int64
			entries := map[string]Entry{}
			for _, info := range f.Tensors() {
				d, err := f.Data(info.Name)
				if err != nil {
					t.Fatal(err)
				}
				if want := info.NumElements() * int64(info.DType.Size()); int64(len(d)) != want {
					t.Errorf("%s: %d bytes, want %d", info.Name, len(d), want)
				}
				start := f.DataOffset() + info.Offsets[0]
				if !bytes.Equal(d, content[start:start+int64(len(d))]) {
					t.Errorf("%s: mapped bytes differ from the file's", info.Name)
				}
				covered += int64(len(d))
				entries[info.Name] = Entry{DType: info.DType, Shape: info.Shape, Data: d}
			}
			if f.DataOffset()+covered != int64(len(content)) {
				t.Errorf("header %d + tensors %d != file size %d", f.DataOffset(), covered, len(content))
			}
			for tname, want := range descs[name] {
				info, ok := f.Info(tname)
				if !ok {
					t.Errorf("tensor %q listed in the manifest is missing", tname)
					continue
				}
				if string(info.DType) != want.Stored || !equalInts(info.Shape, want.Shape) {
					t.Errorf("%s: %s %v, manifest says %s %v", tname, info.DType, info.Shape, want.Stored, want.Shape)
				}
				checkedTensors++
			}
			// Re-encoding must give a file that parses to the same tensors; the reference writer
			// also sorts by name and pads with spaces, so the bytes usually match exactly.
			again, err := Marshal(entries, f.Metadata())
			if err != nil {
				t.Fatal(err)
			}
			g, err := Parse("re-encoded "+name, again)
			if err != nil {
				t.Fatal(err)
			}
			if g.Len() != f.Len() {
				t.Errorf("re-encoded file has %d tensors, want %d", g.Len(), f.Len())
			}
			for _, info := range g.Tensors() {
				d, _ := g.Data(info.Name)
				if !bytes.Equal(d, entries[info.Name].Data) {
					t.Errorf("re-encoded %s differs", info.Name)
				}
			}
			if bytes.Equal(again, content) {
				identical++
			}
		})
	}
	if checkedTensors == 0 {
		t.Error("no manifest tensor description was checked")
	}
	t.Logf("%d files, %d manifest tensor descriptions checked, %d files re-encoded byte-identically",
		len(sorted), checkedTensors, identical)
}
