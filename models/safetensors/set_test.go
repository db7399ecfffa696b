package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeShard(t *testing.T, path string, meta map[string]string, names ...string) {
	t.Helper()
	entries := map[string]Entry{}
	for i, n := range names {
		entries[n] = Entry{DType: U8, Shape: []int{2}, Data: []byte{byte(i), byte(len(n))}}
	}
	if err := WriteFile(path, entries, meta); err != nil {
		t.Fatal(err)
	}
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shardedDir writes a two-shard checkpoint with an index, the layout diffusers folders use.
func shardedDir(t *testing.T) string {
	dir := t.TempDir()
	writeShard(t, filepath.Join(dir, "m-00001-of-00002.safetensors"), map[string]string{"format": "pt", "shard": "1"}, "a.weight", "b.weight")
	writeShard(t, filepath.Join(dir, "m-00002-of-00002.safetensors"), map[string]string{"format": "pt", "shard": "2"}, "c.weight")
	writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"metadata":{"total_size":6},"weight_map":{
		"a.weight":"m-00001-of-00002.safetensors","b.weight":"m-00001-of-00002.safetensors",
		"c.weight":"m-00002-of-00002.safetensors"}}`)
	return dir
}

func TestOpenSetSharded(t *testing.T) {
	dir := shardedDir(t)
	for _, path := range []string{dir, filepath.Join(dir, "m.safetensors.index.json")} {
		s, err := OpenSet(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(s.Names(), ","); got != "a.weight,b.weight,c.weight" {
			t.Errorf("%s: names %s", path, got)
		}
		if len(s.Files()) != 2 {
			t.Errorf("%s: %d shards", path, len(s.Files()))
		}
		info, ok := s.Info("c.weight")
		if !ok || filepath.Base(info.File) != "m-00002-of-00002.safetensors" {
			t.Errorf("c.weight info %+v", info)
		}
		d, err := s.Data("c.weight")
		if err != nil || !bytes.Equal(d, []byte{0, 8}) {
			t.Errorf("c.weight data %v, %v", d, err)
		}
		if _, err := s.Data("zzz"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing tensor: %v", err)
		}
		if md := s.Metadata(); md["format"] != "pt" || md["shard"] != "1" {
			t.Errorf("metadata %v (first shard's value wins)", md)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Data("a.weight"); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	}
}

func TestOpenSetSingleAndFolder(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.safetensors")
	writeShard(t, one, nil, "x")
	s, err := OpenSet(one)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s.Path() != one {
		t.Errorf("single file set: %d tensors, path %s", s.Len(), s.Path())
	}
	s.Close()

	// A folder without an index: all of its .safetensors files, other files ignored.
	writeShard(t, filepath.Join(dir, "two.safetensors"), nil, "y", "z")
	writeText(t, filepath.Join(dir, "notes.txt"), "not weights")
	s, err = OpenSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Names(), ","); got != "x,y,z" {
		t.Errorf("folder names %s", got)
	}
	s.Close()

	s, err = OpenFiles(one, filepath.Join(dir, "two.safetensors"))
	if err != nil || s.Len() != 3 {
		t.Fatalf("OpenFiles: %v", err)
	}
	s.Close()
}

func TestOpenSetErrors(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(t *testing.T, dir string) string // returns the path to open
		kind   error
		detail string
	}{
		{"empty folder", func(t *testing.T, dir string) string { return dir }, ErrIndex, "no .safetensors"},
		{"two indexes", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "a.safetensors.index.json"), `{"weight_map":{}}`)
			writeText(t, filepath.Join(dir, "b.safetensors.index.json"), `{"weight_map":{}}`)
			return dir
		}, ErrIndex, "2 index files"},
		{"duplicate tensor across files", func(t *testing.T, dir string) string {
			writeShard(t, filepath.Join(dir, "a.safetensors"), nil, "w")
			writeShard(t, filepath.Join(dir, "b.safetensors"), nil, "w")
			return dir
		}, ErrIndex, "present in both"},
		{"corrupt shard", func(t *testing.T, dir string) string {
			writeShard(t, filepath.Join(dir, "a.safetensors"), nil, "w")
			writeText(t, filepath.Join(dir, "b.safetensors"), "garbage!")
			return dir
		}, ErrHeaderSize, "b.safetensors"},
		{"index not JSON", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":`)
			return dir
		}, ErrIndex, "not valid JSON"},
		{"index not an object", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `[]`)
			return dir
		}, ErrIndex, "JSON array"},
		{"index without weight_map", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"metadata":{}}`)
			return dir
		}, ErrIndex, "weight_map"},
		{"weight_map value not a string", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":3}}`)
			return dir
		}, ErrIndex, "a number"},
		{"weight_map duplicate tensor", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}`)
			return dir
		}, ErrIndex, "duplicate"},
		{"shard outside the folder", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"../x.safetensors"}}`)
			return dir
		}, ErrIndex, "not a file beside the index"},
		{"absolute shard path", func(t *testing.T, dir string) string {
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"/etc/x.safetensors"}}`)
			return dir
		}, ErrIndex, "not a file beside the index"},
		{"index names a tensor the shard lacks", func(t *testing.T, dir string) string {
			writeShard(t, filepath.Join(dir, "s.safetensors"), nil, "a")
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"s.safetensors","b":"s.safetensors"}}`)
			return dir
		}, ErrIndex, "the index maps it to s.safetensors, which does not hold it"},
		{"shard holds an unlisted tensor", func(t *testing.T, dir string) string {
			writeShard(t, filepath.Join(dir, "s.safetensors"), nil, "a", "b")
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"s.safetensors"}}`)
			return dir
		}, ErrIndex, "does not list it"},
		{"tensor in the wrong shard", func(t *testing.T, dir string) string {
			writeShard(t, filepath.Join(dir, "s1.safetensors"), nil, "a", "b")
			writeShard(t, filepath.Join(dir, "s2.safetensors"), nil, "c")
			writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"s1.safetensors","c":"s2.safetensors","b":"s2.safetensors"}}`)
			return dir
		}, ErrIndex, "s2.safetensors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenSet(tc.setup(t, dir))
			if err == nil {
				s.Close()
				t.Fatal("accepted an inconsistent set")
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q, want %v containing %q", err, tc.kind, tc.detail)
			}
		})
	}
	t.Run("missing shard file", func(t *testing.T) {
		dir := t.TempDir()
		writeText(t, filepath.Join(dir, "m.safetensors.index.json"), `{"weight_map":{"a":"gone.safetensors"}}`)
		_, err := OpenSet(dir)
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "gone.safetensors") {
			t.Fatalf("error %v, want not-exist naming the shard", err)
		}
	})
}

func TestConcurrentDataAndClose(t *testing.T) {
	dir := shardedDir(t)
	s, err := OpenSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				for _, n := range s.Names() {
					if _, err := s.Data(n); err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("Data(%s): %v", n, err)
						return
					}
				}
			}
		}()
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	for range 4 {
		<-done
	}
}
