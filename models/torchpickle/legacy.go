package torchpickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A legacy (torch < 1.6, non-zip) checkpoint is one stream of five pickles followed by raw
// storage data: the magic number, the protocol version, a sys_info dict (byte order, C type
// sizes), the object itself (its persistent ids name storages by key), and the list of storage
// keys in the order their data follows. Each storage is then an 8-byte little-endian element
// count followed by count × element size bytes.

// legacyMagic is the magic number 0x1950a86a20f9469cfc6c as a pickle LONG1 opcode stores it:
// length 10, then the bytes little-endian.
var legacyMagic = []byte{0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'}

// legacyProtocol is the only legacy protocol version torch ever wrote.
const legacyProtocol = 1001

// legacyFile is an opened legacy checkpoint: its unpickled object and where each storage's
// bytes lie in the file.
type legacyFile struct {
	r       io.ReaderAt
	root    any
	offsets map[string]int64 // storage key → file offset of its first byte
}

// openLegacy reads the pickles of a legacy checkpoint and indexes its storages. The pickles are
// read from a window at the start of the file that grows until they fit, up to maxPickle bytes.
func openLegacy(r io.ReaderAt, size int64) (*legacyFile, error) {
	window := min(size, 64<<10)
	for {
		buf := make([]byte, window)
		if n, err := r.ReadAt(buf, 0); int64(n) < window {
			return nil, newErr(ErrArchive, fmt.Sprintf("reading the first %d bytes: %v", window, err))
		}
		p, short, err := readLegacyPickles(buf)
		if err != nil {
			if !short || window == size {
				return nil, err
			}
			if window >= maxPickle {
				return nil, newErr(ErrPickle, fmt.Sprintf("the pickles of this legacy checkpoint take more than the %d bytes allowed; this is not a state dict", maxPickle))
			}
			window = min(size, 4*window, maxPickle)
			continue
		}
		l := &legacyFile{r: r, root: p.root}
		if err := l.index(size, p); err != nil {
			return nil, err
		}
		return l, nil
	}
}

// legacyPickles is what the pickles of a legacy checkpoint say.
type legacyPickles struct {
	root     any                    // the object torch.save was given
	storages map[string]*storageRef // the storages it uses, by key
	keys     []string               // storage keys in the order their data follows
	dataAt   int64                  // offset of the first storage's element count
}

// readLegacyPickles unpickles the five pickles at the start of buf. With an error it also says
// whether the error came from buf ending inside a pickle (so a larger window may succeed).
func readLegacyPickles(buf []byte) (*legacyPickles, bool, error) {
	pos, short, err := legacyMagicEnd(buf)
	if err != nil {
		return nil, short, err
	}
	next := func(legacy bool) (*unpickler, any, error) {
		u := newUnpickler(buf, pos, legacy)
		v, err := u.run()
		pos = u.pos
		return u, v, err
	}
	u, v, err := next(false)
	if err != nil {
		return nil, u.short, err
	}
	if v != int64(legacyProtocol) {
		return nil, false, newErr(ErrArchive, fmt.Sprintf("legacy checkpoint protocol version %v, want %d; the file is corrupt or not written by torch.save", v, legacyProtocol))
	}
	if u, v, err = next(false); err != nil {
		return nil, u.short, err
	}
	if err := checkSysInfo(v); err != nil {
		return nil, false, err
	}
	main, root, err := next(true)
	if err != nil {
		return nil, main.short, err
	}
	if u, v, err = next(false); err != nil {
		return nil, u.short, err
	}
	list, ok := v.(*pyList)
	if !ok {
		return nil, false, newErr(ErrArchive, "the legacy storage key list is a "+typeName(v)+", not a list; the file is corrupt")
	}
	keys := make([]string, len(list.items))
	for i, k := range list.items {
		if keys[i], ok = k.(string); !ok {
			return nil, false, newErr(ErrArchive, fmt.Sprintf("legacy storage key %d is a %s, not a str; the file is corrupt", i, typeName(k)))
		}
	}
	return &legacyPickles{root: root, storages: main.storages, keys: keys, dataAt: int64(pos)}, false, nil
}

// legacyMagicEnd checks the magic-number pickle at the start of buf (protocol 2 to 5, an
// optional frame) and returns the offset just past it.
func legacyMagicEnd(buf []byte) (int, bool, error) {
	pos := 2
	if len(buf) > 2 && buf[1] >= 4 && buf[2] == 0x95 { // FRAME
		pos += 9
	}
	end := pos + len(legacyMagic)
	if len(buf) < 2 || buf[0] != 0x80 || buf[1] < 2 || buf[1] > 5 || len(buf) < end || !bytes.Equal(buf[pos:end], legacyMagic) {
		return 0, len(buf) < end, newErr(ErrArchive, "the file is a pickle but does not start with torch's magic number; it is not a PyTorch checkpoint, or it is corrupt")
	}
	return end, false, nil
}

// checkSysInfo checks the sys_info dict: only the byte order matters, since storages hold
// fixed-size elements.
func checkSysInfo(v any) error {
	d, ok := v.(*pyDict)
	if !ok {
		return newErr(ErrArchive, "the legacy sys_info is a "+typeName(v)+", not a dict; the file is corrupt")
	}
	le, _ := d.get("little_endian")
	switch le {
	case true:
		return nil
	case false:
		return newErr(ErrByteOrder, "the checkpoint was saved on a big-endian machine; re-save it on a little-endian one or convert it to .safetensors")
	}
	return newErr(ErrArchive, "the legacy sys_info little_endian is a "+typeName(le)+", want True or False; the file is corrupt")
}

// index walks the storage data from p.dataAt in key order. Every storage the object uses must be
// listed exactly once, its element count must match the object's, and its bytes must lie
// inside the file; only the counts are read here.
func (l *legacyFile) index(size int64, p *legacyPickles) error {
	if len(p.keys) != len(p.storages) {
		return newErr(ErrArchive, fmt.Sprintf("the legacy storage list names %d storages but the pickle uses %d; the file is corrupt", len(p.keys), len(p.storages)))
	}
	l.offsets = make(map[string]int64, len(p.keys))
	off := p.dataAt
	for _, k := range p.keys {
		s, ok := p.storages[k]
		if !ok {
			return newErr(ErrArchive, fmt.Sprintf("the legacy storage list names storage %q, which the pickle does not use; the file is corrupt", k))
		}
		if _, dup := l.offsets[k]; dup {
			return newErr(ErrArchive, fmt.Sprintf("the legacy storage list names storage %q twice; the file is corrupt", k))
		}
		var count [8]byte
		if size-off < 8 {
			return newErr(ErrArchive, fmt.Sprintf("the file ends before the element count of storage %q; it is truncated", k))
		}
		if n, err := l.r.ReadAt(count[:], off); n < len(count) {
			return newErr(ErrArchive, fmt.Sprintf("storage %q: reading its element count: %v", k, err))
		}
		if n := binary.LittleEndian.Uint64(count[:]); n != uint64(s.numel) {
			return newErr(ErrArchive, fmt.Sprintf("storage %q holds %d elements but the pickle says %d; the file is corrupt", k, n, s.numel))
		}
		off += 8
		need := s.numel * int64(s.dtype.Size()) // no overflow: checked in persistentLoad
		if need > size-off {
			return newErr(ErrArchive, fmt.Sprintf("storage %q needs %d bytes but only %d remain; the file is truncated", k, need, size-off))
		}
		l.offsets[k] = off
		off += need
	}
	return nil
}

// storage reads storage s from the offset index found.
func (l *legacyFile) storage(s *storageRef) ([]byte, error) {
	off, ok := l.offsets[s.key]
	if !ok {
		return nil, newErr(ErrArchive, fmt.Sprintf("storage %q is not in the file", s.key))
	}
	b := make([]byte, s.numel*int64(s.dtype.Size())) // bounded by the file size: checked in index
	if n, err := l.r.ReadAt(b, off); n < len(b) {
		if err == nil {
			err = errors.New("short read")
		}
		return nil, newErr(ErrArchive, fmt.Sprintf("storage %q: %v", s.key, err))
	}
	return b, nil
}
