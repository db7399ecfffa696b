package torchpickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// maxPickle bounds data.pkl. A state dict of ten thousand tensors pickles to about a megabyte.
const maxPickle = 64 << 20

// containerKeys are the keys under which checkpoints commonly nest their state dict, in the
// order they are tried (BasicSR/ESRGAN "params_ema" before "params", Lightning "state_dict").
var containerKeys = []string{"params_ema", "params", "state_dict", "model"}

// modulePrefix is what torch.nn.DataParallel puts in front of every key.
const modulePrefix = "module."

// Load reads the state dict of a torch.save checkpoint. Each tensor's Data is its elements,
// contiguous, row-major and little-endian in its dtype; tensors that are contiguous views of
// one storage share that storage's bytes, so callers must not modify Data.
func Load(path string) (map[string]safetensors.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	m, err := Parse(f, st.Size())
	if e, ok := errors.AsType[*Error](err); ok {
		e.File = path
	}
	return m, err
}

// Parse reads the state dict from a checkpoint of size bytes held by r (see Load). Every
// error it returns is an *Error.
func Parse(r io.ReaderAt, size int64) (map[string]safetensors.Entry, error) {
	var head [512]byte
	n, _ := r.ReadAt(head[:max(0, min(size, int64(len(head))))], 0)
	var (
		root any
		src  storageSource
	)
	switch {
	case n > 0 && head[0] == 0x80:
		// A torch < 1.6 checkpoint is a sequence of bare pickles, so it starts with the PROTO
		// opcode instead of a zip header.
		l, err := openLegacy(r, size)
		if err != nil {
			return nil, err
		}
		root, src = l.root, l
	case n == len(head) && bytes.HasPrefix(head[257:], []byte("ustar")):
		// torch before about 0.4 wrote a tar archive of "storages", "tensors" and "pickle".
		return nil, newErr(ErrLegacyFormat, "the file is a tar archive from a very old torch (before 0.4), which is not supported; load it with an old torch and re-save it with torch.save, or convert it to .safetensors")
	default:
		a, err := openArchive(r, size)
		if err != nil {
			return nil, err
		}
		if root, err = unpickle(a.pickle); err != nil {
			return nil, err
		}
		src = a
	}
	return stateDict(root, src)
}

// storageSource reads a storage's numel × element size bytes from a checkpoint.
type storageSource interface {
	storage(s *storageRef) ([]byte, error)
}

// stateDict finds the state dict in an unpickled checkpoint and materialises its tensors.
func stateDict(root any, src storageSource) (map[string]safetensors.Entry, error) {
	d, ok := root.(*pyDict)
	if !ok {
		return nil, newErr(ErrNoStateDict, "the checkpoint holds a "+typeName(root)+", not a dict of tensors")
	}
	d = unwrap(d)
	tensors := map[string]*tensorRef{}
	for i, k := range d.keys {
		t, ok := d.vals[i].(*tensorRef)
		if !ok {
			continue // non-tensor entries (epoch counters, names) are not weights
		}
		name, ok := k.(string)
		if !ok {
			return nil, newErr(ErrNoStateDict, fmt.Sprintf("tensor under a %s key %v", typeName(k), k))
		}
		tensors[name] = t
	}
	if len(tensors) == 0 {
		return nil, newErr(ErrNoStateDict, fmt.Sprintf("the dict of %d entries holds no tensors", len(d.keys)))
	}
	strip := true // DataParallel checkpoints prefix every key
	for name := range tensors {
		strip = strip && strings.HasPrefix(name, modulePrefix)
	}
	return materialise(src, tensors, strip)
}

// unwrap returns the state dict inside a known container dict, or d itself. Like ComfyUI's
// loader, a dict whose only value is a dict is unwrapped as well.
func unwrap(d *pyDict) *pyDict {
	for _, k := range containerKeys {
		if v, ok := d.get(k); ok {
			if inner, ok := v.(*pyDict); ok {
				return inner
			}
		}
	}
	if len(d.vals) == 1 {
		if inner, ok := d.vals[0].(*pyDict); ok {
			return inner
		}
	}
	return d
}

// archive is an opened torch zip checkpoint.
type archive struct {
	size    int64
	prefix  string // "<name>/" in front of every record
	records map[string]*zip.File
	pickle  []byte
}

func openArchive(r io.ReaderAt, size int64) (*archive, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, newErr(ErrArchive, fmt.Sprintf("not a torch zip checkpoint (%v); the file may be truncated or not a PyTorch file", err))
	}
	a := &archive{size: size, records: map[string]*zip.File{}}
	var pkl *zip.File
	for _, f := range zr.File {
		if _, dup := a.records[f.Name]; dup {
			return nil, newErr(ErrArchive, fmt.Sprintf("record %q appears twice", f.Name))
		}
		a.records[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && dir != "" && !strings.Contains(dir, "/") {
			if pkl != nil {
				return nil, newErr(ErrArchive, fmt.Sprintf("two pickles, %q and %q", pkl.Name, f.Name))
			}
			pkl, a.prefix = f, dir+"/"
		}
	}
	if pkl == nil {
		return nil, newErr(ErrArchive, "no <name>/data.pkl record; this zip is not a PyTorch checkpoint")
	}
	if bo, ok := a.records[a.prefix+"byteorder"]; ok {
		b, err := readRecord(bo, 16)
		if err != nil {
			return nil, err
		}
		switch string(bytes.TrimSpace(b)) {
		case "little":
		case "big":
			return nil, newErr(ErrByteOrder, "the checkpoint was saved on a big-endian machine; re-save it on a little-endian one or convert it to .safetensors")
		default:
			return nil, newErr(ErrArchive, fmt.Sprintf("byteorder record says %q", b))
		}
	}
	if a.pickle, err = readRecord(pkl, maxPickle); err != nil {
		return nil, err
	}
	return a, nil
}

// readRecord reads a whole zip record of at most limit bytes. Memory grows with the bytes the
// record actually yields, not with the size its header claims.
func readRecord(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, newErr(ErrArchive, fmt.Sprintf("record %q of %d bytes is larger than the %d allowed", f.Name, f.UncompressedSize64, limit))
	}
	rc, err := f.Open()
	if err != nil {
		return nil, newErr(ErrArchive, fmt.Sprintf("record %q: %v", f.Name, err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, newErr(ErrArchive, fmt.Sprintf("record %q: %v", f.Name, err))
	}
	return b, nil
}

// storage reads the bytes of storage s from its record, which must hold at least the storage's
// numel × element size bytes.
func (a *archive) storage(s *storageRef) ([]byte, error) {
	name := a.prefix + "data/" + s.key
	f, ok := a.records[name]
	if !ok {
		return nil, newErr(ErrArchive, fmt.Sprintf("storage record %q is missing; the file is incomplete", name))
	}
	need := s.numel * int64(s.dtype.Size()) // no overflow: checked in persistentLoad
	if uint64(need) > f.UncompressedSize64 {
		return nil, newErr(ErrTensor, fmt.Sprintf("storage %q needs %d bytes but its record holds %d", s.key, need, f.UncompressedSize64))
	}
	var b []byte
	if f.Method == zip.Store {
		// torch stores records uncompressed: the record's bytes must then lie inside the file,
		// so the exact-size buffer below is bounded by the file size.
		off, err := f.DataOffset()
		if err != nil || f.CompressedSize64 != f.UncompressedSize64 || off < 0 || off > a.size || int64(f.CompressedSize64) > a.size-off {
			return nil, newErr(ErrArchive, fmt.Sprintf("storage record %q does not fit inside the file", name))
		}
		rc, err := f.Open()
		if err != nil {
			return nil, newErr(ErrArchive, fmt.Sprintf("storage record %q: %v", name, err))
		}
		b = make([]byte, need)
		_, err = io.ReadFull(rc, b)
		if err == nil && uint64(need) == f.UncompressedSize64 {
			// read to the end so the zip reader verifies the record's checksum
			var one [1]byte
			if _, err = rc.Read(one[:]); err == io.EOF {
				err = nil
			} else if err == nil {
				err = errors.New("record is longer than its header says")
			}
		}
		rc.Close()
		if err != nil {
			return nil, newErr(ErrArchive, fmt.Sprintf("storage record %q: %v", name, err))
		}
	} else {
		var err error
		if b, err = readRecord(f, need); err != nil {
			return nil, err
		}
		if int64(len(b)) < need {
			return nil, newErr(ErrArchive, fmt.Sprintf("storage record %q yields %d bytes, want %d", name, len(b), need))
		}
		b = b[:need]
	}
	return b, nil
}

// materialise reads the storages of tensors, each once, and returns their contiguous bytes.
// Contiguous views are slices of their storage; other views are copied, and the copies together
// may not exceed twice the bytes of the storages read (plus 1 MiB), which no real state dict
// comes near.
func materialise(src storageSource, tensors map[string]*tensorRef, strip bool) (map[string]safetensors.Entry, error) {
	storages := map[string][]byte{}
	var read int64
	for name, t := range tensors {
		if _, ok := storages[t.storage.key]; ok {
			continue
		}
		b, err := src.storage(t.storage)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); ok {
				e.Tensor = name
			}
			return nil, err
		}
		storages[t.storage.key] = b
		read += int64(len(b))
	}
	budget := 2*read + 1<<20
	out := make(map[string]safetensors.Entry, len(tensors))
	for name, t := range tensors {
		data, copied := view(storages[t.storage.key], t)
		if budget -= copied; budget < 0 {
			return nil, &Error{Tensor: name, Kind: ErrTensor, Detail: "overlapping strided views would copy more than twice the checkpoint's tensor bytes"}
		}
		key := name
		if strip {
			key = strings.TrimPrefix(name, modulePrefix)
		}
		out[key] = safetensors.Entry{DType: t.storage.dtype, Shape: t.shape, Data: data}
	}
	return out, nil
}

// view returns the elements of t in row-major order, and how many bytes it had to copy. The
// caller has checked (rebuildTensor) that every element lies inside storage.
func view(storage []byte, t *tensorRef) ([]byte, int64) {
	es := int64(t.storage.dtype.Size())
	numel := int64(1)
	for _, n := range t.shape {
		numel *= int64(n)
	}
	if numel == 0 {
		return []byte{}, 0
	}
	contiguous := true
	want := int64(1)
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.stride[i] != want {
			contiguous = false
			break
		}
		want *= int64(t.shape[i])
	}
	start := t.offset * es
	if contiguous {
		end := start + numel*es
		return storage[start:end:end], 0
	}
	// Copy row by row of the innermost dimension, walking the outer indices like an odometer.
	out := make([]byte, 0, numel*es)
	rank := len(t.shape)
	inner, innerStride := int64(t.shape[rank-1]), t.stride[rank-1]
	idx := make([]int, rank-1)
	base := t.offset
	for {
		if innerStride == 1 {
			out = append(out, storage[base*es:(base+inner)*es]...)
		} else {
			for j := range inner {
				p := (base + j*innerStride) * es
				out = append(out, storage[p:p+es]...)
			}
		}
		d := rank - 2
		for ; d >= 0; d-- {
			idx[d]++
			base += t.stride[d]
			if idx[d] < t.shape[d] {
				break
			}
			base -= int64(idx[d]) * t.stride[d]
			idx[d] = 0
		}
		if d < 0 {
			return out, numel * es
		}
	}
}
