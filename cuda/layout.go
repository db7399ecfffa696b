package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// dview is a tensor resolved to device memory of this backend.
type dview struct {
	buf   *buffer
	dt    tensor.DType
	off   int // elements
	rank  int
	shape [tensor.MaxRank]int
	str   [tensor.MaxRank]int
}

// addr is the device address of the view's first element.
func (v *dview) addr() devPtr { return v.buf.ptr + devPtr(v.off*v.dt.Size()) }

func (v *dview) numel() int {
	n := 1
	for i := range v.rank {
		n *= v.shape[i]
	}
	return n
}

func (v *dview) contiguous() bool {
	s := 1
	for i := v.rank - 1; i >= 0; i-- {
		if v.shape[i] != 1 && v.str[i] != s {
			return false
		}
		s *= v.shape[i]
	}
	return true
}

// span returns the element range [lo, hi) the view can touch.
func (v *dview) span() (lo, hi int) {
	hi = v.off + 1
	for i := range v.rank {
		if v.shape[i] == 0 {
			return v.off, v.off
		}
		hi += (v.shape[i] - 1) * v.str[i]
	}
	return v.off, hi
}

// overlaps reports whether two views may share bytes.
func (v *dview) overlaps(u *dview) bool {
	if v.buf != u.buf {
		return false
	}
	a0, a1 := v.span()
	b0, b1 := u.span()
	sa, sb := v.dt.Size(), u.dt.Size()
	return a0*sa < b1*sb && b0*sb < a1*sa
}

// sameLayout reports whether u addresses exactly v's elements in the same order.
func (v *dview) sameLayout(u *dview) bool {
	if v.buf != u.buf || v.dt != u.dt || v.off != u.off || v.rank != u.rank {
		return false
	}
	for i := range v.rank {
		if v.shape[i] != u.shape[i] || (v.shape[i] > 1 && v.str[i] != u.str[i]) {
			return false
		}
	}
	return true
}

// maxLaunchElems bounds the elements one element-wise launch covers (32-bit index math).
const maxLaunchElems = 1<<31 - 1

// nd is the host side of struct ND: an iteration over shape shared by up to three operands,
// size-1 dimensions dropped and neighbours merged where every operand allows.
type nd struct {
	rank  int
	n     int
	shape [maxRank]int
	str   [3][maxRank]int
}

// newND builds the iteration; ops[k] broadcasts (stride 0) where its (right-aligned)
// dimension is 1.
func newND(shape []int, ops ...*dview) (nd, error) {
	var l nd
	if len(shape) > maxRank {
		return l, fmt.Errorf("rank %d exceeds %d", len(shape), maxRank)
	}
	var full [3][maxRank]int
	r := len(shape)
	for k, v := range ops {
		lead := r - v.rank
		for d := range r {
			if d >= lead && v.shape[d-lead] != 1 {
				full[k][d] = v.str[d-lead]
			}
		}
	}
	l.n = 1
	for d := range r {
		l.n *= shape[d]
	}
	if l.n > maxLaunchElems {
		return l, fmt.Errorf("%d elements exceed the %d one launch can index", l.n, maxLaunchElems)
	}
	for d := range r {
		if shape[d] == 1 {
			continue
		}
		if l.rank > 0 {
			p := l.rank - 1
			merge := true
			for k := range ops {
				if l.str[k][p] != full[k][d]*shape[d] {
					merge = false
					break
				}
			}
			if merge {
				l.shape[p] *= shape[d]
				for k := range ops {
					l.str[k][p] = full[k][d]
				}
				continue
			}
		}
		l.shape[l.rank] = shape[d]
		for k := range ops {
			l.str[k][l.rank] = full[k][d]
		}
		l.rank++
	}
	if l.rank == 0 {
		l.rank = 1
		l.shape[0] = 1
		if l.n == 0 {
			l.shape[0] = 0
		}
	}
	return l, nil
}

// pack encodes struct ND.
func (l *nd) pack() *sbuf {
	s := &sbuf{}
	for k := range 3 {
		for d := range maxRank {
			s.i64(l.str[k][d])
		}
	}
	for d := range maxRank {
		s.i32(l.shape[d])
	}
	s.i32(l.rank).i32(l.n)
	return s.end()
}

// packRows encodes struct Rows for x and y of the same shape (rank ≥ 1).
func packRows(x, y *dview) (*sbuf, int, int, error) {
	r := x.rank - 1
	rows := 1
	for i := range r {
		rows *= x.shape[i]
	}
	d := x.shape[r]
	if rows*max(d, 1) > maxLaunchElems {
		return nil, 0, 0, fmt.Errorf("%v elements exceed the %d one launch can index", x.shape[:x.rank], maxLaunchElems)
	}
	s := &sbuf{}
	for i := range maxRank {
		v := 0
		if i < r {
			v = x.str[i]
		}
		s.i64(v)
	}
	for i := range maxRank {
		v := 0
		if i < r {
			v = y.str[i]
		}
		s.i64(v)
	}
	s.i64(x.str[r]).i64(y.str[r])
	for i := range maxRank {
		v := 0
		if i < r {
			v = x.shape[i]
		}
		s.i32(v)
	}
	s.i32(r).i32(rows).i32(d).i32(0)
	return s.end(), rows, d, nil
}
