package torchpickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// Limits of the unpickler. A state dict needs a few entries of stack, a nesting depth of three
// and about ten values and memo entries per tensor; these only stop hostile input from growing
// without bound (together they cap the unpickler's memory at a few hundred MiB). They are
// variables only so tests can lower them.
var (
	maxValues = 1 << 23 // values pushed in all
	maxMemo   = 1 << 21 // memo entries
	maxMarks  = 1000    // MARK nesting depth
)

// maxDims bounds a tensor's rank.
const maxDims = 64

// The values the restricted unpickler builds. Nothing else can appear on its stack.
type (
	// pyTuple is an immutable Python tuple.
	pyTuple []any
	// pyList is a Python list (a pointer, so memoised references see later appends).
	pyList struct{ items []any }
	// pyDict is a dict or collections.OrderedDict with hashable scalar keys, in insertion order.
	pyDict struct {
		ordered bool // built by collections.OrderedDict (so BUILD may set attributes on it)
		keys    []any
		vals    []any
		index   map[any]int
	}
	// pyGlobal is one of the allow-listed globals; it is a name, never a callable.
	pyGlobal struct{ module, name string }
	// storageRef is a storage named by a persistent id: its record key, dtype and element count.
	storageRef struct {
		key   string
		dtype safetensors.DType
		numel int64
	}
	// tensorRef is a view of a storage, as torch._utils._rebuild_tensor_v2 describes it.
	tensorRef struct {
		storage *storageRef
		offset  int64
		shape   []int
		stride  []int64
	}
)

func newDict(ordered bool) *pyDict { return &pyDict{ordered: ordered, index: map[any]int{}} }

// set inserts or replaces key. Only scalar keys are accepted; a state dict has string keys.
func (d *pyDict) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, float64, nil:
	default:
		return newErr(ErrUnsupported, fmt.Sprintf("dict key of type %s; convert the file to .safetensors", typeName(k)))
	}
	if i, ok := d.index[k]; ok {
		d.vals[i] = v
		return nil
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

func (d *pyDict) get(k string) (any, bool) {
	i, ok := d.index[k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// storageDTypes maps the legacy typed-storage class names torch.save writes into persistent ids
// to the dtype of their elements.
var storageDTypes = map[string]safetensors.DType{
	"FloatStorage":    safetensors.F32,
	"HalfStorage":     safetensors.F16,
	"BFloat16Storage": safetensors.BF16,
	"DoubleStorage":   safetensors.F64,
	"LongStorage":     safetensors.I64,
	"IntStorage":      safetensors.I32,
	"ShortStorage":    safetensors.I16,
	"CharStorage":     safetensors.I8,
	"ByteStorage":     safetensors.U8,
	"BoolStorage":     safetensors.Bool,
}

// allowedGlobal reports whether module.name is on the allow-list.
func allowedGlobal(module, name string) bool {
	switch module {
	case "collections":
		return name == "OrderedDict"
	case "torch._utils":
		return name == "_rebuild_tensor_v2" || name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state"
	case "torch":
		_, ok := storageDTypes[name]
		return ok
	}
	return false
}

// unpickler is a stack machine over one in-memory pickle. It never recurses, so nesting costs
// only stack entries, which are bounded by maxValues and maxMarks.
type unpickler struct {
	data     []byte
	pos      int
	pushes   int
	stack    []any
	marks    []int
	memo     map[int64]any
	storages map[string]*storageRef
	legacy   bool // persistent ids are torch < 1.6 6-tuples with view metadata
	short    bool // the last error came from running out of data
}

// unpickle runs data to its STOP opcode and returns the value it leaves.
func unpickle(data []byte) (any, error) {
	return newUnpickler(data, 0, false).run()
}

// newUnpickler returns an unpickler for the pickle that starts at data[pos]; after run, u.pos
// is just past its STOP.
func newUnpickler(data []byte, pos int, legacy bool) *unpickler {
	return &unpickler{data: data, pos: pos, memo: map[int64]any{}, storages: map[string]*storageRef{}, legacy: legacy}
}

func (u *unpickler) errf(format string, args ...any) *Error {
	return newErr(ErrPickle, fmt.Sprintf("at byte %d: ", u.pos)+fmt.Sprintf(format, args...))
}

func (u *unpickler) read(n int) ([]byte, error) {
	if n < 0 || n > len(u.data)-u.pos {
		u.short = true
		return nil, u.errf("needs %d more bytes but only %d remain", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b, nil
}

// readLine reads up to and excluding the next '\n' (text opcodes: GLOBAL, PUT, GET).
func (u *unpickler) readLine() (string, error) {
	for i := u.pos; i < len(u.data); i++ {
		if u.data[i] == '\n' {
			s := string(u.data[u.pos:i])
			u.pos = i + 1
			return s, nil
		}
	}
	u.short = true
	return "", u.errf("unterminated line")
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (u *unpickler) push(v any) error {
	if u.pushes++; u.pushes > maxValues {
		return newErr(ErrPickle, fmt.Sprintf("more than %d values; this is not a state dict", maxValues))
	}
	u.stack = append(u.stack, v)
	return nil
}

func (u *unpickler) pop() (any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		return nil, u.errf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		return nil, u.errf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark removes and returns the values above the innermost MARK.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.errf("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) putMemo(idx int64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := u.memo[idx]; !ok && len(u.memo) >= maxMemo {
		return u.errf("more than %d memo entries; this is not a state dict", maxMemo)
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) getMemo(idx int64) error {
	v, ok := u.memo[idx]
	if !ok {
		return u.errf("memo entry %d was never stored", idx)
	}
	return u.push(v)
}

// global resolves a GLOBAL/STACK_GLOBAL name against the allow-list; it never imports anything.
func (u *unpickler) global(module, name string) error {
	if !allowedGlobal(module, name) {
		return unsupported(module + "." + name)
	}
	return u.push(pyGlobal{module, name})
}

func (u *unpickler) run() (any, error) {
	for {
		if u.pos >= len(u.data) {
			u.short = true
			return nil, u.errf("pickle ends without STOP")
		}
		op := u.data[u.pos]
		u.pos++
		if err := u.step(op); err != nil {
			if err == errStop {
				v, err := u.pop()
				if err != nil {
					return nil, err
				}
				if len(u.stack) != 0 || len(u.marks) != 0 {
					return nil, u.errf("values left on the stack at STOP")
				}
				return v, nil
			}
			return nil, err
		}
	}
}

// errStop is how step tells run that it reached STOP; it never leaves run.
var errStop = newErr(ErrPickle, "STOP")

// step executes one opcode.
func (u *unpickler) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		b, err := u.read(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return u.errf("pickle protocol %d is newer than 5", b[0])
		}
		return nil
	case 0x95: // FRAME: a length hint only
		_, err := u.read(8)
		return err
	case '.': // STOP
		return errStop
	case '(': // MARK
		if len(u.marks) >= maxMarks {
			return u.errf("nesting deeper than %d", maxMarks)
		}
		u.marks = append(u.marks, len(u.stack))
		return nil
	case '0': // POP
		_, err := u.pop()
		return err
	case '1': // POP_MARK
		_, err := u.popMark()
		return err
	case 'N': // NONE
		return u.push(nil)
	case 0x88: // NEWTRUE
		return u.push(true)
	case 0x89: // NEWFALSE
		return u.push(false)
	case 'J': // BININT
		v, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.push(int64(int32(uint32(v))))
	case 'K': // BININT1
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case 'M': // BININT2
		v, err := u.readUint(2)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case 0x8a, 0x8b: // LONG1, LONG4
		width := 1
		if op == 0x8b {
			width = 4
		}
		n, err := u.readUint(width)
		if err != nil {
			return err
		}
		if n > 8 {
			return u.errf("integer of %d bytes does not fit 64 bits", n)
		}
		b, err := u.read(int(n))
		if err != nil {
			return err
		}
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if n > 0 && n < 8 && b[n-1]&0x80 != 0 { // sign-extend two's complement
			v |= ^uint64(0) << (8 * n)
		}
		return u.push(int64(v))
	case 'G': // BINFLOAT (big-endian)
		b, err := u.read(8)
		if err != nil {
			return err
		}
		return u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d, 'T', 'U': // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING
		width := lengthWidth(op)
		n, err := u.readUint(width)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)) {
			u.short = true
			return u.errf("string of %d bytes is longer than the pickle", n)
		}
		b, err := u.read(int(n))
		if err != nil {
			return err
		}
		return u.push(string(b))
	case 'B', 'C', 0x8e: // BINBYTES, SHORT_BINBYTES, BINBYTES8
		width := lengthWidth(op)
		n, err := u.readUint(width)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)) {
			u.short = true
			return u.errf("bytes of length %d are longer than the pickle", n)
		}
		b, err := u.read(int(n))
		if err != nil {
			return err
		}
		return u.push(append([]byte(nil), b...))
	case ')': // EMPTY_TUPLE
		return u.push(pyTuple{})
	case 't': // TUPLE
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(pyTuple(items))
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op-0x85) + 1
		t := make(pyTuple, n)
		for i := n - 1; i >= 0; i-- {
			v, err := u.pop()
			if err != nil {
				return err
			}
			t[i] = v
		}
		return u.push(t)
	case ']': // EMPTY_LIST
		return u.push(&pyList{})
	case 'l': // LIST
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&pyList{items: items})
	case 'a', 'e': // APPEND, APPENDS
		var items []any
		if op == 'a' {
			v, err := u.pop()
			if err != nil {
				return err
			}
			items = []any{v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return err
			}
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		l, ok := t.(*pyList)
		if !ok {
			return u.errf("APPEND to a %s", typeName(t))
		}
		l.items = append(l.items, items...)
		return nil
	case '}': // EMPTY_DICT
		return u.push(newDict(false))
	case 'd': // DICT
		items, err := u.popMark()
		if err != nil {
			return err
		}
		d := newDict(false)
		if err := u.setItems(d, items); err != nil {
			return err
		}
		return u.push(d)
	case 's', 'u': // SETITEM, SETITEMS
		var items []any
		if op == 's' {
			v, err := u.pop()
			if err != nil {
				return err
			}
			k, err := u.pop()
			if err != nil {
				return err
			}
			items = []any{k, v}
		} else {
			var err error
			if items, err = u.popMark(); err != nil {
				return err
			}
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		d, ok := t.(*pyDict)
		if !ok {
			return u.errf("SETITEM on a %s", typeName(t))
		}
		return u.setItems(d, items)
	case 'q': // BINPUT
		i, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.putMemo(int64(i))
	case 'r': // LONG_BINPUT
		i, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.putMemo(int64(i))
	case 0x94: // MEMOIZE
		return u.putMemo(int64(len(u.memo)))
	case 'p', 'g': // PUT, GET (text index)
		line, err := u.readLine()
		if err != nil {
			return err
		}
		i, perr := strconv.ParseInt(line, 10, 64)
		if perr != nil {
			return u.errf("bad memo index %q", line)
		}
		if op == 'p' {
			return u.putMemo(i)
		}
		return u.getMemo(i)
	case 'h': // BINGET
		i, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.getMemo(int64(i))
	case 'j': // LONG_BINGET
		i, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.getMemo(int64(i))
	case 'c': // GLOBAL
		module, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		return u.global(module, name)
	case 0x93: // STACK_GLOBAL
		nv, err := u.pop()
		if err != nil {
			return err
		}
		mv, err := u.pop()
		if err != nil {
			return err
		}
		module, ok1 := mv.(string)
		name, ok2 := nv.(string)
		if !ok1 || !ok2 {
			return u.errf("STACK_GLOBAL needs two strings, got %s and %s", typeName(mv), typeName(nv))
		}
		return u.global(module, name)
	case 'Q': // BINPERSID
		pid, err := u.pop()
		if err != nil {
			return err
		}
		s, err := u.persistentLoad(pid)
		if err != nil {
			return err
		}
		return u.push(s)
	case 'R': // REDUCE
		args, err := u.pop()
		if err != nil {
			return err
		}
		fn, err := u.pop()
		if err != nil {
			return err
		}
		v, err := u.reduce(fn, args)
		if err != nil {
			return err
		}
		return u.push(v)
	case 'b': // BUILD
		state, err := u.pop()
		if err != nil {
			return err
		}
		obj, err := u.top()
		if err != nil {
			return err
		}
		return build(obj, state)
	}
	if name, ok := unsupportedOps[op]; ok {
		return unsupported("pickle opcode " + name)
	}
	return u.errf("unknown opcode 0x%02x", op)
}

// lengthWidth is the size of the length prefix of a string or bytes opcode.
func lengthWidth(op byte) int {
	switch op {
	case 0x8c, 'U', 'C': // SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES
		return 1
	case 0x8d, 0x8e: // BINUNICODE8, BINBYTES8
		return 8
	}
	return 4 // BINUNICODE, BINSTRING, BINBYTES
}

// unsupportedOps names the valid pickle opcodes a state dict never needs (object construction,
// extension registry, out-of-band buffers, text-mode values); they are refused.
var unsupportedOps = map[byte]string{
	'i': "INST", 'o': "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2",
	0x84: "EXT4", 'P': "PERSID", 'I': "INT", 'L': "LONG", 'F': "FLOAT", 'S': "STRING",
	'V': "UNICODE", '2': "DUP", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
	0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

func (u *unpickler) setItems(d *pyDict, items []any) error {
	if len(items)%2 != 0 {
		return u.errf("odd number of items for a dict")
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// persistentLoad resolves ('storage', torch.XStorage, key, location, numel) to a storage
// reference; legacy (torch < 1.6) files add a sixth item, view_metadata, which torch ≥ 1.0
// always writes as None. The storage bytes are read later, only for tensors that are returned.
func (u *unpickler) persistentLoad(pid any) (*storageRef, error) {
	t, ok := pid.(pyTuple)
	if u.legacy {
		if !ok || len(t) != 6 {
			return nil, u.errf("persistent id is a %s, want a 6-tuple ('storage', type, key, location, numel, view_metadata)", typeName(pid))
		}
		if t[5] != nil {
			// (view_key, offset, size): a storage slice, which only torch < 1.0 pickled.
			return nil, unsupported("storage views (view_metadata " + typeName(t[5]) + ", written by torch < 1.0)")
		}
	} else if !ok || len(t) != 5 {
		return nil, u.errf("persistent id is a %s, want a 5-tuple ('storage', type, key, location, numel)", typeName(pid))
	}
	if tag, _ := t[0].(string); tag != "storage" {
		return nil, unsupported(fmt.Sprintf("persistent id of kind %v", t[0]))
	}
	g, ok := t[1].(pyGlobal)
	dtype := storageDTypes[g.name]
	if !ok || g.module != "torch" || dtype == "" {
		return nil, u.errf("persistent id storage type is a %s, want a torch storage class", typeName(t[1]))
	}
	key, ok1 := t[2].(string)
	if _, ok := t[3].(string); !ok1 || !ok {
		return nil, u.errf("persistent id key and location must be strings")
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, u.errf("persistent id element count %v is not a non-negative integer", t[4])
	}
	if numel > math.MaxInt64/int64(dtype.Size()) {
		return nil, newErr(ErrTensor, fmt.Sprintf("storage %q of %d elements overflows", key, numel))
	}
	if s, ok := u.storages[key]; ok {
		if s.dtype != dtype || s.numel != numel {
			return nil, newErr(ErrTensor, fmt.Sprintf("storage %q is referenced as %s[%d] and as %s[%d]", key, s.dtype, s.numel, dtype, numel))
		}
		return s, nil
	}
	s := &storageRef{key: key, dtype: dtype, numel: numel}
	u.storages[key] = s
	return s, nil
}

// reduce applies an allow-listed global to its arguments. Nothing is called: each case builds
// the value the Python function would return, from validated arguments.
func (u *unpickler) reduce(fn, args any) (any, error) {
	g, ok := fn.(pyGlobal)
	if !ok {
		return nil, unsupported("calling a " + typeName(fn))
	}
	a, ok := args.(pyTuple)
	if !ok {
		return nil, u.errf("REDUCE arguments are a %s, want a tuple", typeName(args))
	}
	switch g.module + "." + g.name {
	case "collections.OrderedDict":
		if len(a) != 0 {
			return nil, unsupported("collections.OrderedDict called with arguments")
		}
		return newDict(true), nil
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor(a)
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		want := 3
		if g.name == "_rebuild_parameter_with_state" {
			want = 4
		}
		if len(a) != want {
			return nil, u.errf("%s takes %d arguments, got %d", g.name, want, len(a))
		}
		t, ok := a[0].(*tensorRef)
		if !ok {
			return nil, u.errf("%s of a %s, want a tensor", g.name, typeName(a[0]))
		}
		if _, ok := a[1].(bool); !ok {
			return nil, u.errf("%s requires_grad is a %s", g.name, typeName(a[1]))
		}
		if want == 4 {
			// Python attributes of the parameter; they carry no tensor data and are dropped.
			switch a[3].(type) {
			case nil, *pyDict, pyTuple:
			default:
				return nil, u.errf("%s state is a %s", g.name, typeName(a[3]))
			}
		}
		return t, nil
	}
	return nil, unsupported("calling " + g.module + "." + g.name)
}

// rebuildTensor validates _rebuild_tensor_v2(storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata]) and returns the view it describes. The view must
// lie inside its storage and hold no more elements than the storage.
func rebuildTensor(a pyTuple) (*tensorRef, error) {
	if len(a) != 6 && len(a) != 7 {
		return nil, newErr(ErrPickle, fmt.Sprintf("_rebuild_tensor_v2 takes 6 or 7 arguments, got %d", len(a)))
	}
	s, ok := a[0].(*storageRef)
	if !ok {
		return nil, newErr(ErrPickle, "_rebuild_tensor_v2 storage is a "+typeName(a[0]))
	}
	offset, ok := a[1].(int64)
	if !ok || offset < 0 {
		return nil, newErr(ErrTensor, fmt.Sprintf("storage offset %v is not a non-negative integer", a[1]))
	}
	size, ok1 := a[2].(pyTuple)
	stride, ok2 := a[3].(pyTuple)
	if !ok1 || !ok2 || len(size) != len(stride) || len(size) > maxDims {
		return nil, newErr(ErrTensor, fmt.Sprintf("size %v and stride %v are not tuples of one rank ≤ %d", a[2], a[3], maxDims))
	}
	t := &tensorRef{storage: s, offset: offset, shape: make([]int, len(size)), stride: make([]int64, len(size))}
	empty := false
	for i := range size {
		n, ok1 := size[i].(int64)
		st, ok2 := stride[i].(int64)
		if !ok1 || !ok2 || n < 0 || st < 0 || n > math.MaxInt32*64 {
			return nil, newErr(ErrTensor, fmt.Sprintf("size %v / stride %v: dimension %d is not a sane non-negative integer", a[2], a[3], i))
		}
		t.shape[i], t.stride[i] = int(n), st
		empty = empty || n == 0
	}
	if empty {
		if offset > s.numel {
			return nil, newErr(ErrTensor, fmt.Sprintf("offset %d is past the end of storage %q of %d elements", offset, s.key, s.numel))
		}
	} else {
		outside := newErr(ErrTensor, fmt.Sprintf("shape %v with stride %v at offset %d reaches outside storage %q of %d elements", a[2], a[3], offset, s.key, s.numel))
		if offset >= s.numel {
			return nil, outside
		}
		numel := int64(1)
		last := offset // index of the last element the view touches
		for i, n64 := range t.shape {
			n, st := int64(n64), t.stride[i]
			if numel > s.numel/n {
				return nil, newErr(ErrTensor, fmt.Sprintf("shape %v holds more elements than its storage %q (%d)", a[2], s.key, s.numel))
			}
			numel *= n
			if st != 0 && n-1 > (s.numel-1-last)/st {
				return nil, outside
			}
			last += (n - 1) * st
		}
	}
	if _, ok := a[4].(bool); !ok {
		return nil, newErr(ErrPickle, "_rebuild_tensor_v2 requires_grad is a "+typeName(a[4]))
	}
	if _, ok := a[5].(*pyDict); !ok {
		return nil, newErr(ErrPickle, "_rebuild_tensor_v2 backward_hooks is a "+typeName(a[5]))
	}
	return t, nil
}

// build applies BUILD. Only an OrderedDict may receive attributes (torch stores a state dict's
// _metadata that way); they are dropped, since they describe module versions, not weights.
func build(obj, state any) error {
	d, ok := obj.(*pyDict)
	if !ok || !d.ordered {
		return unsupported("setting the state of a " + typeName(obj))
	}
	switch s := state.(type) {
	case *pyDict, nil:
		return nil
	case pyTuple:
		if len(s) == 2 {
			_, ok1 := s[0].(*pyDict)
			_, ok2 := s[1].(*pyDict)
			if (ok1 || s[0] == nil) && (ok2 || s[1] == nil) {
				return nil
			}
		}
	}
	return unsupported("OrderedDict state of type " + typeName(state))
}

// typeName names a value's Python type for messages.
func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		if v.ordered {
			return "OrderedDict"
		}
		return "dict"
	case pyGlobal:
		return v.module + "." + v.name
	case *storageRef:
		return "storage"
	case *tensorRef:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}
