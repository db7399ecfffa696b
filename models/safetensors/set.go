package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// IndexSuffix ends the name of a sharded checkpoint's index file
// (e.g. diffusion_pytorch_model.safetensors.index.json).
const IndexSuffix = ".safetensors.index.json"

// Set is one logical collection of tensors spread over one or more files (shards). Tensor names
// are unique across the set. A Set is safe for concurrent use.
type Set struct {
	path  string
	files []*File          // in shard order (sorted by path)
	owner map[string]*File // tensor name → shard
	names []string         // sorted
	meta  map[string]string
}

var _ Source = (*Set)(nil)

// OpenSet opens path as a set of tensors:
//   - a .safetensors file: a set of that one file;
//   - an index file (*.safetensors.index.json): the shards its weight_map names, which must hold
//     exactly the tensors the map assigns to them;
//   - a folder: its index file when it holds exactly one, else all of its *.safetensors files
//     (whose tensor names must not repeat).
func OpenSet(path string) (*Set, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	switch {
	case st.IsDir():
		return openDir(path)
	case strings.HasSuffix(path, IndexSuffix):
		return openIndex(path)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	return newSet(path, []*File{f})
}

// OpenFiles opens the given files as one set (tensor names must not repeat across them).
func OpenFiles(paths ...string) (*Set, error) {
	if len(paths) == 0 {
		return nil, newErr("", ErrIndex, "", "no files given")
	}
	files, err := openAll(paths)
	if err != nil {
		return nil, err
	}
	return newSet(paths[0], files)
}

func openDir(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var indexes, shards []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		switch name := e.Name(); {
		case strings.HasSuffix(name, IndexSuffix):
			indexes = append(indexes, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".safetensors"):
			shards = append(shards, filepath.Join(dir, name))
		}
	}
	switch {
	case len(indexes) == 1:
		return openIndex(indexes[0])
	case len(indexes) > 1:
		return nil, newErr(dir, ErrIndex, "", fmt.Sprintf(
			"the folder holds %d index files (%s): name the one to use",
			len(indexes), strings.Join(baseNames(indexes), ", ")))
	case len(shards) == 0:
		return nil, newErr(dir, ErrIndex, "", "the folder holds no .safetensors file")
	}
	files, err := openAll(shards)
	if err != nil {
		return nil, err
	}
	return newSet(dir, files)
}

// indexFile is the JSON of a *.safetensors.index.json.
type indexFile struct {
	weightMap map[string]string
}

func parseIndex(path string, data []byte) (*indexFile, error) {
	fail := func(format string, args ...any) (*indexFile, error) {
		return nil, newErr(path, ErrIndex, "", fmt.Sprintf(format, args...))
	}
	if !json.Valid(data) {
		var v any
		return fail("not valid JSON: %v", json.Unmarshal(data, &v))
	}
	if k := jsonKind(data); k != "object" {
		return fail("index must be a JSON object, not %s", describe(k))
	}
	fields, err := readObject(data)
	if err != nil {
		return fail("%v", err)
	}
	var wm json.RawMessage
	for _, fl := range fields {
		if fl.key == "weight_map" {
			wm = fl.val
		}
		// "metadata" (total_size and the like) is informational and not checked.
	}
	if wm == nil {
		return fail(`no "weight_map"`)
	}
	if k := jsonKind(wm); k != "object" {
		return fail(`"weight_map" must be a JSON object, not %s`, describe(k))
	}
	entries, err := readObject(wm)
	if err != nil {
		return fail(`"weight_map": %v`, err)
	}
	idx := &indexFile{weightMap: make(map[string]string, len(entries))}
	for _, e := range entries {
		var shard string
		if k := jsonKind(e.val); k != "string" {
			return fail(`"weight_map": tensor %q maps to %s, not a file name`, e.key, describe(k))
		}
		if err := json.Unmarshal(e.val, &shard); err != nil {
			return fail(`"weight_map": tensor %q: %v`, e.key, err)
		}
		if !filepath.IsLocal(shard) {
			return fail(`"weight_map": tensor %q maps to %q, which is not a file beside the index`, e.key, shard)
		}
		idx.weightMap[e.key] = shard
	}
	return idx, nil
}

func openIndex(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	idx, err := parseIndex(path, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	byShard := map[string][]string{}
	for name, shard := range idx.weightMap {
		byShard[shard] = append(byShard[shard], name)
	}
	shardNames := slices.Sorted(maps.Keys(byShard))
	paths := make([]string, len(shardNames))
	for i, s := range shardNames {
		paths[i] = filepath.Join(dir, s)
	}
	files, err := openAll(paths)
	if err != nil {
		return nil, fmt.Errorf("%w (shard of %s)", err, path)
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i, f := range files {
		listed := byShard[shardNames[i]]
		for _, name := range listed {
			if _, ok := f.Info(name); !ok {
				closeAll()
				return nil, newErr(path, ErrIndex, name, fmt.Sprintf("the index maps it to %s, which does not hold it", shardNames[i]))
			}
		}
		if f.Len() != len(listed) {
			for _, name := range f.Names() {
				if want, ok := idx.weightMap[name]; !ok || want != shardNames[i] {
					closeAll()
					where := "does not list it"
					if ok {
						where = "maps it to " + want
					}
					return nil, newErr(path, ErrIndex, name, fmt.Sprintf("shard %s holds it but the index %s", shardNames[i], where))
				}
			}
		}
	}
	return newSet(path, files)
}

// openAll opens every path, closing the ones already open when one fails.
func openAll(paths []string) ([]*File, error) {
	files := make([]*File, 0, len(paths))
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			for _, g := range files {
				g.Close()
			}
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// newSet indexes files; on a duplicate tensor name it closes them all and fails.
func newSet(path string, files []*File) (*Set, error) {
	s := &Set{path: path, files: files, owner: map[string]*File{}}
	for _, f := range files {
		for _, name := range f.Names() {
			if prev, dup := s.owner[name]; dup {
				s.Close()
				return nil, newErr(path, ErrIndex, name, fmt.Sprintf("present in both %s and %s", prev.Path(), f.Path()))
			}
			s.owner[name] = f
		}
		for k, v := range f.hdr.metadata {
			if s.meta == nil {
				s.meta = map[string]string{}
			}
			if _, ok := s.meta[k]; !ok {
				s.meta[k] = v
			}
		}
	}
	s.names = slices.Sorted(maps.Keys(s.owner))
	return s, nil
}

// Path returns the path the set was opened from.
func (s *Set) Path() string { return s.path }

// Files returns the shards, sorted by path.
func (s *Set) Files() []*File { return slices.Clone(s.files) }

// Len returns the number of tensors.
func (s *Set) Len() int { return len(s.names) }

// Names returns all tensor names as stored, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Info returns the header entry of the named tensor (Info.File says which shard holds it).
func (s *Set) Info(name string) (Info, bool) {
	f, ok := s.owner[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Data returns the raw bytes of the named tensor from its shard (see File.Data).
func (s *Set) Data(name string) ([]byte, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, newErr(s.path, ErrNotFound, name, "")
	}
	return f.Data(name)
}

// Metadata returns the union of the shards' "__metadata__" maps (for a key set differently in
// several shards, the first shard's value); nil when no shard has metadata.
func (s *Set) Metadata() map[string]string { return maps.Clone(s.meta) }

// Close unmaps every shard.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}
