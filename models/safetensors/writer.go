package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Entry is one tensor to write: its dtype, shape and raw little-endian bytes, which must be
// exactly dtype size × product(shape) long.
type Entry struct {
	DType DType
	Shape []int
	Data  []byte
}

// Marshal encodes tensors and metadata as a safetensors file. The output is deterministic: the
// header lists "__metadata__" first (omitted when metadata is empty), then the tensors sorted by
// name, whose data follow in the same order; the header is padded with spaces to a multiple of
// 8 bytes so the data region is 8-byte aligned.
func Marshal(tensors map[string]Entry, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, tensors, metadata); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write encodes tensors and metadata to w in the format Marshal describes.
func Write(w io.Writer, tensors map[string]Entry, metadata map[string]string) error {
	hdr, names, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(hdr)))
	if _, err := bw.Write(prefix[:]); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	for _, name := range names {
		if _, err := bw.Write(tensors[name].Data); err != nil {
			return fmt.Errorf("safetensors: write %q: %w", name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// WriteFile writes tensors and metadata to path atomically (a temporary file in the same folder,
// renamed into place).
func WriteFile(path string, tensors map[string]Entry, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = Write(tmp, tensors, metadata); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// encodeHeader validates the entries and builds the padded JSON header; names come back in
// data order.
func encodeHeader(tensors map[string]Entry, metadata map[string]string) ([]byte, []string, error) {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	slices.Sort(names)

	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		sep()
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, nil, newErr("", ErrInvalid, "", fmt.Sprintf("metadata %q is not valid UTF-8", k))
			}
		}
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	var offset uint64
	for _, name := range names {
		e := tensors[name]
		bad := func(format string, args ...any) error {
			return newErr("", ErrInvalid, name, fmt.Sprintf(format, args...))
		}
		if name == metadataKey {
			return nil, nil, bad("%q is reserved for the metadata map", metadataKey)
		}
		if !utf8.ValidString(name) {
			return nil, nil, bad("name is not valid UTF-8")
		}
		if !e.DType.Known() {
			return nil, nil, bad("dtype %q is not one of %s", e.DType, knownList())
		}
		want := uint64(e.DType.Size())
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, bad("negative dimension in shape %v", e.Shape)
			}
			hi, lo := bits.Mul64(want, uint64(d))
			if hi != 0 || lo > math.MaxInt64 {
				return nil, nil, bad("shape %v is too large", e.Shape)
			}
			want = lo
		}
		if uint64(len(e.Data)) != want {
			return nil, nil, bad("%s %v needs %d bytes, got %d", e.DType, e.Shape, want, len(e.Data))
		}
		if offset+want > math.MaxInt64 {
			return nil, nil, bad("the data region would exceed 63 bits")
		}
		sep()
		writeJSONString(&b, name)
		b.WriteString(`:{"dtype":`)
		writeJSONString(&b, string(e.DType))
		b.WriteString(`,"shape":[`)
		for i, d := range e.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		b.WriteString(`],"data_offsets":[`)
		b.WriteString(strconv.FormatUint(offset, 10))
		b.WriteByte(',')
		offset += want
		b.WriteString(strconv.FormatUint(offset, 10))
		b.WriteString("]}")
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, nil, newErr("", ErrInvalid, "", fmt.Sprintf("header of %d bytes exceeds the %d-byte limit", b.Len(), MaxHeaderSize))
	}
	return b.Bytes(), names, nil
}

// writeJSONString writes s as a JSON string without HTML escaping (as Python's json does).
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // encoding a string into a bytes.Buffer cannot fail
	b.Truncate(b.Len() - 1) // Encode appends a newline
}
