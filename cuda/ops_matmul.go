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
	if av.rank < 2 || bv.rank < 2 {
		return nil, fmt.Errorf("cuda: matmul: operands must have at least 2 dimensions, got %v and %v", a.Shape(), b.Shape())
	}
	m, k := av.shape[av.rank-2], av.shape[av.rank-1]
	bk, bn := bv.str[bv.rank-2], bv.str[bv.rank-1] // strides along K and N of b
	kb, n := bv.shape[bv.rank-2], bv.shape[bv.rank-1]
	if transB {
		n, kb = kb, n
		bk, bn = bn, bk
	}
	if k != kb {
		return nil, fmt.Errorf("cuda: matmul: inner dimensions differ: a %v, b %v (transB %v)", a.Shape(), b.Shape(), transB)
	}
	batch, err := tensor.BroadcastShapes(a.Shape()[:av.rank-2], b.Shape()[:bv.rank-2])
	if err != nil {
		return nil, fmt.Errorf("cuda: matmul: batch dimensions: %w", err)
	}
	outShape := append(append([]int(nil), batch...), m, n)
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
	if nb > 1 && bv.rank == 2 {
		a2, errA := a.Reshape(nb*m, k)
		c2, errC := out.Reshape(nb*m, n)
		if errA == nil && errC == nil {
			a2v, _ := be.resolve(a2, "a")
			c2v, _ := be.resolve(c2, "dst")
			g := &gemmCall{m: nb * m, n: n, k: k,
				a: matOp{ptr: a2v.addr(), dt: a2v.dt, rs: a2v.str[0], cs: a2v.str[1]},
				b: bop,
				c: matOp{ptr: c2v.addr(), dt: c2v.dt, rs: c2v.str[0], cs: c2v.str[1]}}
			if err := be.gemm(g); err != nil {
				return nil, fmt.Errorf("cuda: matmul: %w", err)
			}
			return out, nil
		}
	}
	g := &gemmCall{m: m, n: n, k: k,
		a:      matOp{ptr: av.addr(), dt: av.dt, rs: av.str[av.rank-2], cs: av.str[av.rank-1]},
		b:      bop,
		c:      matOp{ptr: cv.addr(), dt: cv.dt, rs: cv.str[cv.rank-2], cs: cv.str[cv.rank-1]},
		bshape: batch,
	}
	aLead, bLead := len(batch)-(av.rank-2), len(batch)-(bv.rank-2)
	for k := range 3 {
		g.bstr[k] = make([]int, len(batch))
	}
	for d := range batch {
		if j := d - aLead; j >= 0 && av.shape[j] != 1 {
			g.bstr[0][d] = av.str[j]
		}
		if j := d - bLead; j >= 0 && bv.shape[j] != 1 {
			g.bstr[1][d] = bv.str[j]
		}
		g.bstr[2][d] = cv.str[d]
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
	if xv.rank < 1 || wv.rank != 2 || wv.shape[1] != xv.shape[xv.rank-1] {
		return nil, fmt.Errorf("cuda: linear: x %v and weight %v do not match (want weight [N, %d])", x.Shape(), w.Shape(), xv.shape[max(xv.rank-1, 0)])
	}
	k, n := wv.shape[1], wv.shape[0]
	var bp devPtr
	var bdt tensor.DType
	var bs int
	if bias != nil {
		if bp, bdt, bs, err = be.param1D(bias, n, "bias"); err != nil {
			return nil, fmt.Errorf("cuda: linear: %w", err)
		}
	}
	outShape := x.Shape()
	outShape[len(outShape)-1] = n
	out, dv, err := be.output(dst, resultDType(xv.dt), outShape)
	if err != nil {
		return nil, fmt.Errorf("cuda: linear: %w", err)
	}
	if dv.overlaps(&xv) || dv.overlaps(&wv) {
		return nil, fmt.Errorf("cuda: linear: dst overlaps an input")
	}
	rows := xv.numel() / max(k, 1)
	if k == 0 {
		rows = out.NumElements() / max(n, 1)
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
		a:    matOp{ptr: x2v.addr(), dt: x2v.dt, rs: x2v.str[0], cs: x2v.str[1]},
		b:    matOp{ptr: wv.addr(), dt: wv.dt, rs: wv.str[1], cs: wv.str[0]},
		c:    matOp{ptr: cv.addr(), dt: cv.dt, rs: cv.str[0], cs: cv.str[1]},
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
