package torchpickle

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse (seeded with every testdata file, zip and legacy): it must never panic, every failure must be an *Error
// of a known kind, and every accepted file must give tensors of a known dtype whose bytes match
// their shape.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.pth")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files in testdata (%v)", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(checkpoint(f, oneTensor("FloatStorage", "0", 8, 1, i64s(2, 2, 2), i64s(1, 4, 2)), record{name: "0", data: f32(0, 1, 2, 3, 4, 5, 6, 7)}))
	f.Add(checkpoint(f, []byte("\x80\x02cos\nsystem\nX\x01\x00\x00\x00x\x85R.")))
	// legacy (torch < 1.6) streams: two storages of different dtypes, and the old tar format
	f.Add(newLegacy(legacyPk().op('}', '(').str("a").tensor("HalfStorage", "0", 3, 1, i64s(2), i64s(1)).
		str("b").tensor("FloatStorage", "1", 4, 0, i64s(2, 2), i64s(1, 2)).op('u', '.').bytes(),
		legacyStorage{count: 3, data: []byte{1, 2, 3, 4, 5, 6}}, legacyStorage{count: 4, data: f32(0, 1, 2, 3)}).bytes())
	f.Add(oldTar(f))
	f.Add([]byte{})
	kinds := []error{ErrLegacyFormat, ErrArchive, ErrByteOrder, ErrPickle, ErrUnsupported, ErrTensor, ErrNoStateDict}

	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, not an *Error", err, err)
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
		if len(got) == 0 {
			t.Fatal("no error and no tensors")
		}
		for name, e := range got {
			if !e.DType.Known() {
				t.Fatalf("%q: unknown dtype %q", name, e.DType)
			}
			n := int64(1)
			for _, d := range e.Shape {
				if d < 0 {
					t.Fatalf("%q: shape %v", name, e.Shape)
				}
				n *= int64(d)
			}
			if int64(len(e.Data)) != n*int64(e.DType.Size()) {
				t.Fatalf("%q: %d bytes for %s %v", name, len(e.Data), e.DType, e.Shape)
			}
		}
	})
}
