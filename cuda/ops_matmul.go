package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// MatMul computes a·b (b transposed when transB) with float32 accumulation.
func (be *Backend) MatMul(dst, a, b *tensor.Tensor, transB bool) (*tensor.Tensor, error) {
	av, err := be.resolve(a, "a")
	if err != nil {
		return nil, fmt.Errorf("cuda: matmul: %w", err)
	}
	bv, err := be.resolve(b, "b")
	if err != nil {
		return nil, fmt.Errorf("cuda: matmul: %w", err)
	}
	md, err := tensor.MatMulShape(a, b, transB)
	if err != nil {
		return nil, fmt.Errorf("cuda: matmul: %w", err)
	}
	m, n, k, batch, outShape := md.M, md.N, md.K, md.Batch, md.Out
	bk, bn := md.BStrideK, md.BStrideN
	out, cv, err := be.output(dst, resultDType(av.dt), outShape)
	if err != nil {
		return nil, fmt.Errorf("cuda: matmul: %w", err)
	}
	if cv.overlaps(&av) || cv.overlaps(&bv) {
		return nil, fmt.Errorf("cuda: matmul: dst overlaps an input")
	}
	nb := 1
	for _, d := range batch {
		nb *= d
	}
	bop := matOp{ptr: bv.addr(), dt: bv.dt, rs: bk, cs: bn}
	// One GEMM over all batches when b is shared and a's batch rows merge with M.
	if nb > 1 && bv.Rank == 2 {
		a2, errA := a.Reshape(nb*m, k)
		c2, errC := out.Reshape(nb*m, n)
		if errA == nil && errC == nil {
			a2v, _ := be.resolve(a2, "a")
			c2v, _ := be.resolve(c2, "dst")
			g := &gemmCall{m: nb * m, n: n, k: k,
				a: matOp{ptr: a2v.addr(), dt: a2v.dt, rs: a2v.Strides[0], cs: a2v.Strides[1]},
				b: bop,
				c: matOp{ptr: c2v.addr(), dt: c2v.dt, rs: c2v.Strides[0], cs: c2v.Strides[1]}}
			if err := be.gemm(g); err != nil {
				return nil, fmt.Errorf("cuda: matmul: %w", err)
			}
			return out, nil
		}
	}
	g := &gemmCall{m: m, n: n, k: k,
		a:      matOp{ptr: av.addr(), dt: av.dt, rs: av.Strides[av.Rank-2], cs: av.Strides[av.Rank-1]},
		b:      bop,
		c:      matOp{ptr: cv.addr(), dt: cv.dt, rs: cv.Strides[cv.Rank-2], cs: cv.Strides[cv.Rank-1]},
		bshape: batch,
	}
	aLead, bLead := len(batch)-(av.Rank-2), len(batch)-(bv.Rank-2)
	for k := range 3 {
		g.bstr[k] = make([]int, len(batch))
	}
	for d := range batch {
		if j := d - aLead; j >= 0 && av.Shape[j] != 1 {
			g.bstr[0][d] = av.Strides[j]
		}
		if j := d - bLead; j >= 0 && bv.Shape[j] != 1 {
			g.bstr[1][d] = bv.Strides[j]
		}
		g.bstr[2][d] = cv.Strides[d]
	}
	if err := be.gemm(g); err != nil {
		return nil, fmt.Errorf("cuda: matmul: %w", err)
	}
	return out, nil
}

// Linear computes x·wᵀ + bias for x [..., K], w [N, K], bias [N] or nil.
func (be *Backend) Linear(dst, x, w, bias *tensor.Tensor) (*tensor.Tensor, error) {
	xv, err := be.resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cuda: linear: %w", err)
	}
	wv, err := be.resolve(w, "weight")
	if err != nil {
		return nil, fmt.Errorf("cuda: linear: %w", err)
	}
	ld, err := tensor.LinearShape(x, w)
	if err != nil {
		return nil, fmt.Errorf("cuda: linear: %w", err)
	}
	k, n, rows, outShape := ld.K, ld.N, ld.Rows, ld.Out
	var bp devPtr
	var bdt tensor.DType
	var bs int
	if bias != nil {
		if bp, bdt, bs, err = be.param1D(bias, n, "bias"); err != nil {
			return nil, fmt.Errorf("cuda: linear: %w", err)
		}
	}
	out, dv, err := be.output(dst, resultDType(xv.dt), outShape)
	if err != nil {
		return nil, fmt.Errorf("cuda: linear: %w", err)
	}
	if dv.overlaps(&xv) || dv.overlaps(&wv) {
		return nil, fmt.Errorf("cuda: linear: dst overlaps an input")
	}
	if rows == 0 || n == 0 {
		return out, nil
	}
	x2, err := x.Reshape(rows, k)
	if err != nil { // not expressible as a matrix view: materialise
		cp, cerr := be.Copy(nil, x)
		if cerr != nil {
			return nil, fmt.Errorf("cuda: linear: %w", cerr)
		}
		defer be.Free(cp)
		x2, _ = cp.Reshape(rows, k)
	}
	x2v, _ := be.resolve(x2, "x")
	target, tmp := out, (*tensor.Tensor)(nil)
	c2, err := out.Reshape(rows, n)
	if err != nil { // a strided dst whose rows do not merge: go through a temporary
		if tmp, err = be.Alloc(tensor.F32, rows, n); err != nil {
			return nil, fmt.Errorf("cuda: linear: %w", err)
		}
		defer be.Free(tmp)
		target, c2 = tmp, tmp
	}
	cv, _ := be.resolve(c2, "dst")
	g := &gemmCall{m: rows, n: n, k: k,
		a:    matOp{ptr: x2v.addr(), dt: x2v.dt, rs: x2v.Strides[0], cs: x2v.Strides[1]},
		b:    matOp{ptr: wv.addr(), dt: wv.dt, rs: wv.Strides[1], cs: wv.Strides[0]},
		c:    matOp{ptr: cv.addr(), dt: cv.dt, rs: cv.Strides[0], cs: cv.Strides[1]},
		bias: bp, biasDT: bdt, biasStride: bs, hasBias: bias != nil}
	if err := be.gemm(g); err != nil {
		return nil, fmt.Errorf("cuda: linear: %w", err)
	}
	if target != out {
		src, _ := tmp.Reshape(outShape...)
		if _, err := be.Copy(out, src); err != nil {
			return nil, fmt.Errorf("cuda: linear: %w", err)
		}
	}
	return out, nil
}
