package cpu

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// matTarget is where a GEMM writes: rows×n float32 with row stride ldc starting at off of f32.
// When dst cannot be written directly (not F32, or its last dimension is strided) the target
// is a pooled temporary that finish copies into dst.
type matTarget struct {
	f32    []float32
	tmp    *tensor.Tensor
	target *tensor.Tensor // the tensor whose view f32 belongs to (dst or tmp)
}

func (be *Backend) matTarget(dst *tensor.Tensor, dv *view) (matTarget, error) {
	if dv.dt == tensor.F32 && (dv.Rank == 0 || dv.Strides[dv.Rank-1] == 1 || dv.Shape[dv.Rank-1] == 1) {
		return matTarget{f32: dv.f32, target: dst}, nil
	}
	tmp, err := be.Alloc(tensor.F32, dst.Shape()...)
	if err != nil {
		return matTarget{}, err
	}
	tv, _ := resolve(tmp, "tmp")
	return matTarget{f32: tv.f32, tmp: tmp, target: tmp}, nil
}

func (be *Backend) finish(mt matTarget, dst *tensor.Tensor) error {
	if mt.tmp == nil {
		return nil
	}
	defer be.Free(mt.tmp)
	_, err := be.Copy(dst, mt.tmp)
	return err
}

// MatMul computes a·b (b transposed when transB) with float32 accumulation.
func (be *Backend) MatMul(dst, a, b *tensor.Tensor, transB bool) (*tensor.Tensor, error) {
	av, err := resolve(a, "a")
	if err != nil {
		return nil, fmt.Errorf("cpu: matmul: %w", err)
	}
	bv, err := resolve(b, "b")
	if err != nil {
		return nil, fmt.Errorf("cpu: matmul: %w", err)
	}
	md, err := tensor.MatMulShape(a, b, transB)
	if err != nil {
		return nil, fmt.Errorf("cpu: matmul: %w", err)
	}
	m, n, k, batch, outShape := md.M, md.N, md.K, md.Batch, md.Out
	bk, bn := md.BStrideK, md.BStrideN
	out, dv, err := be.output(dst, resultDType(av.dt), outShape)
	if err != nil {
		return nil, fmt.Errorf("cpu: matmul: %w", err)
	}
	if dv.overlaps(&av) || dv.overlaps(&bv) {
		return nil, fmt.Errorf("cpu: matmul: dst overlaps an input")
	}
	mt, err := be.matTarget(out, &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: matmul: %w", err)
	}
	cv, _ := resolve(mt.target, "dst")
	nb := 1
	for _, d := range batch {
		nb *= d
	}
	// One GEMM over all batches when b is shared and a's batch rows merge with M.
	if nb > 1 && bv.Rank == 2 {
		a2, errA := a.Reshape(nb*m, k)
		c2, errC := mt.target.Reshape(nb*m, n)
		if errA == nil && errC == nil {
			a2v, _ := resolve(a2, "a")
			c2v, _ := resolve(c2, "dst")
			be.gemm(&gemmOp{m: nb * m, n: n, k: k,
				packA: stridedPanel(&a2v, a2v.Offset, a2v.Strides[0], a2v.Strides[1], be.kern.mr),
				packB: stridedPanel(&bv, bv.Offset, bn, bk, be.kern.nr),
				c:     c2v.f32[c2v.Offset:], ldc: rowStride(&c2v, n)})
			return out, be.finishErr("matmul", mt, out)
		}
	}
	// Batch by batch: decompose the batch index over the broadcast batch shape.
	aLead, bLead := len(batch)-(av.Rank-2), len(batch)-(bv.Rank-2)
	for bi := range nb {
		offA, offB, offC := av.Offset, bv.Offset, cv.Offset
		r := bi
		for d := len(batch) - 1; d >= 0; d-- {
			i := r % batch[d]
			r /= batch[d]
			if j := d - aLead; j >= 0 && av.Shape[j] != 1 {
				offA += i * av.Strides[j]
			}
			if j := d - bLead; j >= 0 && bv.Shape[j] != 1 {
				offB += i * bv.Strides[j]
			}
			offC += i * cv.Strides[d]
		}
		be.gemm(&gemmOp{m: m, n: n, k: k,
			packA: stridedPanel(&av, offA, av.Strides[av.Rank-2], av.Strides[av.Rank-1], be.kern.mr),
			packB: stridedPanel(&bv, offB, bn, bk, be.kern.nr),
			c:     cv.f32[offC:], ldc: rowStride(&cv, n)})
	}
	return out, be.finishErr("matmul", mt, out)
}

func (be *Backend) finishErr(op string, mt matTarget, dst *tensor.Tensor) error {
	if err := be.finish(mt, dst); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	return nil
}

// rowStride is the row stride of the matrix in the last two dims of v (n when it has 1 row).
func rowStride(v *view, n int) int {
	if v.Shape[v.Rank-2] == 1 {
		return n
	}
	return v.Strides[v.Rank-2]
}

// Linear computes x·wᵀ + bias.
func (be *Backend) Linear(dst, x, w, bias *tensor.Tensor) (*tensor.Tensor, error) {
	xv, err := resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cpu: linear: %w", err)
	}
	wv, err := resolve(w, "weight")
	if err != nil {
		return nil, fmt.Errorf("cpu: linear: %w", err)
	}
	ld, err := tensor.LinearShape(x, w)
	if err != nil {
		return nil, fmt.Errorf("cpu: linear: %w", err)
	}
	k, n, rows, outShape := ld.K, ld.N, ld.Rows, ld.Out
	var bf []float32
	if bias != nil {
		var hold *buffer
		bf, hold, err = be.loadParam(bias, n, "bias")
		if err != nil {
			return nil, fmt.Errorf("cpu: linear: %w", err)
		}
		defer be.pool.put(hold)
	}
	out, dv, err := be.output(dst, resultDType(xv.dt), outShape)
	if err != nil {
		return nil, fmt.Errorf("cpu: linear: %w", err)
	}
	if dv.overlaps(&xv) || dv.overlaps(&wv) {
		return nil, fmt.Errorf("cpu: linear: dst overlaps an input")
	}
	x2, err := x.Reshape(rows, k)
	if err != nil { // not expressible as a matrix view: materialise
		cp, cerr := be.Copy(nil, x)
		if cerr != nil {
			return nil, fmt.Errorf("cpu: linear: %w", cerr)
		}
		defer be.Free(cp)
		x2, _ = cp.Reshape(rows, k)
	}
	x2v, _ := resolve(x2, "x")
	mt, err := be.matTarget(out, &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: linear: %w", err)
	}
	c2, err := mt.target.Reshape(rows, n)
	if err != nil { // a strided dst whose rows do not merge: go through a temporary
		if mt.tmp == nil {
			tmp, aerr := be.Alloc(tensor.F32, outShape...)
			if aerr != nil {
				return nil, fmt.Errorf("cpu: linear: %w", aerr)
			}
			mt = matTarget{tmp: tmp, target: tmp}
		}
		c2, _ = mt.target.Reshape(rows, n)
	}
	cv, _ := resolve(c2, "dst")
	ldc := rowStride(&cv, n)
	if bf != nil {
		be.w.parallelFor(rows, be.w.grainFor(rows, max(1, 8192/max(n, 1))), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				copy(cv.f32[cv.Offset+r*ldc:cv.Offset+r*ldc+n], bf)
			}
		})
	}
	be.gemm(&gemmOp{m: rows, n: n, k: k,
		packA: stridedPanel(&x2v, x2v.Offset, x2v.Strides[0], x2v.Strides[1], be.kern.mr),
		packB: stridedPanel(&wv, wv.Offset, wv.Strides[0], wv.Strides[1], be.kern.nr),
		c:     cv.f32[cv.Offset:], ldc: ldc, acc: bf != nil})
	return out, be.finishErr("linear", mt, out)
}
