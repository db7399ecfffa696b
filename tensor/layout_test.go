package tensor

import "testing"

func lay(off int, shape, strides []int) Layout {
	l := Layout{Offset: off, Rank: len(shape)}
	copy(l.Shape[:], shape)
	copy(l.Strides[:], strides)
	return l
}

func TestLayoutFromTensor(t *testing.T) {
	x, err := Zeros(F32, 2, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	y, err := x.Permute(2, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	y, err = y.Slice(1, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := y.Reshape(4, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    *Tensor
		want Layout
	}{
		{"contiguous", x, lay(0, []int{2, 3, 4}, []int{12, 4, 1})},
		{"permuted slice", y, lay(12, []int{4, 1, 3}, []int{1, 12, 4})},
		{"reshaped", s, lay(12, []int{4, 3}, []int{1, 4})},
	} {
		if got := tc.t.Layout(); got != tc.want {
			t.Errorf("%s: Layout() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestLayoutMethods(t *testing.T) {
	for _, tc := range []struct {
		name       string
		l          Layout
		numel      int
		contiguous bool
		lo, hi     int
	}{
		{"scalar", lay(5, nil, nil), 1, true, 5, 6},
		{"row-major", lay(0, []int{2, 3}, []int{3, 1}), 6, true, 0, 6},
		{"offset", lay(7, []int{2, 3}, []int{3, 1}), 6, true, 7, 13},
		{"size-1 dim with any stride", lay(0, []int{2, 1, 3}, []int{3, 99, 1}), 6, true, 0, 6},
		{"transposed", lay(0, []int{3, 2}, []int{1, 3}), 6, false, 0, 6},
		{"row slice of wider matrix", lay(1, []int{2, 2}, []int{4, 1}), 4, false, 1, 7},
		{"broadcast", lay(0, []int{4, 3}, []int{0, 1}), 12, false, 0, 3},
		{"empty", lay(3, []int{2, 0, 3}, []int{0, 3, 1}), 0, true, 3, 3},
	} {
		if got := tc.l.NumElements(); got != tc.numel {
			t.Errorf("%s: NumElements = %d, want %d", tc.name, got, tc.numel)
		}
		if got := tc.l.Contiguous(); got != tc.contiguous {
			t.Errorf("%s: Contiguous = %v, want %v", tc.name, got, tc.contiguous)
		}
		if lo, hi := tc.l.Span(); lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: Span = [%d, %d), want [%d, %d)", tc.name, lo, hi, tc.lo, tc.hi)
		}
	}
}

func TestLayoutOverlaps(t *testing.T) {
	row0 := lay(0, []int{4}, []int{1})
	row1 := lay(4, []int{4}, []int{1})
	for _, tc := range []struct {
		name string
		a    Layout
		asz  int
		b    Layout
		bsz  int
		want bool
	}{
		{"same", row0, 4, row0, 4, true},
		{"adjacent rows", row0, 4, row1, 4, false},
		{"one element shared", lay(0, []int{5}, []int{1}), 4, row1, 4, true},
		{"f32 vs bf16 halves apart", row0, 4, lay(8, []int{4}, []int{1}), 2, false},
		{"f32 vs bf16 overlapping bytes", row0, 4, lay(7, []int{4}, []int{1}), 2, true},
		{"empty never overlaps", lay(0, []int{0}, []int{1}), 4, row0, 4, false},
		{"interleaved columns (conservative)", lay(0, []int{2}, []int{2}), 4, lay(1, []int{2}, []int{2}), 4, true},
	} {
		if got := tc.a.Overlaps(tc.asz, &tc.b, tc.bsz); got != tc.want {
			t.Errorf("%s: Overlaps = %v, want %v", tc.name, got, tc.want)
		}
		if got := tc.b.Overlaps(tc.bsz, &tc.a, tc.asz); got != tc.want {
			t.Errorf("%s (swapped): Overlaps = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLayoutSameLayout(t *testing.T) {
	base := lay(2, []int{2, 1, 3}, []int{3, 3, 1})
	for _, tc := range []struct {
		name string
		u    Layout
		want bool
	}{
		{"identical", base, true},
		{"size-1 stride differs", lay(2, []int{2, 1, 3}, []int{3, 7, 1}), true},
		{"offset differs", lay(3, []int{2, 1, 3}, []int{3, 3, 1}), false},
		{"rank differs", lay(2, []int{2, 3}, []int{3, 1}), false},
		{"shape differs", lay(2, []int{2, 1, 2}, []int{3, 3, 1}), false},
		{"stride differs", lay(2, []int{2, 1, 3}, []int{4, 3, 1}), false},
	} {
		if got := base.SameLayout(&tc.u); got != tc.want {
			t.Errorf("%s: SameLayout = %v, want %v", tc.name, got, tc.want)
		}
	}
}
