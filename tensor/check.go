package tensor

import (
	"fmt"
	"math"
	"slices"
)

// Shape checks shared by the backends. Each validates the arguments of one Backend operation
// and returns the sizes the kernels need; the errors say what is wrong without naming the
// backend or the operation, so that a backend wraps them as "<backend>: <op>: <err>". They
// only look at shapes, strides and dtypes: a backend first resolves every tensor to its own
// memory (which reports nil, freed and wrong-device tensors) and then calls them.

// CheckOutput checks that dst can receive an operation's result of the given shape: it has
// that shape, a compute dtype, and no broadcast (stride-0) dimension longer than 1.
func CheckOutput(dst *Tensor, shape []int) error {
	if dst == nil {
		return fmt.Errorf("dst is nil")
	}
	if !dst.ShapeIs(shape...) {
		return fmt.Errorf("dst has shape %v, want %v", dst.Shape(), shape)
	}
	if !dst.dtype.IsComputeType() {
		return fmt.Errorf("dst dtype %v is storage-only (use Convert)", dst.dtype)
	}
	for i := range dst.rank {
		if dst.strides[i] == 0 && dst.shape[i] > 1 {
			return fmt.Errorf("dst %v is a broadcast view and cannot be written", dst)
		}
	}
	return nil
}

// ConcatShape checks the inputs of Backend.Concat along dim (negative counts from the end):
// at least one input, all of the same rank, equal outside dim. It returns the result's shape
// and dim made non-negative.
func ConcatShape(dim int, xs ...*Tensor) (shape []int, d int, err error) {
	if len(xs) == 0 {
		return nil, 0, fmt.Errorf("no inputs")
	}
	for i, x := range xs {
		if x == nil {
			return nil, 0, fmt.Errorf("input %d is nil", i)
		}
	}
	r := xs[0].rank
	d = dim
	if d < 0 {
		d += r
	}
	if d < 0 || d >= r {
		return nil, 0, fmt.Errorf("dim %d out of range for rank %d", dim, r)
	}
	shape = xs[0].Shape()
	shape[d] = 0
	for i, x := range xs {
		if x.rank != r {
			return nil, 0, fmt.Errorf("input %d has rank %d, want %d", i, x.rank, r)
		}
		for j := range r {
			if j != d && x.shape[j] != xs[0].shape[j] {
				return nil, 0, fmt.Errorf("input %d shape %v does not match %v outside dim %d", i, x.Shape(), xs[0].Shape(), d)
			}
		}
		shape[d] += x.shape[d]
	}
	return shape, d, nil
}

// MatMulDims are the sizes of Backend.MatMul: a [..., M, K] times b [..., K, N] (b
// [..., N, K] when transposed) gives Out = Batch + [M, N], Batch being the broadcast of the
// operands' leading dimensions. BStrideK and BStrideN are b's strides along K and N, with the
// transposition applied.
type MatMulDims struct {
	M, N, K            int
	BStrideK, BStrideN int
	Batch              []int
	Out                []int
}

// MatMulShape checks the operands of Backend.MatMul: both at least 2-D, inner dimensions
// equal, batch dimensions broadcastable.
func MatMulShape(a, b *Tensor, transB bool) (MatMulDims, error) {
	var md MatMulDims
	if err := nilOperand([]string{"a", "b"}, a, b); err != nil {
		return md, err
	}
	if a.rank < 2 || b.rank < 2 {
		return md, fmt.Errorf("operands must have at least 2 dimensions, got %v and %v", a.Shape(), b.Shape())
	}
	md.M, md.K = a.shape[a.rank-2], a.shape[a.rank-1]
	kb, n := b.shape[b.rank-2], b.shape[b.rank-1]
	bk, bn := b.strides[b.rank-2], b.strides[b.rank-1]
	if transB {
		n, kb = kb, n
		bk, bn = bn, bk
	}
	md.N, md.BStrideK, md.BStrideN = n, bk, bn
	if md.K != kb {
		return md, fmt.Errorf("inner dimensions differ: a %v, b %v (transB %v)", a.Shape(), b.Shape(), transB)
	}
	batch, err := BroadcastShapes(a.shape[:a.rank-2], b.shape[:b.rank-2])
	if err != nil {
		return md, fmt.Errorf("batch dimensions: %w", err)
	}
	md.Batch = batch
	md.Out = append(append([]int(nil), batch...), md.M, md.N)
	return md, nil
}

// LinearDims are the sizes of Backend.Linear: x [..., K] times weightᵀ (weight [N, K]) gives
// Out = x's shape with the last dimension N, computed as one Rows × K by K × N product.
type LinearDims struct {
	Rows, K, N int
	Out        []int
}

// LinearShape checks the operands of Backend.Linear: x at least 1-D, weight [N, K] with K
// the last dimension of x.
func LinearShape(x, w *Tensor) (LinearDims, error) {
	var ld LinearDims
	if err := nilOperand([]string{"x", "weight"}, x, w); err != nil {
		return ld, err
	}
	if x.rank < 1 || w.rank != 2 || w.shape[1] != x.shape[x.rank-1] {
		inner := 0
		if x.rank > 0 {
			inner = x.shape[x.rank-1]
		}
		return ld, fmt.Errorf("x %v and weight %v do not match (want weight [N, %d])", x.Shape(), w.Shape(), inner)
	}
	ld.K, ld.N = w.shape[1], w.shape[0]
	ld.Out = x.Shape()
	ld.Out[len(ld.Out)-1] = ld.N
	ld.Rows = x.NumElements() / max(ld.K, 1)
	if ld.K == 0 {
		n := 1
		for _, s := range ld.Out {
			n *= s
		}
		ld.Rows = n / max(ld.N, 1)
	}
	return ld, nil
}

// AttentionDims are the sizes of Backend.Attention: q [Batch, QLen, QHeads, HeadDim],
// k [Batch, KVLen, KVHeads, HeadDim] and v [Batch, KVLen, KVHeads, ValueDim].
type AttentionDims struct {
	Batch, QLen, QHeads, HeadDim int
	KVLen, KVHeads, ValueDim     int
}

// AttentionShape checks q, k and v of Backend.Attention: all [B, S, H, D] with equal batch,
// equal q and k head dims, k and v of equal length and heads, and the query heads a multiple
// of the kv heads.
func AttentionShape(q, k, v *Tensor) (AttentionDims, error) {
	var ad AttentionDims
	if err := nilOperand([]string{"q", "k", "v"}, q, k, v); err != nil {
		return ad, err
	}
	if q.rank != 4 || k.rank != 4 || v.rank != 4 {
		return ad, fmt.Errorf("q, k, v must be [B, S, H, D], got %v, %v, %v", q.Shape(), k.Shape(), v.Shape())
	}
	ad = AttentionDims{
		Batch: q.shape[0], QLen: q.shape[1], QHeads: q.shape[2], HeadDim: q.shape[3],
		KVLen: k.shape[1], KVHeads: k.shape[2], ValueDim: v.shape[3],
	}
	switch {
	case k.shape[0] != ad.Batch || v.shape[0] != ad.Batch:
		return ad, fmt.Errorf("batch sizes differ: q %v, k %v, v %v", q.Shape(), k.Shape(), v.Shape())
	case k.shape[3] != ad.HeadDim:
		return ad, fmt.Errorf("q head dim %d != k head dim %d", ad.HeadDim, k.shape[3])
	case v.shape[1] != ad.KVLen || v.shape[2] != ad.KVHeads:
		return ad, fmt.Errorf("k %v and v %v differ in length or heads", k.Shape(), v.Shape())
	case ad.KVHeads == 0 || ad.QHeads%ad.KVHeads != 0:
		return ad, fmt.Errorf("%d query heads are not a multiple of %d kv heads", ad.QHeads, ad.KVHeads)
	}
	return ad, nil
}

// OutShape is the shape of the attention result, [Batch, QLen, QHeads, ValueDim].
func (ad AttentionDims) OutShape() []int {
	return []int{ad.Batch, ad.QLen, ad.QHeads, ad.ValueDim}
}

// Scale is the factor applied to q·kᵀ: scale, or 1/sqrt(HeadDim) when scale is 0.
func (ad AttentionDims) Scale(scale float32) float32 {
	if scale == 0 {
		return float32(1 / math.Sqrt(float64(max(ad.HeadDim, 1))))
	}
	return scale
}

// CheckMask checks that an attention mask broadcasts to [Batch, QHeads, QLen, KVLen] and has
// rank at most 4.
func (ad AttentionDims) CheckMask(mask *Tensor) error {
	if mask == nil {
		return fmt.Errorf("mask is nil")
	}
	full := []int{ad.Batch, ad.QHeads, ad.QLen, ad.KVLen}
	bs, err := BroadcastShapes(full, mask.Shape())
	if err != nil || mask.rank > 4 || !slices.Equal(bs, full) {
		return fmt.Errorf("mask %v does not broadcast to %v", mask.Shape(), full)
	}
	return nil
}

// nilOperand reports the first of ts that is nil, by its name in names.
func nilOperand(names []string, ts ...*Tensor) error {
	for i, t := range ts {
		if t == nil {
			return fmt.Errorf("%s is nil", names[i])
		}
	}
	return nil
}
