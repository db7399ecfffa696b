package tensor

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// zt returns a zero F32 tensor of shape, failing the test on error.
func zt(t *testing.T, shape ...int) *Tensor {
	t.Helper()
	x, err := Zeros(F32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// checkErr reports whether err matches want: nil for "", else an error containing want.
func checkErr(t *testing.T, name string, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", name, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", name, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want one containing %q", name, err, want)
	default:
		return want == ""
	}
	return false
}

func TestCheckOutput(t *testing.T) {
	fp8, err := Zeros(F8E4M3, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	bcast, err := zt(t, 1, 3).Expand(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	one, err := zt(t, 1, 3).Expand(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := zt(t, 3, 2).Transpose(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	bf, err := Zeros(BF16, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		dst   *Tensor
		shape []int
		err   string
	}{
		{"f32", zt(t, 2, 3), []int{2, 3}, ""},
		{"bf16", bf, []int{2, 3}, ""},
		{"strided", tr, []int{2, 3}, ""},
		{"size-1 broadcast dim", one, []int{1, 3}, ""},
		{"nil", nil, []int{2, 3}, "dst is nil"},
		{"wrong shape", zt(t, 3, 2), []int{2, 3}, "dst has shape [3 2], want [2 3]"},
		{"wrong rank", zt(t, 6), []int{2, 3}, "dst has shape [6], want [2 3]"},
		{"storage-only dtype", fp8, []int{2, 3}, "is storage-only (use Convert)"},
		{"broadcast view", bcast, []int{2, 3}, "is a broadcast view and cannot be written"},
	} {
		checkErr(t, tc.name, CheckOutput(tc.dst, tc.shape), tc.err)
	}
}

func TestConcatShape(t *testing.T) {
	a, b := zt(t, 2, 3), zt(t, 2, 5)
	for _, tc := range []struct {
		name   string
		dim    int
		xs     []*Tensor
		shape  []int
		outDim int
		err    string
	}{
		{"last dim", 1, []*Tensor{a, b}, []int{2, 8}, 1, ""},
		{"negative dim", -1, []*Tensor{a, b, a}, []int{2, 11}, 1, ""},
		{"first dim", 0, []*Tensor{a, zt(t, 4, 3)}, []int{6, 3}, 0, ""},
		{"one input", 0, []*Tensor{a}, []int{2, 3}, 0, ""},
		{"empty part", 0, []*Tensor{a, zt(t, 0, 3)}, []int{2, 3}, 0, ""},
		{"no inputs", 0, nil, nil, 0, "no inputs"},
		{"nil input", 0, []*Tensor{a, nil}, nil, 0, "input 1 is nil"},
		{"dim too large", 2, []*Tensor{a, b}, nil, 0, "dim 2 out of range for rank 2"},
		{"dim too negative", -3, []*Tensor{a, b}, nil, 0, "dim -3 out of range for rank 2"},
		{"rank mismatch", 0, []*Tensor{a, zt(t, 2, 3, 1)}, nil, 0, "input 1 has rank 3, want 2"},
		{"shape mismatch", 0, []*Tensor{a, b}, nil, 0, "input 1 shape [2 5] does not match [2 3] outside dim 0"},
	} {
		shape, d, err := ConcatShape(tc.dim, tc.xs...)
		if checkErr(t, tc.name, err, tc.err) && (!slices.Equal(shape, tc.shape) || d != tc.outDim) {
			t.Errorf("%s: got shape %v dim %d, want %v dim %d", tc.name, shape, d, tc.shape, tc.outDim)
		}
	}
}

func TestMatMulShape(t *testing.T) {
	tb, err := zt(t, 4, 3).Transpose(0, 1) // [3, 4] with strides [1, 3]
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		a, b    *Tensor
		transB  bool
		m, n, k int
		bk, bn  int
		batch   []int
		out     []int
		err     string
	}{
		{"2-D", zt(t, 2, 3), zt(t, 3, 4), false, 2, 4, 3, 4, 1, []int{}, []int{2, 4}, ""},
		{"transposed b", zt(t, 2, 3), zt(t, 4, 3), true, 2, 4, 3, 1, 3, []int{}, []int{2, 4}, ""},
		{"strided b", zt(t, 2, 3), tb, false, 2, 4, 3, 1, 3, []int{}, []int{2, 4}, ""},
		{"batched a, shared b", zt(t, 5, 2, 3), zt(t, 3, 4), false, 2, 4, 3, 4, 1, []int{5}, []int{5, 2, 4}, ""},
		{"broadcast batch", zt(t, 5, 1, 2, 3), zt(t, 6, 3, 4), false, 2, 4, 3, 4, 1, []int{5, 6}, []int{5, 6, 2, 4}, ""},
		{"nil a", nil, zt(t, 3, 4), false, 0, 0, 0, 0, 0, nil, nil, "a is nil"},
		{"nil b", zt(t, 2, 3), nil, false, 0, 0, 0, 0, 0, nil, nil, "b is nil"},
		{"1-D a", zt(t, 3), zt(t, 3, 4), false, 0, 0, 0, 0, 0, nil, nil, "operands must have at least 2 dimensions, got [3] and [3 4]"},
		{"1-D b", zt(t, 2, 3), zt(t, 3), false, 0, 0, 0, 0, 0, nil, nil, "operands must have at least 2 dimensions"},
		{"inner mismatch", zt(t, 2, 3), zt(t, 4, 3), false, 0, 0, 0, 0, 0, nil, nil, "inner dimensions differ: a [2 3], b [4 3] (transB false)"},
		{"inner mismatch transposed", zt(t, 2, 3), zt(t, 3, 4), true, 0, 0, 0, 0, 0, nil, nil, "(transB true)"},
		{"batch mismatch", zt(t, 2, 2, 3), zt(t, 3, 3, 4), false, 0, 0, 0, 0, 0, nil, nil, "batch dimensions: tensor: shapes [2] and [3] do not broadcast"},
	} {
		md, err := MatMulShape(tc.a, tc.b, tc.transB)
		if checkErr(t, tc.name, err, tc.err) &&
			(md.M != tc.m || md.N != tc.n || md.K != tc.k || md.BStrideK != tc.bk || md.BStrideN != tc.bn ||
				!slices.Equal(md.Batch, tc.batch) || !slices.Equal(md.Out, tc.out)) {
			t.Errorf("%s: got %+v, want M %d N %d K %d b strides %d, %d batch %v out %v",
				tc.name, md, tc.m, tc.n, tc.k, tc.bk, tc.bn, tc.batch, tc.out)
		}
	}
}

func TestLinearShape(t *testing.T) {
	for _, tc := range []struct {
		name       string
		x, w       *Tensor
		rows, k, n int
		out        []int
		err        string
	}{
		{"matrix", zt(t, 2, 3), zt(t, 4, 3), 2, 3, 4, []int{2, 4}, ""},
		{"vector", zt(t, 3), zt(t, 4, 3), 1, 3, 4, []int{4}, ""},
		{"batched", zt(t, 5, 2, 3), zt(t, 4, 3), 10, 3, 4, []int{5, 2, 4}, ""},
		{"no rows", zt(t, 0, 3), zt(t, 4, 3), 0, 3, 4, []int{0, 4}, ""},
		{"k = 0", zt(t, 5, 2, 0), zt(t, 4, 0), 10, 0, 4, []int{5, 2, 4}, ""},
		{"k = 0, n = 0", zt(t, 5, 0), zt(t, 0, 0), 0, 0, 0, []int{5, 0}, ""},
		{"nil x", nil, zt(t, 4, 3), 0, 0, 0, nil, "x is nil"},
		{"nil weight", zt(t, 2, 3), nil, 0, 0, 0, nil, "weight is nil"},
		{"scalar x", zt(t), zt(t, 4, 3), 0, 0, 0, nil, "x [] and weight [4 3] do not match (want weight [N, 0])"},
		{"1-D weight", zt(t, 2, 3), zt(t, 3), 0, 0, 0, nil, "x [2 3] and weight [3] do not match (want weight [N, 3])"},
		{"inner mismatch", zt(t, 2, 3), zt(t, 3, 4), 0, 0, 0, nil, "want weight [N, 3]"},
	} {
		ld, err := LinearShape(tc.x, tc.w)
		if checkErr(t, tc.name, err, tc.err) &&
			(ld.Rows != tc.rows || ld.K != tc.k || ld.N != tc.n || !slices.Equal(ld.Out, tc.out)) {
			t.Errorf("%s: got %+v, want rows %d K %d N %d out %v", tc.name, ld, tc.rows, tc.k, tc.n, tc.out)
		}
	}
}

func TestAttentionShape(t *testing.T) {
	q := zt(t, 2, 5, 4, 8)
	k := zt(t, 2, 7, 2, 8)
	v := zt(t, 2, 7, 2, 6)
	for _, tc := range []struct {
		name    string
		q, k, v *Tensor
		want    AttentionDims
		err     string
	}{
		{"grouped", q, k, v, AttentionDims{Batch: 2, QLen: 5, QHeads: 4, HeadDim: 8, KVLen: 7, KVHeads: 2, ValueDim: 6}, ""},
		{"self", q, q, q, AttentionDims{Batch: 2, QLen: 5, QHeads: 4, HeadDim: 8, KVLen: 5, KVHeads: 4, ValueDim: 8}, ""},
		{"nil k", q, nil, v, AttentionDims{}, "k is nil"},
		{"rank 3", zt(t, 5, 4, 8), k, v, AttentionDims{}, "q, k, v must be [B, S, H, D], got [5 4 8], [2 7 2 8], [2 7 2 6]"},
		{"batch differs", q, zt(t, 1, 7, 2, 8), v, AttentionDims{}, "batch sizes differ"},
		{"head dim differs", q, zt(t, 2, 7, 2, 4), v, AttentionDims{}, "q head dim 8 != k head dim 4"},
		{"kv length differs", q, k, zt(t, 2, 6, 2, 6), AttentionDims{}, "k [2 7 2 8] and v [2 6 2 6] differ in length or heads"},
		{"kv heads differ", q, k, zt(t, 2, 7, 1, 6), AttentionDims{}, "differ in length or heads"},
		{"heads not a multiple", q, zt(t, 2, 7, 3, 8), zt(t, 2, 7, 3, 6), AttentionDims{}, "4 query heads are not a multiple of 3 kv heads"},
		{"no kv heads", q, zt(t, 2, 7, 0, 8), zt(t, 2, 7, 0, 6), AttentionDims{}, "4 query heads are not a multiple of 0 kv heads"},
	} {
		ad, err := AttentionShape(tc.q, tc.k, tc.v)
		if checkErr(t, tc.name, err, tc.err) && ad != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, ad, tc.want)
		}
	}
}

func TestAttentionDims(t *testing.T) {
	ad := AttentionDims{Batch: 2, QLen: 5, QHeads: 4, HeadDim: 16, KVLen: 7, KVHeads: 2, ValueDim: 6}
	if got := ad.OutShape(); !slices.Equal(got, []int{2, 5, 4, 6}) {
		t.Errorf("OutShape = %v, want [2 5 4 6]", got)
	}
	for _, tc := range []struct {
		name  string
		ad    AttentionDims
		scale float32
		want  float32
	}{
		{"default", ad, 0, 0.25},
		{"explicit", ad, 0.5, 0.5},
		{"zero head dim", AttentionDims{}, 0, 1},
	} {
		if got := tc.ad.Scale(tc.scale); math.Abs(float64(got-tc.want)) > 1e-7 {
			t.Errorf("Scale %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		mask *Tensor
		err  string
	}{
		{"full", zt(t, 2, 4, 5, 7), ""},
		{"2-D", zt(t, 5, 7), ""},
		{"per batch", zt(t, 2, 1, 5, 7), ""},
		{"scalar", zt(t), ""},
		{"nil", nil, "mask is nil"},
		{"wrong key length", zt(t, 5, 6), "mask [5 6] does not broadcast to [2 4 5 7]"},
		{"larger than the scores", zt(t, 2, 8, 5, 7), "does not broadcast"},
		{"rank 5", zt(t, 1, 2, 4, 5, 7), "does not broadcast"},
	} {
		checkErr(t, "mask "+tc.name, ad.CheckMask(tc.mask), tc.err)
	}
}
