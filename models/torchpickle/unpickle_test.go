package torchpickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestUnpickleValues decodes one pickle that uses every value opcode the reader accepts and
// compares the Go values with what Python builds from it.
func TestUnpickleValues(t *testing.T) {
	le := func(n int, v uint64) []byte { b := make([]byte, 8); binary.LittleEndian.PutUint64(b, v); return b[:n] }
	var p []byte
	add := func(b ...byte) { p = append(p, b...) }
	add(0x80, 4, 0x95)
	add(le(8, 1000)...) // FRAME
	add('(', 'N', 0x88, 0x89)
	add('J', 0xfb, 0xff, 0xff, 0xff)                          // -5
	add('K', 200, 'M', 0x34, 0x12)                            // 200, 0x1234
	add(0x8a, 2, 0x00, 0xff, 0x8a, 0, 0x8b, 1, 0, 0, 0, 0x7f) // -256, 0, 127
	add('G')                                                  // 1.5, big-endian
	p = binary.BigEndian.AppendUint64(p, math.Float64bits(1.5))
	add('X', 3, 0, 0, 0, 'h', 0xc3, 0xa9, 0x8c, 1, 'a', 0x8d) // "hé", "a"
	add(le(8, 1)...)
	add('b', 'T', 1, 0, 0, 0, 'c', 'U', 1, 'd') // "b", "c", "d"
	add('B', 2, 0, 0, 0, 1, 2, 'C', 1, 3, 0x8e) // bytes
	add(le(8, 1)...)
	add(4)
	add('(', 'K', 1, 'K', 2, 'l', 'K', 3, 'a', 'p', '7', '\n', '0')     // [1, 2, 3], PUT 7, POP
	add('g', '7', '\n')                                                 // GET 7
	add('(', 'K', 9, '1')                                               // POP_MARK
	add('(', 0x8c, 1, 'k', 'K', 1, 'd', 'r', 0, 1, 0, 0, '0')           // {"k": 1}, LONG_BINPUT 256, POP
	add('j', 0, 1, 0, 0)                                                // LONG_BINGET 256
	add('K', 1, 'K', 2, 0x86, ')', ']', '(', 'K', 4, 'K', 5, 'e', 0x94) // (1, 2), (), [4, 5], MEMOIZE
	add('h', 2)                                                         // BINGET 2: MEMOIZE took len(memo)
	add('t', '.')
	got, err := unpickle(p)
	if err != nil {
		t.Fatal(err)
	}
	dict := newDict(false)
	_ = dict.set("k", int64(1))
	list := &pyList{items: []any{int64(4), int64(5)}}
	want := pyTuple{nil, true, false, int64(-5), int64(200), int64(0x1234), int64(-256), int64(0), int64(127),
		1.5, "hé", "a", "b", "c", "d", []byte{1, 2}, []byte{3}, []byte{4},
		&pyList{items: []any{int64(1), int64(2), int64(3)}}, dict, pyTuple{int64(1), int64(2)}, pyTuple{}, list, list}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestUnpickleLimits(t *testing.T) {
	defer func(v, m int) { maxValues, maxMemo = v, m }(maxValues, maxMemo)
	maxValues, maxMemo = 100, 10
	cases := []struct {
		name string
		body []byte
		msg  string
	}{
		{"values", bytes.Repeat([]byte{'N', '0'}, 101), "more than 100 values"},
		{"memo", append([]byte{'N'}, bytes.Repeat([]byte{0x94}, 11)...), "more than 10 memo entries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := unpickle(append(append([]byte{0x80, 2}, c.body...), '.'))
			if !errors.Is(err, ErrPickle) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want ErrPickle %q", err, c.msg)
			}
			// Just under the limits the same kind of pickle is fine.
			ok := append([]byte{0x80, 2}, bytes.Repeat([]byte{'N', 0x94, '0'}, 10)...)
			if _, err := unpickle(append(ok, '}', '.')); err != nil {
				t.Fatal(err)
			}
		})
	}
}
