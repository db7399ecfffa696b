package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// dview is a tensor resolved to device memory of this backend.
type dview struct {
	tensor.Layout // offsets in elements
	buf           *buffer
	dt            tensor.DType
}

// addr is the device address of the view's first element.
func (v *dview) addr() devPtr { return v.buf.ptr + devPtr(v.Offset*v.dt.Size()) }

// overlaps reports whether two views may share bytes.
func (v *dview) overlaps(u *dview) bool {
	return v.buf == u.buf && v.Layout.Overlaps(v.dt.Size(), &u.Layout, u.dt.Size())
}

// sameLayout reports whether u addresses exactly v's elements in the same order.
func (v *dview) sameLayout(u *dview) bool {
	return v.buf == u.buf && v.dt == u.dt && v.Layout.SameLayout(&u.Layout)
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
		lead := r - v.Rank
		for d := range r {
			if d >= lead && v.Shape[d-lead] != 1 {
				full[k][d] = v.Strides[d-lead]
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
	r := x.Rank - 1
	rows := 1
	for i := range r {
		rows *= x.Shape[i]
	}
	d := x.Shape[r]
	if rows*max(d, 1) > maxLaunchElems {
		return nil, 0, 0, fmt.Errorf("%v elements exceed the %d one launch can index", x.Shape[:x.Rank], maxLaunchElems)
	}
	s := &sbuf{}
	for i := range maxRank {
		v := 0
		if i < r {
			v = x.Strides[i]
		}
		s.i64(v)
	}
	for i := range maxRank {
		v := 0
		if i < r {
			v = y.Strides[i]
		}
		s.i64(v)
	}
	s.i64(x.Strides[r]).i64(y.Strides[r])
	for i := range maxRank {
		v := 0
		if i < r {
			v = x.Shape[i]
		}
		s.i32(v)
	}
	s.i32(r).i32(rows).i32(d).i32(0)
	return s.end(), rows, d, nil
}
