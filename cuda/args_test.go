package cuda

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

func TestArgsPacking(t *testing.T) {
	a := (&args{}).i32(-3).ptr(0x1122334455667788).f32(1.5).i64(-2).structure((&sbuf{}).i32(7).end())
	if len(a.buf) != 40 {
		t.Fatalf("packed %d bytes, want 40", len(a.buf))
	}
	if got := int32(binary.LittleEndian.Uint32(a.buf[0:])); got != -3 {
		t.Errorf("i32 = %d", got)
	}
	for i := 4; i < 8; i++ {
		if a.buf[i] != 0 {
			t.Errorf("padding byte %d = %d", i, a.buf[i])
		}
	}
	if got := binary.LittleEndian.Uint64(a.buf[8:]); got != 0x1122334455667788 {
		t.Errorf("ptr at 8 = %#x", got)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(a.buf[16:])); got != 1.5 {
		t.Errorf("f32 at 16 = %v", got)
	}
	if got := int64(binary.LittleEndian.Uint64(a.buf[24:])); got != -2 {
		t.Errorf("i64 at 24 = %d", got)
	}
	if got := binary.LittleEndian.Uint32(a.buf[32:]); got != 7 {
		t.Errorf("struct at 32 = %d", got)
	}
	k := kdef("k", pI32, pPtr, pF32, pI64, pStruct(8))
	if err := a.check(k); err != nil {
		t.Error(err)
	}
	if err := a.check(kdef("k", pI32, pPtr)); err == nil || !strings.Contains(err.Error(), "takes 2 parameters, 5 were packed") {
		t.Errorf("count mismatch: %v", err)
	}
	if err := a.check(kdef("k", pI32, pPtr, pF32, pI64, pStruct(16))); err == nil || !strings.Contains(err.Error(), "parameter 4") {
		t.Errorf("size mismatch: %v", err)
	}
}

func TestStructSizes(t *testing.T) {
	l := nd{rank: 1, n: 1}
	if got := len(l.pack().b); got != sizeND {
		t.Errorf("ND packs %d bytes, want %d", got, sizeND)
	}
	x := dview{Layout: tensor.Layout{Rank: 2, Shape: [tensor.MaxRank]int{3, 4}, Strides: [tensor.MaxRank]int{4, 1}}, dt: tensor.F32}
	s, rows, d, err := packRows(&x, &x)
	if err != nil || len(s.b) != sizeRows || rows != 3 || d != 4 {
		t.Errorf("Rows: %d bytes, %d rows, d %d, %v", len(s.b), rows, d, err)
	}
}

func TestNDCoalescing(t *testing.T) {
	view := func(shape, str []int) *dview {
		v := &dview{Layout: tensor.Layout{Rank: len(shape)}, dt: tensor.F32}
		copy(v.Shape[:], shape)
		copy(v.Strides[:], str)
		return v
	}
	// Contiguous operands merge into one dimension.
	a := view([]int{2, 3, 4}, []int{12, 4, 1})
	l, err := newND([]int{2, 3, 4}, a, a)
	if err != nil || l.rank != 1 || l.shape[0] != 24 || l.n != 24 {
		t.Errorf("contiguous: %+v %v", l, err)
	}
	// A broadcast row keeps the outer dimension apart.
	b := view([]int{1, 4}, []int{4, 1})
	c := view([]int{5, 4}, []int{4, 1})
	l, _ = newND([]int{5, 4}, c, b)
	if l.rank != 2 || l.str[1][0] != 0 || l.str[1][1] != 1 || l.str[0][0] != 4 {
		t.Errorf("broadcast: %+v", l)
	}
	// Lower-rank operands align right; size-1 dimensions drop.
	d := view([]int{4}, []int{1})
	l, _ = newND([]int{5, 1, 4}, c, d)
	if l.rank != 2 || l.shape[0] != 5 || l.shape[1] != 4 || l.str[1][0] != 0 {
		t.Errorf("rank alignment: %+v", l)
	}
	// A transposed operand does not merge.
	e := view([]int{4, 5}, []int{1, 4})
	l, _ = newND([]int{4, 5}, view([]int{4, 5}, []int{5, 1}), e)
	if l.rank != 2 {
		t.Errorf("transpose merged: %+v", l)
	}
	// Empty and scalar shapes.
	if l, _ := newND([]int{3, 0}, view([]int{3, 0}, []int{0, 1})); l.n != 0 {
		t.Errorf("empty: %+v", l)
	}
	if l, _ := newND(nil, view(nil, nil)); l.n != 1 || l.rank != 1 || l.shape[0] != 1 {
		t.Errorf("scalar: %+v", l)
	}
	if _, err := newND([]int{1 << 16, 1 << 16}, view([]int{1 << 16, 1 << 16}, []int{1 << 16, 1})); err == nil {
		t.Error("2^32 elements accepted for one launch")
	}
}

func TestLtLayout(t *testing.T) {
	for _, c := range []struct {
		r, c, rs, cs int
		ok, row      bool
		ld           int64
	}{
		{3, 4, 4, 1, true, true, 4},   // row-major
		{3, 4, 9, 1, true, true, 9},   // row-major, padded rows
		{3, 4, 1, 3, true, false, 3},  // column-major
		{3, 4, 1, 5, true, false, 5},  // column-major, padded
		{1, 4, 0, 1, true, true, 4},   // a single row with any row stride
		{4, 1, 1, 0, true, true, 1},   // a single column with any column stride
		{3, 4, 8, 2, false, false, 0}, // neither
		{3, 4, 2, 1, false, false, 0}, // rows overlap
	} {
		l := ltLayoutOf(c.r, c.c, c.rs, c.cs)
		if l.ok != c.ok || (c.ok && (l.rowMajor != c.row || l.ld != c.ld)) {
			t.Errorf("%dx%d strides (%d,%d): %+v", c.r, c.c, c.rs, c.cs, l)
		}
	}
	for _, c := range []struct {
		shape, str []int
		want       int
		ok         bool
	}{
		{nil, nil, 0, true},
		{[]int{3}, []int{20}, 20, true},
		{[]int{2, 3}, []int{60, 20}, 20, true},
		{[]int{2, 3}, []int{0, 20}, 0, false},
		{[]int{2, 3}, []int{0, 0}, 0, false},
		{[]int{1, 3}, []int{99, 20}, 20, true},
	} {
		s, ok := uniformStride(c.shape, c.str)
		if ok != c.ok || (ok && s != c.want) {
			t.Errorf("uniformStride(%v, %v) = %d, %v", c.shape, c.str, s, ok)
		}
	}
}
