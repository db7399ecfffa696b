package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawFile builds a file from a literal header (not padded) followed by dataLen zero bytes.
func rawFile(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// withLength builds a file whose length prefix is n whatever follows.
func withLength(n uint64, rest string) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return append(b, rest...)
}

func validFile(t *testing.T) []byte {
	t.Helper()
	b, err := Marshal(map[string]Entry{
		"a": {DType: F32, Shape: []int{2, 3}, Data: make([]byte, 24)},
		"b": {DType: BF16, Shape: []int{4}, Data: make([]byte, 8)},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCorruptions(t *testing.T) {
	valid := validFile(t)
	const a = `"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	cases := []struct {
		name   string
		data   []byte
		kind   error
		tensor string // tensor the error must name, "" for none
		detail string // substring the message must contain
	}{
		{"empty file", nil, ErrTruncated, "", "0 bytes"},
		{"shorter than the length prefix", []byte{1, 2, 3, 4, 5}, ErrTruncated, "", "5 bytes"},
		{"header length zero", withLength(0, "{}"), ErrHeaderSize, "", "length is 0"},
		{"header length one", withLength(1, "{}"), ErrHeaderSize, "", "length is 1"},
		{"header length above limit", withLength(MaxHeaderSize+1, "{}"), ErrHeaderSize, "", "exceeds"},
		{"header length huge", withLength(^uint64(0), "{}"), ErrHeaderSize, "", "exceeds"},
		{"header length past end of file", withLength(100, "{}"), ErrTruncated, "", "only 2 bytes"},
		{"truncated data", valid[:len(valid)-3], ErrTruncated, "", "3 bytes missing"},
		{"truncated in header", valid[:20], ErrTruncated, "", "follow"},
		{"trailing bytes", append(append([]byte{}, valid...), 0, 0), ErrOffsets, "", "2 bytes after the last tensor"},
		{"invalid JSON", rawFile(`{"a":`, 0), ErrHeaderJSON, "", "not valid JSON"},
		{"invalid JSON, trailing garbage", rawFile(`{} x`, 0), ErrHeaderJSON, "", "not valid JSON"},
		{"JSON array", rawFile(`[1,2]`, 0), ErrHeaderJSON, "", "not a JSON array"},
		{"JSON string", rawFile(`"abc"`, 0), ErrHeaderJSON, "", "not a string"},
		{"JSON number", rawFile(`12`, 0), ErrHeaderJSON, "", "not a number"},
		{"JSON null", rawFile(`null`, 0), ErrHeaderJSON, "", "not null"},
		{"leading whitespace", rawFile(` {}`, 0), ErrHeaderJSON, "", "start with '{'"},
		{"invalid UTF-8", rawFile("{\"\xff\":1}", 0), ErrHeaderJSON, "", "UTF-8"},
		{"duplicate tensor", rawFile(`{`+a+`,`+a+`}`, 8), ErrHeaderJSON, "", `duplicate key "a"`},
		{"entry not an object", rawFile(`{"a":[1]}`, 0), ErrHeaderJSON, "a", "JSON array"},
		{"missing dtype", rawFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, 8), ErrHeaderJSON, "a", `missing field "dtype"`},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, 8), ErrHeaderJSON, "a", `missing field "shape"`},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, 8), ErrHeaderJSON, "a", `missing field "data_offsets"`},
		{"unexpected field", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, 8), ErrHeaderJSON, "a", `unexpected field "x"`},
		{"duplicate field", rawFile(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), ErrHeaderJSON, "a", "duplicate"},
		{"dtype not a string", rawFile(`{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, 8), ErrHeaderJSON, "a", "dtype must be"},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 1), ErrDType, "a", `"F4"`},
		{"dtype wrong case", rawFile(`{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, 8), ErrDType, "a", `"f32"`},
		{"shape negative", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), ErrShape, "a", "-2"},
		{"shape fraction", rawFile(`{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, 8), ErrShape, "a", "2.0"},
		{"shape exponent", rawFile(`{"a":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}`, 8), ErrShape, "a", "2e0"},
		{"shape string", rawFile(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, 8), ErrShape, "a", "a string"},
		{"shape not an array", rawFile(`{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, 8), ErrShape, "a", "not a number"},
		{"shape null", rawFile(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,0]}}`, 0), ErrShape, "a", "not null"},
		{"shape above 2^64", rawFile(`{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,0]}}`, 0), ErrShape, "a", "below 2^64"},
		{"shape element overflow", rawFile(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0), ErrShape, "a", "64 bits"},
		{"shape byte overflow", rawFile(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, 0), ErrShape, "a", "63 bits"},
		{"dimension above int64", rawFile(`{"a":{"dtype":"U8","shape":[0,9223372036854775808],"data_offsets":[0,0]}}`, 0), ErrShape, "a", "too large"},
		{"byte size too small", rawFile(`{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, 20), ErrByteSize, "a", "needs 24 bytes"},
		{"byte size too large", rawFile(`{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}`, 8), ErrByteSize, "a", "needs 6 bytes"},
		{"offsets one value", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, 8), ErrOffsets, "a", "got 1"},
		{"offsets three values", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, 8), ErrOffsets, "a", "got 3"},
		{"offsets reversed", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 8), ErrOffsets, "a", "end before"},
		{"offsets negative", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, 8), ErrOffsets, "a", "-8"},
		{"offsets not an array", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":{"b":0}}}`, 8), ErrOffsets, "a", "JSON object"},
		{"offsets out of range", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), ErrTruncated, "", "4 bytes missing"},
		{"offsets far out of range", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}`, 1), ErrOffsets, "a", "not 0"},
		{"first tensor not at 0", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrOffsets, "a", "starts at data byte 4"},
		{"gap", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12), ErrOffsets, "b", "gap of 4 bytes"},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrOffsets, "b", `overlap those of "a"`},
		{"same offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 16), ErrOffsets, "b", "overlap"},
		{"empty tensor inside another", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 8), ErrOffsets, "b", "overlap"},
		{"metadata not an object", rawFile(`{"__metadata__":[1]}`, 0), ErrMetadata, "", "JSON array"},
		{"metadata number value", rawFile(`{"__metadata__":{"k":1}}`, 0), ErrMetadata, "", `"k"`},
		{"metadata nested object", rawFile(`{"__metadata__":{"k":{}}}`, 0), ErrMetadata, "", `"k"`},
		{"metadata duplicate key", rawFile(`{"__metadata__":{"k":"1","k":"2"}}`, 0), ErrMetadata, "", "duplicate"},
		{"metadata twice", rawFile(`{"__metadata__":{},"__metadata__":{}}`, 0), ErrHeaderJSON, "", "duplicate"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, via := range []struct {
				name string
				open func() (*File, error)
				file string
			}{
				{"Parse", func() (*File, error) { return Parse("mem.safetensors", tc.data) }, "mem.safetensors"},
				{"Open", func() (*File, error) { return Open(path) }, path},
			} {
				f, err := via.open()
				if err == nil {
					f.Close()
					t.Fatalf("%s: accepted a corrupt file", via.name)
				}
				if !errors.Is(err, tc.kind) {
					t.Fatalf("%s: error %q is not %v", via.name, err, tc.kind)
				}
				var se *Error
				if !errors.As(err, &se) {
					t.Fatalf("%s: error %q is not an *Error", via.name, err)
				}
				if se.File != via.file || !strings.Contains(err.Error(), via.file) {
					t.Errorf("%s: error %q does not name the file %s", via.name, err, via.file)
				}
				if se.Tensor != tc.tensor {
					t.Errorf("%s: error names tensor %q, want %q (%v)", via.name, se.Tensor, tc.tensor, err)
				}
				if !strings.Contains(err.Error(), tc.detail) {
					t.Errorf("%s: error %q does not contain %q", via.name, err, tc.detail)
				}
			}
		})
	}
}

func TestParseValidEdgeCases(t *testing.T) {
	cases := []struct {
		name     string
		data     []byte
		tensors  map[string][]int
		metadata map[string]string
	}{
		{"empty header", rawFile(`{}`, 0), map[string][]int{}, nil},
		{"padded header", rawFile(`{}      `, 0), map[string][]int{}, nil},
		{"null metadata", rawFile(`{"__metadata__":null}`, 0), map[string][]int{}, nil},
		{"metadata only", rawFile(`{"__metadata__":{"a":"b","c":""}}`, 0), map[string][]int{}, map[string]string{"a": "b", "c": ""}},
		{"zero-dim tensor", rawFile(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, 4), map[string][]int{"s": {}}, nil},
		{"zero-size tensors", rawFile(`{"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},"f":{"dtype":"I64","shape":[3,0],"data_offsets":[0,0]}}`, 0),
			map[string][]int{"e": {0, 5}, "f": {3, 0}}, nil},
		{"zero-size between tensors", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"e":{"dtype":"F32","shape":[0],"data_offsets":[1,1]},"b":{"dtype":"BOOL","shape":[2],"data_offsets":[1,3]}}`, 3),
			map[string][]int{"a": {1}, "e": {0}, "b": {2}}, nil},
		{"offsets not in name order", rawFile(`{"z":{"dtype":"I16","shape":[2],"data_offsets":[0,4]},"a":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[4,7]}}`, 7),
			map[string][]int{"z": {2}, "a": {3}}, nil},
		{"whitespace inside JSON", rawFile("{ \"a\" : {\"dtype\" : \"I8\",\n\"shape\": [ 2 ],\t\"data_offsets\": [0, 2]} }", 2), map[string][]int{"a": {2}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("x", tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if f.Len() != len(tc.tensors) {
				t.Fatalf("%d tensors, want %d", f.Len(), len(tc.tensors))
			}
			for name, shape := range tc.tensors {
				info, ok := f.Info(name)
				if !ok {
					t.Fatalf("tensor %q missing", name)
				}
				if !equalInts(info.Shape, shape) {
					t.Errorf("%s: shape %v, want %v", name, info.Shape, shape)
				}
				d, err := f.Data(name)
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(d)) != info.NumElements()*int64(info.DType.Size()) {
					t.Errorf("%s: %d data bytes for %v %s", name, len(d), info.Shape, info.DType)
				}
			}
			if got := f.Metadata(); len(got) != len(tc.metadata) {
				t.Errorf("metadata %v, want %v", got, tc.metadata)
			} else {
				for k, v := range tc.metadata {
					if got[k] != v {
						t.Errorf("metadata[%q] = %q, want %q", k, got[k], v)
					}
				}
			}
		})
	}
}

func TestDataAndClose(t *testing.T) {
	data := validFile(t)
	// Make the payload recognisable: a = bytes 0..23, b = 100..107.
	f0, err := Parse("x", data)
	if err != nil {
		t.Fatal(err)
	}
	start := f0.DataOffset()
	for i := range 32 {
		data[start+int64(i)] = byte(i)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.DataOffset()%8 != 0 {
		t.Errorf("data region at %d is not 8-byte aligned", f.DataOffset())
	}
	got, err := f.Data("b")
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{24, 25, 26, 27, 28, 29, 30, 31}; string(got) != string(want) || cap(got) != len(got) {
		t.Errorf("Data(b) = %v (cap %d), want %v", got, cap(got), want)
	}
	if _, err := f.Data("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Errorf("Data(nope) error %v, want ErrNotFound naming the file", err)
	}
	info, _ := f.Info("a")
	info.Shape[0] = 99 // must not alter the file's own header
	if again, _ := f.Info("a"); again.Shape[0] != 2 {
		t.Errorf("Info returned shared shape storage")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Data("a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Data after Close: %v, want ErrClosed", err)
	}
}

func TestOpenNotAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(dir) error %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("Open(missing) error %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
