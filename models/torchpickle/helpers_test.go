package torchpickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"testing"
)

// record is one zip record of a test archive.
type record struct {
	name    string
	data    []byte
	deflate bool // compress the record (torch.save never does)
}

// mkzip writes records, uncompressed like torch.save does, in the given order.
func mkzip(t testing.TB, recs ...record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, r := range recs {
		method := zip.Store
		if r.deflate {
			method = zip.Deflate
		}
		f, err := w.CreateHeader(&zip.FileHeader{Name: r.name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pk writes pickle opcodes by hand, for inputs torch.save cannot produce.
type pk struct{ bytes.Buffer }

func newPk() *pk { p := &pk{}; p.op(0x80, 2); return p }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }

func (p *pk) str(s string) *pk {
	p.op('X')
	_ = binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pk) int(v int64) *pk {
	p.op(0x8a, 8)
	_ = binary.Write(p, binary.LittleEndian, v)
	return p
}

func (p *pk) ints(vs ...int64) *pk {
	p.op('(')
	for _, v := range vs {
		p.int(v)
	}
	return p.op('t')
}

func (p *pk) global(module, name string) *pk {
	p.op('c')
	p.WriteString(module + "\n" + name + "\n")
	return p
}

// tensor pushes _rebuild_tensor_v2(storage(kind, key, numel), offset, size, stride, False, OrderedDict()).
func (p *pk) tensor(kind, key string, numel, offset int64, size, stride []int64) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op('(', '(').str("storage").global("torch", kind).str(key).str("cpu").int(numel).op('t', 'Q')
	p.int(offset).ints(size...).ints(stride...)
	p.op(0x89).global("collections", "OrderedDict").op(')', 'R')
	return p.op('t', 'R')
}

func (p *pk) bytes() []byte { return append([]byte(nil), p.Bytes()...) }

// checkpoint wraps a pickle and storage records into a torch-style archive named "archive".
func checkpoint(t testing.TB, pickle []byte, storages ...record) []byte {
	recs := []record{{name: "archive/data.pkl", data: pickle}}
	for _, s := range storages {
		recs = append(recs, record{name: "archive/data/" + s.name, data: s.data, deflate: s.deflate})
	}
	recs = append(recs, record{name: "archive/version", data: []byte("3\n")})
	return mkzip(t, recs...)
}

// f32 encodes float32 values little-endian.
func f32(vs ...float32) []byte {
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, vs)
	return buf.Bytes()
}

// oneTensor is the pickle {"w": tensor(...)}.
func oneTensor(kind, key string, numel, offset int64, size, stride []int64) []byte {
	p := newPk()
	p.op('}', '(').str("w").tensor(kind, key, numel, offset, size, stride)
	return p.op('u', '.').bytes()
}

func i64s(v ...int64) []int64 { return v }
