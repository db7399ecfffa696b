package tensor

// Layout is how a strided view addresses its storage: the element offset of its first
// element, its rank, and its shape and strides (in elements) in the first Rank entries.
// Backends embed it in their resolved views, so that shape and stride arithmetic is written
// once here and a backend only adds what memory the view lives in.
type Layout struct {
	Offset  int
	Rank    int
	Shape   [MaxRank]int
	Strides [MaxRank]int
}

// Layout returns t's offset, shape and strides as a Layout (entries past the rank are 0).
func (t *Tensor) Layout() Layout {
	l := Layout{Offset: t.offset, Rank: t.rank}
	copy(l.Shape[:], t.shape[:t.rank])
	copy(l.Strides[:], t.strides[:t.rank])
	return l
}

// NumElements is the product of the first Rank dimensions (1 for rank 0).
func (l *Layout) NumElements() int {
	n := 1
	for i := range l.Rank {
		n *= l.Shape[i]
	}
	return n
}

// Contiguous reports whether the layout addresses its elements densely in row-major order
// (strides of size-1 dimensions do not matter).
func (l *Layout) Contiguous() bool {
	s := 1
	for i := l.Rank - 1; i >= 0; i-- {
		if l.Shape[i] != 1 && l.Strides[i] != s {
			return false
		}
		s *= l.Shape[i]
	}
	return true
}

// Span returns the element range [lo, hi) of the storage the layout can touch; it is empty
// (lo == hi == Offset) when any dimension is 0.
func (l *Layout) Span() (lo, hi int) {
	hi = l.Offset + 1
	for i := range l.Rank {
		if l.Shape[i] == 0 {
			return l.Offset, l.Offset
		}
		hi += (l.Shape[i] - 1) * l.Strides[i]
	}
	return l.Offset, hi
}

// Overlaps reports whether l, with elements of size bytes, and u, with elements of usize
// bytes, may touch a common byte when both address the same storage. It compares byte
// ranges, so it is conservative: interleaved views that never share a byte still overlap.
func (l *Layout) Overlaps(size int, u *Layout, usize int) bool {
	a0, a1 := l.Span()
	b0, b1 := u.Span()
	return a0*size < b1*usize && b0*usize < a1*size
}

// SameLayout reports whether u addresses exactly l's elements in the same order: equal
// offset, rank and shape, and equal strides wherever a dimension has more than one element.
func (l *Layout) SameLayout(u *Layout) bool {
	if l.Offset != u.Offset || l.Rank != u.Rank {
		return false
	}
	for i := range l.Rank {
		if l.Shape[i] != u.Shape[i] || (l.Shape[i] > 1 && l.Strides[i] != u.Strides[i]) {
			return false
		}
	}
	return true
}
