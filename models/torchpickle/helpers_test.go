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
type pk struct {
	bytes.Buffer
	legacy bool // persistent ids are legacy 6-tuples (view_metadata None)
}

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
	p.op('(', '(').str("storage").global("torch", kind).str(key).str("cpu").int(numel)
	if p.legacy {
		p.op('N')
	}
	p.op('t', 'Q')
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

// legacyPk starts a pickle whose tensors use legacy (torch < 1.6) 6-tuple persistent ids.
func legacyPk() *pk { p := newPk(); p.legacy = true; return p }

// legacyStorage is one storage of a legacy checkpoint: its element count and bytes.
type legacyStorage struct {
	count uint64
	data  []byte
}

// legacyCk is a legacy checkpoint in parts, so tests can break each one.
type legacyCk struct {
	magic, protocol, sysInfo, main []byte // whole pickles
	keys                           []string
	storages                       []legacyStorage
}

// newLegacy is a well-formed legacy checkpoint of main and storages named "0", "1", ….
func newLegacy(main []byte, storages ...legacyStorage) *legacyCk {
	c := &legacyCk{
		magic:    []byte{0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'},
		protocol: newPk().op('M', 0xe9, 0x03, '.').bytes(),
		sysInfo:  sysInfo(true),
		main:     main,
		storages: storages,
	}
	for i := range storages {
		c.keys = append(c.keys, string(rune('0'+i)))
	}
	return c
}

func sysInfo(littleEndian bool) []byte {
	le := byte(0x88)
	if !littleEndian {
		le = 0x89
	}
	return newPk().op('}', '(').str("protocol_version").op('M', 0xe9, 0x03).str("little_endian").op(le).
		str("type_sizes").op('}', '(').str("short").op('K', 2).str("int").op('K', 4).str("long").op('K', 8).op('u', 'u', '.').bytes()
}

func (c *legacyCk) bytes() []byte {
	var b bytes.Buffer
	b.Write(c.magic)
	b.Write(c.protocol)
	b.Write(c.sysInfo)
	b.Write(c.main)
	keys := newPk().op(']', '(')
	for _, k := range c.keys {
		keys.str(k)
	}
	b.Write(keys.op('e', '.').bytes())
	for _, s := range c.storages {
		_ = binary.Write(&b, binary.LittleEndian, s.count)
		b.Write(s.data)
	}
	return b.Bytes()
}

// oneLegacyTensor is the legacy pickle {"w": tensor(...)}.
func oneLegacyTensor(kind, key string, numel, offset int64, size, stride []int64) []byte {
	p := legacyPk()
	p.op('}', '(').str("w").tensor(kind, key, numel, offset, size, stride)
	return p.op('u', '.').bytes()
}
