package safetensors

import (
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
)

// Source is a read-only collection of named tensors: a File, a sharded Set, or a View of either
// with a key prefix removed. Loaders depend on Source so they accept all three.
type Source interface {
	// Names returns the tensor names, sorted.
	Names() []string
	// Info returns the header entry of a tensor.
	Info(name string) (Info, bool)
	// Data returns the raw little-endian bytes of a tensor (see File.Data for their lifetime).
	Data(name string) ([]byte, error)
	// Metadata returns the "__metadata__" string map (nil when there is none).
	Metadata() map[string]string
}

// File is one validated safetensors file. Files from Open are memory-mapped read-only: opening
// reads nothing but the header pages, and tensor bytes are paged in by the OS when touched.
// A File is safe for concurrent use.
type File struct {
	path   string
	hdr    *header
	byName map[string]int // index into hdr.tensors

	mu     sync.RWMutex
	buf    []byte // the whole file: the mapping, or the caller's bytes for Parse
	unmap  func([]byte) error
	closed bool
}

var _ Source = (*File)(nil)

// Open maps the file at path and validates its header. Close releases the mapping.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s: not a regular file (%s)", path, st.Mode().Type())
	}
	size := st.Size()
	if size < 8 {
		// Too short to map usefully (and mapping 0 bytes fails): read it for the error.
		small, err := io.ReadAll(io.LimitReader(fh, 8))
		if err != nil {
			return nil, fmt.Errorf("safetensors: %s: %w", path, err)
		}
		_, err = parseHeader(path, small)
		return nil, err
	}
	buf, unmap, err := mapFile(fh, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: mapping %d bytes: %w", path, size, err)
	}
	f, err := newFile(path, buf)
	if err != nil {
		_ = unmap(buf)
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates data, the complete contents of a safetensors file, without copying it; name is
// used in errors and Info.File. The File keeps data: the caller must not modify it.
func Parse(name string, data []byte) (*File, error) {
	return newFile(name, data)
}

func newFile(path string, buf []byte) (*File, error) {
	hdr, err := parseHeader(path, buf)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, hdr: hdr, buf: buf, byName: make(map[string]int, len(hdr.tensors))}
	for i, t := range hdr.tensors {
		f.byName[t.Name] = i
	}
	return f, nil
}

// Path returns the path given to Open (or the name given to Parse).
func (f *File) Path() string { return f.path }

// HeaderSize returns the length of the JSON header in bytes (padding included).
func (f *File) HeaderSize() int { return f.hdr.size }

// DataOffset returns the file offset where the data region begins (8 + HeaderSize); tensor
// offsets are relative to it.
func (f *File) DataOffset() int64 { return 8 + int64(f.hdr.size) }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.hdr.tensors) }

// Names returns the tensor names as stored, sorted.
func (f *File) Names() []string {
	out := make([]string, len(f.hdr.tensors))
	for i, t := range f.hdr.tensors {
		out[i] = t.Name
	}
	return out
}

// Tensors returns the header entries of all tensors, sorted by name.
func (f *File) Tensors() []Info {
	out := make([]Info, len(f.hdr.tensors))
	for i, t := range f.hdr.tensors {
		out[i] = t.clone()
	}
	return out
}

// Info returns the header entry of the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Info{}, false
	}
	return f.hdr.tensors[i].clone(), true
}

// Metadata returns a copy of the "__metadata__" map, nil when the file has none.
func (f *File) Metadata() map[string]string { return maps.Clone(f.hdr.metadata) }

// Data returns the raw little-endian bytes of the named tensor. For a mapped file the slice
// aliases the read-only mapping: it must not be written to (that faults) nor used after Close.
// Its capacity equals its length, so appending copies.
func (f *File) Data(name string) ([]byte, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, newErr(f.path, ErrNotFound, name, "")
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, newErr(f.path, ErrClosed, name, "")
	}
	t := &f.hdr.tensors[i]
	start := f.DataOffset() + t.Offsets[0]
	end := f.DataOffset() + t.Offsets[1]
	return f.buf[start:end:end], nil
}

// Close releases the mapping. Slices returned by Data become invalid. Closing twice is a no-op.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	buf := f.buf
	f.buf = nil
	if f.unmap != nil {
		if err := f.unmap(buf); err != nil {
			return fmt.Errorf("safetensors: %s: unmap: %w", f.path, err)
		}
	}
	return nil
}
