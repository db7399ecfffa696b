package torchpickle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// want is one tensor of testdata/expected.json, written by testdata/gen.py from torch itself.
type want struct {
	DType  string `json:"dtype"`
	Shape  []int  `json:"shape"`
	SHA256 string `json:"sha256"`
}

func TestLoadTorchSaveFiles(t *testing.T) {
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]map[string]want
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatal(err)
	}
	if len(expected) < 8 {
		t.Fatalf("expected.json lists %d files; run testdata/gen.py", len(expected))
	}
	for _, file := range slices.Sorted(maps.Keys(expected)) {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", file)
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			exp := expected[file]
			if g, w := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(exp)); !slices.Equal(g, w) {
				t.Fatalf("keys %q, want %q", g, w)
			}
			for name, w := range exp {
				e := got[name]
				if string(e.DType) != w.DType || !slices.Equal(e.Shape, w.Shape) {
					t.Errorf("%s: %s %v, want %s %v", name, e.DType, e.Shape, w.DType, w.Shape)
				}
				n := 1
				for _, d := range e.Shape {
					n *= d
				}
				if len(e.Data) != n*e.DType.Size() {
					t.Errorf("%s: %d bytes for %s %v", name, len(e.Data), e.DType, e.Shape)
				}
				sum := sha256.Sum256(e.Data)
				if hex.EncodeToString(sum[:]) != w.SHA256 {
					t.Errorf("%s: bytes differ from torch's contiguous tensor", name)
				}
			}
			// Parse over the same bytes must agree with Load.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for name, e := range got {
				if !bytes.Equal(again[name].Data, e.Data) {
					t.Errorf("%s: Parse and Load disagree", name)
				}
			}
		})
	}
}

// TestViewValues checks materialised views element by element, independently of the hashes:
// views.pth slices one arange(24) storage at offsets and with strides.
func TestViewValues(t *testing.T) {
	for _, file := range []string{"views.pth", "legacy_views.pth"} {
		got, err := Load(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			want []float32
		}{
			{"first", []float32{2, 3, 4, 5, 6, 7}},
			{"second", []float32{11, 12, 15, 16, 19, 20}},
			{"every_other", []float32{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}},
		}
		for _, c := range cases {
			if d := got[c.name].Data; !bytes.Equal(d, f32(c.want...)) {
				t.Errorf("%s: %s = % x, want %v", file, c.name, d, c.want)
			}
		}
	}
}

// TestCraftedLegacy covers legacy checkpoints torch.save does not write by default: a
// protocol-4 magic pickle with a FRAME, storages of several dtypes in key order, and a pickle
// larger than the first read window (so the window must grow).
func TestCraftedLegacy(t *testing.T) {
	t.Run("protocol 4 magic", func(t *testing.T) {
		c := newLegacy(oneLegacyTensor("FloatStorage", "0", 2, 0, i64s(2), i64s(1)), legacyStorage{count: 2, data: f32(1, 2)})
		c.magic = append([]byte{0x80, 4, 0x95, 13, 0, 0, 0, 0, 0, 0, 0}, c.magic[2:]...)
		data := c.bytes()
		got, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got["w"].Data, f32(1, 2)) {
			t.Fatalf("got % x", got["w"].Data)
		}
	})
	t.Run("storages in key order", func(t *testing.T) {
		main := legacyPk().op('}', '(').str("a").tensor("HalfStorage", "0", 3, 1, i64s(2), i64s(1)).
			str("b").tensor("FloatStorage", "1", 1, 0, i64s(), i64s()).op('u', '.').bytes()
		c := newLegacy(main, legacyStorage{count: 3, data: []byte{1, 2, 3, 4, 5, 6}}, legacyStorage{count: 1, data: f32(9)})
		data := c.bytes()
		got, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if a, b := got["a"], got["b"]; a.DType != safetensors.F16 || !bytes.Equal(a.Data, []byte{3, 4, 5, 6}) || !bytes.Equal(b.Data, f32(9)) {
			t.Fatalf("got a=%s % x, b=% x", a.DType, a.Data, b.Data)
		}
	})
	t.Run("pickle larger than the first window", func(t *testing.T) {
		p := legacyPk().op('}', '(')
		const n = 3000
		for i := range n {
			p.str(strconv.Itoa(i)).tensor("FloatStorage", "0", 4, int64(i%4), i64s(1), i64s(1))
		}
		c := newLegacy(p.op('u', '.').bytes(), legacyStorage{count: 4, data: f32(0, 1, 2, 3)})
		data := c.bytes()
		if len(data) < 4<<16 {
			t.Fatalf("test pickle of %d bytes is too small to grow the window twice", len(data))
		}
		got, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n || !bytes.Equal(got["2998"].Data, f32(2)) {
			t.Fatalf("got %d tensors, 2998 = % x", len(got), got["2998"].Data)
		}
	})
}

// oldTar is a checkpoint in torch's oldest format: a tar archive of storages, tensors and pickle.
func oldTar(t testing.TB) []byte {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, name := range []string{"storages", "tensors", "pickle"} {
		body := []byte{0x80, 2, 'K', 0, '.'}
		if err := w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCraftedViews(t *testing.T) {
	storage := record{name: "0", data: f32(0, 1, 2, 3, 4, 5, 6, 7)}
	cases := []struct {
		name         string
		offset       int64
		size, stride []int64
		shape        []int
		want         []float32
	}{
		{"transpose", 0, i64s(3, 2), i64s(1, 3), []int{3, 2}, []float32{0, 3, 1, 4, 2, 5}},
		{"contiguous at offset", 2, i64s(2, 2), i64s(2, 1), []int{2, 2}, []float32{2, 3, 4, 5}},
		{"size-1 dim with odd stride", 1, i64s(1, 3), i64s(99, 1), []int{1, 3}, []float32{1, 2, 3}},
		// element [i][j][k] = storage[i + 4j + 2k]
		{"3-d strided", 0, i64s(2, 2, 2), i64s(1, 4, 2), []int{2, 2, 2}, []float32{0, 2, 4, 6, 1, 3, 5, 7}},
		{"column", 1, i64s(4), i64s(2), []int{4}, []float32{1, 3, 5, 7}},
		{"broadcast row", 5, i64s(2, 3), i64s(0, 1), []int{2, 3}, []float32{5, 6, 7, 5, 6, 7}},
		{"scalar", 7, i64s(), i64s(), []int{}, []float32{7}},
		{"empty with big stride", 0, i64s(0, 5), i64s(100, 1), []int{0, 5}, []float32{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := checkpoint(t, oneTensor("FloatStorage", "0", 8, c.offset, c.size, c.stride), storage)
			got, err := Parse(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			e := got["w"]
			if e.DType != safetensors.F32 || !slices.Equal(e.Shape, c.shape) || !bytes.Equal(e.Data, f32(c.want...)) {
				t.Fatalf("got %s %v % x, want F32 %v %v", e.DType, e.Shape, e.Data, c.shape, c.want)
			}
		})
	}
}

// TestCraftedDicts covers the container rules and parameter/OrderedDict forms on hand-made pickles.
func TestCraftedDicts(t *testing.T) {
	tensor := func(p *pk) { p.tensor("FloatStorage", "0", 1, 0, nil, nil) }
	dict := func(p *pk, keys ...string) {
		p.op('}', '(')
		for _, k := range keys {
			p.str(k)
			tensor(p)
		}
		p.op('u')
	}
	cases := []struct {
		name  string
		build func(p *pk)
		want  []string
	}{
		{"plain", func(p *pk) { dict(p, "a", "b") }, []string{"a", "b"}},
		{"params_ema before params", func(p *pk) {
			p.op('}', '(').str("params")
			dict(p, "p")
			p.str("params_ema")
			dict(p, "ema")
			p.op('u')
		}, []string{"ema"}},
		{"model", func(p *pk) {
			p.op('}', '(').str("model")
			dict(p, "m")
			p.str("epoch").int(3).op('u')
		}, []string{"m"}},
		{"single dict value", func(p *pk) {
			p.op('}', '(').str("net_g")
			dict(p, "g")
			p.op('u')
		}, []string{"g"}},
		{"module prefix on all keys", func(p *pk) { dict(p, "module.a", "module.b") }, []string{"a", "b"}},
		{"module prefix on some keys is kept", func(p *pk) { dict(p, "module.a", "b") }, []string{"b", "module.a"}},
		{"parameter with state", func(p *pk) {
			p.op('}', '(').str("p").global("torch._utils", "_rebuild_parameter_with_state").op('(')
			tensor(p)
			p.op(0x88).global("collections", "OrderedDict").op(')', 'R', '}', 't', 'R', 'u')
		}, []string{"p"}},
		{"OrderedDict with attributes", func(p *pk) {
			p.global("collections", "OrderedDict").op(')', 'R', '(').str("a")
			tensor(p)
			p.op('u', '}', 'N', 0x86, 'b')
		}, []string{"a"}},
		{"non-tensor values skipped", func(p *pk) {
			p.op('}', '(').str("a")
			tensor(p)
			p.str("n").op('N').str("l").op(']', '(').int(1).op('e').op('u')
		}, []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPk()
			c.build(p)
			data := checkpoint(t, p.op('.').bytes(), record{name: "0", data: f32(1.5)})
			got, err := Parse(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, c.want) {
				t.Fatalf("keys %q, want %q", keys, c.want)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good, err := os.ReadFile("testdata/views.pth")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile("testdata/legacy_dtypes.pth")
	if err != nil {
		t.Fatal(err)
	}
	lst := legacyStorage{count: 4, data: f32(0, 1, 2, 3)}
	lw := oneLegacyTensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1))
	lck := func(edit func(c *legacyCk)) []byte {
		c := newLegacy(lw, lst)
		edit(c)
		return c.bytes()
	}
	twoStorages := legacyPk().op('}', '(').str("a").tensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1)).
		str("b").tensor("FloatStorage", "1", 4, 0, i64s(4), i64s(1)).op('u', '.').bytes()
	// where the storage key list and the first storage's element count start in lck's files
	lc := newLegacy(lw, lst)
	keysAt := len(lc.magic) + len(lc.protocol) + len(lc.sysInfo) + len(lc.main)
	dataAt := len(lc.bytes()) - 8 - len(lst.data)
	st := record{name: "0", data: f32(0, 1, 2, 3)}
	ck := func(pickle []byte) []byte { return checkpoint(t, pickle, st) }
	call := func(module, name string) []byte {
		return newPk().global(module, name).str("echo hi").op(0x85, 'R', '.').bytes()
	}
	deep := append([]byte{0x80, 2}, bytes.Repeat([]byte{'('}, 5000)...)

	cases := []struct {
		name string
		data []byte
		kind error
		msg  string // substring the message must contain
	}{
		{"empty file", nil, ErrArchive, "not a torch zip"},
		{"truncated zip", good[:len(good)/2], ErrArchive, "truncated"},
		{"text file", []byte("hello, world\n"), ErrArchive, "not a torch zip"},
		{"legacy tar format", oldTar(t), ErrLegacyFormat, "tar archive from a very old torch"},
		{"legacy truncated storage data", legacy[:len(legacy)-3], ErrArchive, "truncated"},
		{"legacy truncated pickle", legacy[:100], ErrPickle, "at byte"},
		{"plain pickle", []byte{0x80, 2, '}', '.'}, ErrArchive, "magic number"},
		{"legacy wrong magic", lck(func(c *legacyCk) { c.magic[5]++ }), ErrArchive, "magic number"},
		{"legacy wrong protocol", lck(func(c *legacyCk) { c.protocol = newPk().op('M', 0xe8, 0x03, '.').bytes() }), ErrArchive, "protocol version 1000, want 1001"},
		{"legacy big endian", lck(func(c *legacyCk) { c.sysInfo = sysInfo(false) }), ErrByteOrder, "big-endian"},
		{"legacy sys_info not a dict", lck(func(c *legacyCk) { c.sysInfo = newPk().op('N', '.').bytes() }), ErrArchive, "sys_info is a None"},
		{"legacy sys_info without byte order", lck(func(c *legacyCk) { c.sysInfo = newPk().op('}', '.').bytes() }), ErrArchive, "little_endian is a None"},
		{"legacy storage count mismatch", lck(func(c *legacyCk) { c.keys = append(c.keys, "1") }), ErrArchive, "names 2 storages but the pickle uses 1"},
		{"legacy storage not listed", lck(func(c *legacyCk) { c.main = twoStorages }), ErrArchive, "names 1 storages but the pickle uses 2"},
		{"legacy unknown storage key", lck(func(c *legacyCk) { c.keys = []string{"9"} }), ErrArchive, `storage "9", which the pickle does not use`},
		{"legacy storage listed twice", lck(func(c *legacyCk) { c.main, c.keys = twoStorages, []string{"0", "0"} }), ErrArchive, `storage "0" twice`},
		{"legacy element count differs", lck(func(c *legacyCk) { c.storages[0].count = 5 }), ErrArchive, "holds 5 elements but the pickle says 4"},
		{"legacy element count beyond file", lck(func(c *legacyCk) {
			c.main = oneLegacyTensor("FloatStorage", "0", 1000, 0, i64s(4), i64s(1))
			c.storages[0].count = 1000
		}), ErrArchive, "needs 4000 bytes but only 16 remain"},
		{"legacy huge element count", lck(func(c *legacyCk) {
			c.main = oneLegacyTensor("FloatStorage", "0", math.MaxInt64/4, 0, i64s(4), i64s(1))
			c.storages[0].count = math.MaxInt64 / 4
		}), ErrArchive, "only 16 remain"},
		{"legacy file ends before element count", lck(func(c *legacyCk) { c.storages = nil })[:dataAt+3], ErrArchive, "ends before the element count"},
		{"legacy key list not a list", append(lc.bytes()[:keysAt], 0x80, 2, 'N', '.'), ErrArchive, "key list is a None"},
		{"legacy zip persistent id", lck(func(c *legacyCk) { c.main = oneTensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1)) }), ErrPickle, "want a 6-tuple"},
		{"legacy storage view", lck(func(c *legacyCk) {
			c.main = bytes.Replace(lw, []byte{'N', 't', 'Q'}, append(newPk().str("1").int(0).int(2).op(0x87).bytes()[2:], 't', 'Q'), 1)
		}), ErrUnsupported, "storage views"},
		{"legacy os.system", lck(func(c *legacyCk) { c.main = call("os", "system") }), ErrUnsupported, "os.system"},
		{"legacy module persistent id", lck(func(c *legacyCk) {
			c.main = newPk().op('(').str("module").op('N', 'N', 'N', 't', 'Q', '.').bytes()
		}), ErrPickle, "want a 6-tuple"},
		{"legacy stride outside storage", lck(func(c *legacyCk) { c.main = oneLegacyTensor("FloatStorage", "0", 4, 0, i64s(2, 2), i64s(3, 1)) }), ErrTensor, "outside storage"},
		{"zip without pickle", mkzip(t, record{name: "archive/version", data: []byte("3")}), ErrArchive, "data.pkl"},
		{"two pickles", mkzip(t, record{name: "a/data.pkl", data: nil}, record{name: "b/data.pkl", data: nil}), ErrArchive, "two pickles"},
		{"big endian", mkzip(t, record{name: "archive/data.pkl", data: oneTensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1))},
			record{name: "archive/byteorder", data: []byte("big")}, record{name: "archive/data/0", data: f32(1, 2, 3, 4)}), ErrByteOrder, "big-endian"},
		{"bad opcode", ck([]byte{0x80, 2, 0xff, '.'}), ErrPickle, "unknown opcode 0xff"},
		{"no STOP", ck([]byte{0x80, 2, '}'}), ErrPickle, "without STOP"},
		{"protocol 6", ck([]byte{0x80, 6, '}', '.'}), ErrPickle, "protocol 6"},
		{"os.system", ck(call("os", "system")), ErrUnsupported, "os.system; convert the file to .safetensors"},
		{"posix.system", ck(call("posix", "system")), ErrUnsupported, "posix.system"},
		{"builtins.eval", ck(call("builtins", "eval")), ErrUnsupported, "builtins.eval"},
		{"builtins.eval via STACK_GLOBAL", ck(newPk().str("builtins").str("eval").op(0x93).str("1").op(0x85, 'R', '.').bytes()), ErrUnsupported, "builtins.eval"},
		{"__builtin__.getattr", ck(call("__builtin__", "getattr")), ErrUnsupported, "__builtin__.getattr"},
		{"torch.storage._load_from_bytes", ck(call("torch.storage", "_load_from_bytes")), ErrUnsupported, "torch.storage._load_from_bytes"},
		{"torch.load", ck(call("torch", "load")), ErrUnsupported, "torch.load"},
		{"reduce of a storage class", ck(newPk().global("torch", "FloatStorage").op(')', 'R', '.').bytes()), ErrUnsupported, "calling torch.FloatStorage"},
		{"reduce of a string", ck(newPk().str("os.system").op(')', 'R', '.').bytes()), ErrUnsupported, "calling a str"},
		{"OrderedDict with arguments", ck(newPk().global("collections", "OrderedDict").op(']', 0x85, 'R', '.').bytes()), ErrUnsupported, "OrderedDict"},
		{"NEWOBJ", ck(newPk().global("collections", "OrderedDict").op(')', 0x81, '.').bytes()), ErrUnsupported, "NEWOBJ"},
		{"INST", ck([]byte("(ios\nsystem\n.")), ErrUnsupported, "INST"},
		{"BUILD on a tensor", ck(newPk().tensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1)).op('}', 'b', '.').bytes()), ErrUnsupported, "state of a tensor"},
		{"OrderedDict state of type int", ck(newPk().global("collections", "OrderedDict").op(')', 'R', 'K', 1, 'b', '.').bytes()), ErrUnsupported, "OrderedDict state of type int"},
		{"parameter of a string", ck(newPk().global("torch._utils", "_rebuild_parameter").op('(').str("x").op(0x89, '}', 't', 'R', '.').bytes()), ErrPickle, "want a tensor"},
		{"BUILD on a plain dict", ck(newPk().op('}', '}', 'b', '.').bytes()), ErrUnsupported, "state of a dict"},
		{"unknown storage type", ck(oneTensor("ComplexFloatStorage", "0", 4, 0, i64s(4), i64s(1))), ErrUnsupported, "torch.ComplexFloatStorage"},
		{"storage record missing", ck(oneTensor("FloatStorage", "7", 4, 0, i64s(4), i64s(1))), ErrArchive, `"archive/data/7" is missing`},
		{"storage larger than its record", ck(oneTensor("FloatStorage", "0", 100, 0, i64s(4), i64s(1))), ErrTensor, "needs 400 bytes but its record holds 16"},
		{"shape larger than storage", ck(oneTensor("FloatStorage", "0", 4, 0, i64s(3, 3), i64s(0, 1))), ErrTensor, "more elements than its storage"},
		{"stride outside storage", ck(oneTensor("FloatStorage", "0", 4, 0, i64s(2, 2), i64s(3, 1))), ErrTensor, "outside storage"},
		{"offset outside storage", ck(oneTensor("FloatStorage", "0", 4, 4, i64s(1), i64s(1))), ErrTensor, "outside storage"},
		{"shape product overflows", ck(oneTensor("FloatStorage", "0", 4, 0, i64s(1<<30, 1<<30, 1<<30), i64s(0, 0, 0))), ErrTensor, "more elements"},
		{"huge dimension", ck(oneTensor("FloatStorage", "0", 4, 0, i64s(math.MaxInt64), i64s(1))), ErrTensor, "not a sane"},
		{"negative stride", ck(oneTensor("FloatStorage", "0", 4, 3, i64s(4), i64s(-1))), ErrTensor, "not a sane"},
		{"rank mismatch", ck(oneTensor("FloatStorage", "0", 4, 0, i64s(2, 2), i64s(1))), ErrTensor, "one rank"},
		{"storage numel overflows", ck(oneTensor("LongStorage", "0", math.MaxInt64/4, 0, i64s(1), i64s(1))), ErrTensor, "overflows"},
		{"storage with two dtypes", ck(newPk().op('}', '(').str("a").tensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1)).
			str("b").tensor("IntStorage", "0", 4, 0, i64s(4), i64s(1)).op('u', '.').bytes()), ErrTensor, "referenced as F32[4] and as I32[4]"},
		{"bad persistent id", ck(newPk().str("storage").op('Q', '.').bytes()), ErrPickle, "5-tuple"},
		{"deep nesting", ck(deep), ErrPickle, "nesting deeper"},
		{"memo miss", ck([]byte{0x80, 2, 'h', 5, '.'}), ErrPickle, "never stored"},
		{"stack underflow", ck([]byte{0x80, 2, 't', '.'}), ErrPickle, "no MARK"},
		{"string longer than pickle", ck([]byte{0x80, 2, 'X', 0xff, 0xff, 0xff, 0xff, '.'}), ErrPickle, "longer than the pickle"},
		{"integer over 64 bits", ck([]byte{0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.'}), ErrPickle, "64 bits"},
		{"list key", ck(newPk().op('}', ']', 'N', 's', '.').bytes()), ErrUnsupported, "dict key of type list"},
		{"top level is a list", ck([]byte{0x80, 2, ']', '.'}), ErrNoStateDict, "holds a list"},
		{"dict without tensors", ck(newPk().op('}').str("epoch").int(3).op('s', '.').bytes()), ErrNoStateDict, "holds no tensors"},
		{"extra values at STOP", ck([]byte{0x80, 2, '}', '}', '.'}), ErrPickle, "left on the stack"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil {
				t.Fatalf("no error, got %d tensors", len(got))
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, c.kind) {
				t.Fatalf("error %v (%T), want an *Error of kind %v", err, err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}

// TestStorageRecords covers how storage records are read: compressed records, corrupted bytes
// and the bound on bytes copied for overlapping strided views.
func TestStorageRecords(t *testing.T) {
	t.Run("deflated record", func(t *testing.T) {
		data := checkpoint(t, oneTensor("FloatStorage", "0", 4, 0, i64s(2, 2), i64s(1, 2)), record{name: "0", data: f32(1, 2, 3, 4), deflate: true})
		got, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got["w"].Data, f32(1, 3, 2, 4)) {
			t.Fatalf("got % x", got["w"].Data)
		}
	})
	t.Run("deflated record shorter than storage", func(t *testing.T) {
		data := checkpoint(t, oneTensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1)), record{name: "0", data: f32(1, 2, 3), deflate: true})
		_, err := Parse(bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, ErrTensor) || !strings.Contains(err.Error(), `tensor "w"`) {
			t.Fatalf("error %v, want ErrTensor naming the tensor", err)
		}
	})
	t.Run("corrupted record", func(t *testing.T) {
		payload := f32(1.25, 2.5, 3.75, 5)
		data := checkpoint(t, oneTensor("FloatStorage", "0", 4, 0, i64s(4), i64s(1)), record{name: "0", data: payload})
		i := bytes.Index(data, payload)
		if i < 0 {
			t.Fatal("payload not found")
		}
		data[i+1] ^= 0xff
		_, err := Parse(bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, ErrArchive) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("error %v, want a checksum ErrArchive", err)
		}
	})
	t.Run("overlapping views copy too much", func(t *testing.T) {
		const n = 256
		p := newPk().op('}', '(')
		for i := range 8 {
			p.str(string(rune('a'+i))).tensor("FloatStorage", "0", n*n, 0, i64s(n, n), i64s(1, n))
		}
		data := checkpoint(t, p.op('u', '.').bytes(), record{name: "0", data: make([]byte, 4*n*n)})
		_, err := Parse(bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, ErrTensor) || !strings.Contains(err.Error(), "overlapping strided views") {
			t.Fatalf("error %v, want the copy bound", err)
		}
		// Three such views stay within the bound.
		p = newPk().op('}', '(')
		for i := range 3 {
			p.str(string(rune('a'+i))).tensor("FloatStorage", "0", n*n, 0, i64s(n, n), i64s(1, n))
		}
		data = checkpoint(t, p.op('u', '.').bytes(), record{name: "0", data: make([]byte, 4*n*n)})
		if _, err := Parse(bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.pth")
	if err := os.WriteFile(path, oldTar(t), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, ErrLegacyFormat) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name the file", err)
	}
	if _, err := Load("testdata/missing.pth"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
