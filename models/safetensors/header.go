package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes (the reference implementation's
// limit). Real checkpoints have headers of tens of kilobytes.
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header key of the free-form string map.
const metadataKey = "__metadata__"

// Info describes one tensor as its header declares it.
type Info struct {
	Name  string
	DType DType
	Shape []int
	// Offsets are the data_offsets as stored: [begin, end) relative to the start of the data
	// region, which begins right after the header (see File.DataOffset).
	Offsets [2]int64
	// File is the path (or Parse name) of the file that holds the tensor.
	File string
}

// NumElements returns the product of the shape (1 for a 0-dim tensor).
func (i Info) NumElements() int64 {
	n := int64(1)
	for _, d := range i.Shape {
		n *= int64(d)
	}
	return n
}

// ByteSize returns the number of data bytes the tensor occupies.
func (i Info) ByteSize() int64 { return i.Offsets[1] - i.Offsets[0] }

func (i Info) clone() Info {
	i.Shape = slices.Clone(i.Shape)
	if i.Shape == nil {
		i.Shape = []int{}
	}
	return i
}

// header is the parsed and validated header of one file.
type header struct {
	size     int    // N, the JSON header length in bytes
	tensors  []Info // sorted by name
	metadata map[string]string
}

// parseHeader validates buf, the complete file contents, and returns its header. Errors are
// *Error values naming file.
func parseHeader(file string, buf []byte) (*header, error) {
	fail := func(kind error, tensor, format string, args ...any) (*header, error) {
		return nil, newErr(file, kind, tensor, fmt.Sprintf(format, args...))
	}
	if len(buf) < 8 {
		return fail(ErrTruncated, "", "file is %d bytes, shorter than the 8-byte header length prefix", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	switch {
	case n < 2:
		return fail(ErrHeaderSize, "", "header length is %d bytes; the smallest header, \"{}\", has 2", n)
	case n > MaxHeaderSize:
		return fail(ErrHeaderSize, "", "header length %d exceeds the %d-byte limit (not a safetensors file?)", n, MaxHeaderSize)
	case n > uint64(len(buf)-8):
		return fail(ErrTruncated, "", "header length prefix says %d bytes but only %d bytes follow it", n, len(buf)-8)
	}
	raw := buf[8 : 8+n]
	dataLen := int64(len(buf)) - 8 - int64(n)

	if !utf8.Valid(raw) {
		return fail(ErrHeaderJSON, "", "header is not valid UTF-8")
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fail(ErrHeaderJSON, "", "not valid JSON at byte %d of the header: %v", se.Offset, err)
		}
		return fail(ErrHeaderJSON, "", "not valid JSON: %v", err)
	}
	if raw[0] != '{' {
		if k := jsonKind(raw); k != "object" {
			return fail(ErrHeaderJSON, "", "header must be a JSON object, not %s", describe(k))
		}
		return fail(ErrHeaderJSON, "", "header must start with '{' (found leading whitespace)")
	}
	fields, err := readObject(raw)
	if err != nil {
		return fail(ErrHeaderJSON, "", "%v", err)
	}

	h := &header{size: int(n)}
	for _, fl := range fields {
		if fl.key == metadataKey {
			md, err := parseMetadata(fl.val)
			if err != nil {
				return fail(ErrMetadata, "", "%v", err)
			}
			h.metadata = md
			continue
		}
		info, err := parseEntry(file, fl.key, fl.val, dataLen)
		if err != nil {
			return nil, err
		}
		h.tensors = append(h.tensors, info)
	}
	if err := checkLayout(file, h.tensors, dataLen); err != nil {
		return nil, err
	}
	slices.SortFunc(h.tensors, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return h, nil
}

// parseEntry validates one tensor entry: exactly the fields dtype, shape and data_offsets, a
// known dtype, a shape of non-negative integers whose byte size fits in 63 bits, and offsets
// whose span equals that byte size.
func parseEntry(file, name string, raw json.RawMessage, dataLen int64) (Info, error) {
	info := Info{Name: name, File: file}
	fail := func(kind error, format string, args ...any) (Info, error) {
		return Info{}, newErr(file, kind, name, fmt.Sprintf(format, args...))
	}
	if k := jsonKind(raw); k != "object" {
		return fail(ErrHeaderJSON, "entry must be a JSON object, not %s", describe(k))
	}
	fields, err := readObject(raw)
	if err != nil {
		return fail(ErrHeaderJSON, "%v", err)
	}
	var dtypeRaw, shapeRaw, offRaw json.RawMessage
	for _, fl := range fields {
		switch fl.key {
		case "dtype":
			dtypeRaw = fl.val
		case "shape":
			shapeRaw = fl.val
		case "data_offsets":
			offRaw = fl.val
		default:
			return fail(ErrHeaderJSON, "unexpected field %q (want dtype, shape, data_offsets)", fl.key)
		}
	}
	for _, req := range []struct {
		name string
		val  json.RawMessage
	}{{"dtype", dtypeRaw}, {"shape", shapeRaw}, {"data_offsets", offRaw}} {
		if req.val == nil {
			return fail(ErrHeaderJSON, "missing field %q", req.name)
		}
	}

	if k := jsonKind(dtypeRaw); k != "string" {
		return fail(ErrHeaderJSON, "dtype must be a JSON string, not %s", describe(k))
	}
	var dt string
	if err := json.Unmarshal(dtypeRaw, &dt); err != nil {
		return fail(ErrHeaderJSON, "dtype: %v", err)
	}
	info.DType = DType(dt)
	if !info.DType.Known() {
		return fail(ErrDType, "%q is not one of %s", dt, knownList())
	}

	dims, err := uintList(shapeRaw)
	if err != nil {
		return fail(ErrShape, "shape: %v", err)
	}
	info.Shape = make([]int, len(dims))
	elems := uint64(1)
	for i, d := range dims {
		if d > math.MaxInt {
			return fail(ErrShape, "dimension %d is %d, too large", i, d)
		}
		info.Shape[i] = int(d)
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 {
			return fail(ErrShape, "shape %v has more elements than fit in 64 bits", dims)
		}
		elems = lo
	}
	hi, want := bits.Mul64(elems, uint64(info.DType.Size()))
	if hi != 0 || want > math.MaxInt64 {
		return fail(ErrShape, "shape %v of %s needs more bytes than fit in 63 bits", dims, dt)
	}

	offs, err := uintList(offRaw)
	if err != nil {
		return fail(ErrOffsets, "data_offsets: %v", err)
	}
	if len(offs) != 2 {
		return fail(ErrOffsets, "data_offsets must hold 2 integers [begin, end], got %d", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin > end {
		return fail(ErrOffsets, "data_offsets [%d, %d] end before they begin", begin, end)
	}
	if end-begin != want {
		return fail(ErrByteSize, "%s %v needs %d bytes but data_offsets [%d, %d] span %d",
			dt, dims, want, begin, end, end-begin)
	}
	if end > math.MaxInt64 {
		return fail(ErrOffsets, "data_offsets [%d, %d] exceed 63 bits", begin, end)
	}
	// Offsets beyond the data region are diagnosed by checkLayout (truncation or bad offsets).
	info.Offsets = [2]int64{int64(begin), int64(end)}
	return info, nil
}

// checkLayout verifies that the tensors, ordered by offset, tile the data region exactly: the
// first starts at 0, each starts where the previous ends, and the last ends at dataLen.
func checkLayout(file string, tensors []Info, dataLen int64) error {
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ta, tb := &tensors[a], &tensors[b]
		if c := cmpInt64(ta.Offsets[0], tb.Offsets[0]); c != 0 {
			return c
		}
		if c := cmpInt64(ta.Offsets[1], tb.Offsets[1]); c != 0 {
			return c
		}
		return strings.Compare(ta.Name, tb.Name)
	})
	var cursor int64
	prev := -1
	for _, i := range order {
		t := &tensors[i]
		switch {
		case t.Offsets[0] > cursor && prev < 0:
			return newErr(file, ErrOffsets, t.Name, fmt.Sprintf(
				"the first tensor starts at data byte %d, not 0: %d bytes belong to no tensor",
				t.Offsets[0], t.Offsets[0]))
		case t.Offsets[0] > cursor:
			return newErr(file, ErrOffsets, t.Name, fmt.Sprintf(
				"starts at data byte %d but %q ends at %d: a gap of %d bytes",
				t.Offsets[0], tensors[prev].Name, cursor, t.Offsets[0]-cursor))
		case t.Offsets[0] < cursor:
			p := &tensors[prev]
			return newErr(file, ErrOffsets, t.Name, fmt.Sprintf(
				"data_offsets [%d, %d] overlap those of %q [%d, %d]",
				t.Offsets[0], t.Offsets[1], p.Name, p.Offsets[0], p.Offsets[1]))
		}
		cursor = t.Offsets[1]
		prev = i
	}
	switch {
	case cursor > dataLen:
		return newErr(file, ErrTruncated, "", fmt.Sprintf(
			"the tensors need %d data bytes but the file holds %d after its header (%d bytes missing)",
			cursor, dataLen, cursor-dataLen))
	case cursor < dataLen:
		return newErr(file, ErrOffsets, "", fmt.Sprintf(
			"%d bytes after the last tensor (data byte %d of %d) belong to no tensor",
			dataLen-cursor, cursor, dataLen))
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseMetadata decodes "__metadata__": null or an object whose values are all strings.
func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	switch k := jsonKind(raw); k {
	case "null":
		return nil, nil
	case "object":
	default:
		return nil, fmt.Errorf("%q must be a JSON object of strings, not %s", metadataKey, describe(k))
	}
	fields, err := readObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", metadataKey, err)
	}
	md := make(map[string]string, len(fields))
	for _, fl := range fields {
		if k := jsonKind(fl.val); k != "string" {
			return nil, fmt.Errorf("value of %q must be a JSON string, not %s", fl.key, describe(k))
		}
		var s string
		if err := json.Unmarshal(fl.val, &s); err != nil {
			return nil, fmt.Errorf("value of %q: %w", fl.key, err)
		}
		md[fl.key] = s
	}
	return md, nil
}

// field is one key/value pair of a JSON object, in document order.
type field struct {
	key string
	val json.RawMessage
}

// readObject splits a JSON object into its fields, rejecting duplicate keys (encoding/json would
// silently keep the last one).
func readObject(raw []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, got %s", describe(jsonKind(raw)))
	}
	var out []field
	seen := make(map[string]struct{})
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key is not a string")
		}
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = struct{}{}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		out = append(out, field{key: key, val: val})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON object")
	}
	return out, nil
}

// uintList decodes a JSON array of non-negative integers without a sign, fraction or exponent.
func uintList(raw json.RawMessage) ([]uint64, error) {
	if k := jsonKind(raw); k != "array" {
		return nil, fmt.Errorf("must be a JSON array of integers, not %s", describe(k))
	}
	var nums []json.RawMessage
	if err := json.Unmarshal(raw, &nums); err != nil {
		return nil, err
	}
	out := make([]uint64, len(nums))
	for i, num := range nums {
		if k := jsonKind(num); k != "number" {
			return nil, fmt.Errorf("element %d is %s, not an integer", i, describe(k))
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("element %d is %s, not a non-negative integer below 2^64", i, num)
		}
		out[i] = v
	}
	return out, nil
}

// jsonKind names the kind of the (valid) JSON value in raw, for error messages.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// describe is jsonKind as a phrase: "a JSON array", "null".
func describe(kind string) string {
	switch kind {
	case "null", "empty":
		return kind
	case "array", "object":
		return "a JSON " + kind
	}
	return "a " + kind
}

func knownList() string {
	names := make([]string, 0, len(dtypeSizes))
	for _, d := range DTypes() {
		names = append(names, string(d))
	}
	return strings.Join(names, ", ")
}
