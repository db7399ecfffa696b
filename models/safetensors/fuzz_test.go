package safetensors

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the header parser: it must never panic, every failure must
// be an *Error of a known kind, and every accepted file must describe tensors that lie inside it
// and survive a write/parse round trip unchanged.
func FuzzParse(f *testing.F) {
	seed, _ := Marshal(map[string]Entry{
		"a": {DType: F32, Shape: []int{2, 1}, Data: make([]byte, 8)},
		"b": {DType: BF16, Shape: []int{}, Data: []byte{1, 2}},
		"c": {DType: U8, Shape: []int{0}},
	}, map[string]string{"k": "v"})
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add(rawFile(`{}`, 0))
	f.Add(rawFile(`{"a":{"dtype":"F8_E5M2","shape":[3],"data_offsets":[0,3]}}`, 3))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12))
	f.Add(rawFile(`{"__metadata__":{"a":"b"},"x":{"dtype":"BOOL","shape":[1,1],"data_offsets":[0,1]}}`, 1))
	f.Add(withLength(1<<62, "{}"))
	f.Add([]byte{})
	kinds := []error{ErrTruncated, ErrHeaderSize, ErrHeaderJSON, ErrDType, ErrShape, ErrByteSize, ErrOffsets, ErrMetadata}

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || se.File != "fuzz" {
				t.Fatalf("error %v is not an *Error naming the file", err)
			}
			known := false
			for _, k := range kinds {
				known = known || errors.Is(err, k)
			}
			if !known {
				t.Fatalf("error %v has an unexpected kind", err)
			}
			return
		}
		entries := map[string]Entry{}
		var total int64
		for _, info := range file.Tensors() {
			d, err := file.Data(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(d)) != info.NumElements()*int64(info.DType.Size()) {
				t.Fatalf("%q: %d bytes for %s %v", info.Name, len(d), info.DType, info.Shape)
			}
			total += int64(len(d))
			entries[info.Name] = Entry{DType: info.DType, Shape: info.Shape, Data: d}
		}
		if file.DataOffset()+total != int64(len(data)) {
			t.Fatalf("tensors cover %d of %d data bytes", total, int64(len(data))-file.DataOffset())
		}
		again, err := Marshal(entries, file.Metadata())
		if err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		g, err := Parse("again", again)
		if err != nil {
			t.Fatalf("re-parsing: %v", err)
		}
		if g.Len() != file.Len() {
			t.Fatalf("round trip: %d tensors, want %d", g.Len(), file.Len())
		}
		for name, e := range entries {
			info, ok := g.Info(name)
			d, _ := g.Data(name)
			if !ok || info.DType != e.DType || !equalInts(info.Shape, e.Shape) || !bytes.Equal(d, e.Data) {
				t.Fatalf("round trip changed %q", name)
			}
		}
	})
}
