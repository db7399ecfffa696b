package safetensors

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMarshalExactBytes(t *testing.T) {
	got, err := Marshal(map[string]Entry{
		"b": {DType: U8, Shape: []int{2}, Data: []byte{1, 2}},
		"a": {DType: F32, Shape: []int{}, Data: []byte{0, 0, 0x80, 0x3f}},
	}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	// 130 header bytes padded with 6 spaces to 136 = 0x88.
	want := "\x88\x00\x00\x00\x00\x00\x00\x00" +
		`{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}` +
		"      " + "\x00\x00\x80\x3f\x01\x02"
	if string(got) != want {
		t.Fatalf("Marshal:\n got %q\nwant %q", got, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	entries := map[string]Entry{}
	for i, dt := range DTypes() {
		shape := []int{i%3 + 1, 2}
		data := make([]byte, shape[0]*shape[1]*dt.Size())
		for j := range data {
			data[j] = byte(i*31 + j)
		}
		entries["t_"+string(dt)] = Entry{DType: dt, Shape: shape, Data: data}
	}
	entries["empty"] = Entry{DType: F16, Shape: []int{0, 7}, Data: nil}
	entries["scalar"] = Entry{DType: I64, Shape: nil, Data: make([]byte, 8)}
	entries["ünïcode <&> \"quoted\""] = Entry{DType: U8, Shape: []int{1}, Data: []byte{9}}
	meta := map[string]string{"format": "pt", "note": "line\nbreak <b>"}

	b1, err := Marshal(entries, meta)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Marshal(entries, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatal("Marshal is not deterministic")
	}
	f, err := Parse("rt", b1)
	if err != nil {
		t.Fatal(err)
	}
	if f.HeaderSize()%8 != 0 {
		t.Errorf("header size %d not a multiple of 8", f.HeaderSize())
	}
	if f.Len() != len(entries) {
		t.Fatalf("%d tensors, want %d", f.Len(), len(entries))
	}
	var prevEnd int64
	for _, info := range f.Tensors() { // sorted by name, data in the same order
		e := entries[info.Name]
		if info.DType != e.DType || !equalInts(info.Shape, append([]int{}, e.Shape...)) {
			t.Errorf("%q: %s %v, want %s %v", info.Name, info.DType, info.Shape, e.DType, e.Shape)
		}
		if info.Offsets[0] != prevEnd {
			t.Errorf("%q starts at %d, want %d (data in name order)", info.Name, info.Offsets[0], prevEnd)
		}
		prevEnd = info.Offsets[1]
		d, err := f.Data(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d, e.Data) {
			t.Errorf("%q: data %v, want %v", info.Name, d, e.Data)
		}
	}
	md := f.Metadata()
	if len(md) != len(meta) || md["note"] != meta["note"] || md["format"] != "pt" {
		t.Errorf("metadata %v, want %v", md, meta)
	}
}

func TestMarshalRejects(t *testing.T) {
	cases := []struct {
		name    string
		entries map[string]Entry
		meta    map[string]string
		detail  string
	}{
		{"unknown dtype", map[string]Entry{"a": {DType: "F4", Shape: []int{1}, Data: []byte{0}}}, nil, `"F4"`},
		{"short data", map[string]Entry{"a": {DType: F32, Shape: []int{2}, Data: make([]byte, 7)}}, nil, "needs 8 bytes, got 7"},
		{"long data", map[string]Entry{"a": {DType: BF16, Shape: []int{}, Data: make([]byte, 4)}}, nil, "needs 2 bytes, got 4"},
		{"negative dimension", map[string]Entry{"a": {DType: U8, Shape: []int{-1}}}, nil, "negative"},
		{"huge shape", map[string]Entry{"a": {DType: F64, Shape: []int{math.MaxInt / 2, math.MaxInt / 2}}}, nil, "too large"},
		{"reserved name", map[string]Entry{metadataKey: {DType: U8, Shape: []int{0}}}, nil, "reserved"},
		{"invalid UTF-8 name", map[string]Entry{"\xff": {DType: U8, Shape: []int{0}}}, nil, "UTF-8"},
		{"invalid UTF-8 metadata", nil, map[string]string{"k": "\xfe"}, "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Marshal(tc.entries, tc.meta)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %v, want ErrInvalid containing %q", err, tc.detail)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	entries := map[string]Entry{"x": {DType: I32, Shape: []int{3}, Data: []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}}}
	if err := WriteFile(path, entries, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d, _ := f.Data("x"); !bytes.Equal(d, entries["x"].Data) {
		t.Errorf("data %v", d)
	}
	if f.Metadata() != nil {
		t.Errorf("metadata %v, want none", f.Metadata())
	}
	// A failed write leaves neither the target nor a temporary file behind.
	bad := filepath.Join(dir, "bad.safetensors")
	if err := WriteFile(bad, map[string]Entry{"x": {DType: F32, Shape: []int{1}}}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v, want ErrInvalid", err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v after a failed write, want only w.safetensors", names)
	}
}
