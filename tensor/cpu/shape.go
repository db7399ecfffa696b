package cpu

import (
	"fmt"
	"sync"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/resample"
)

// Concat joins xs along dim.
func (be *Backend) Concat(dst *tensor.Tensor, dim int, xs ...*tensor.Tensor) (*tensor.Tensor, error) {
	views := make([]view, len(xs))
	for i, x := range xs {
		v, err := resolve(x, fmt.Sprintf("input %d", i))
		if err != nil {
			return nil, fmt.Errorf("cpu: concat: %w", err)
		}
		views[i] = v
	}
	shape, d, err := tensor.ConcatShape(dim, xs...)
	if err != nil {
		return nil, fmt.Errorf("cpu: concat: %w", err)
	}
	out, dv, err := be.output(dst, resultDType(views[0].dt), shape)
	if err != nil {
		return nil, fmt.Errorf("cpu: concat: %w", err)
	}
	for i := range views {
		if dv.overlaps(&views[i]) {
			return nil, fmt.Errorf("cpu: concat: dst overlaps input %d", i)
		}
	}
	at := 0
	for i, x := range xs {
		part, err := out.Slice(d, at, at+views[i].Shape[d])
		if err != nil {
			return nil, fmt.Errorf("cpu: concat: %w", err)
		}
		pv, _ := resolve(part, "dst")
		xv := views[i]
		if x.NumElements() > 0 {
			be.copyView(&pv, &xv)
		}
		at += views[i].Shape[d]
	}
	return out, nil
}

// GatherRows copies rows ids of table [V, D] into dst [len(ids), D].
func (be *Backend) GatherRows(dst, table *tensor.Tensor, ids []int) (*tensor.Tensor, error) {
	tv, err := resolve(table, "table")
	if err != nil {
		return nil, fmt.Errorf("cpu: gather rows: %w", err)
	}
	if tv.Rank != 2 {
		return nil, fmt.Errorf("cpu: gather rows: table %v must be [V, D]", table.Shape())
	}
	vocab, d := tv.Shape[0], tv.Shape[1]
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("cpu: gather rows: id %d at %d is outside [0, %d)", id, i, vocab)
		}
	}
	out, dv, err := be.output(dst, resultDType(tv.dt), []int{len(ids), d})
	if err != nil {
		return nil, fmt.Errorf("cpu: gather rows: %w", err)
	}
	if dv.overlaps(&tv) {
		return nil, fmt.Errorf("cpu: gather rows: dst overlaps the table")
	}
	be.w.parallelFor(len(ids), be.w.grainFor(len(ids), max(1, 8192/max(d, 1))), func(lo, hi int) {
		buf, hold := be.pool.getF32(d)
		defer be.pool.put(hold)
		for i := lo; i < hi; i++ {
			row := tv.rowStrided(tv.Offset+ids[i]*tv.Strides[0], tv.Strides[1], d, buf)
			dv.store(row, dv.Offset+i*dv.Strides[0], dv.Strides[1])
		}
	})
	return out, nil
}

// Resize interpolates the two last dimensions of x with tensor/resample.
func (be *Backend) Resize(dst, x *tensor.Tensor, outH, outW int, method tensor.ResizeMethod) (*tensor.Tensor, error) {
	m, err := resample.ParseMethod(string(method))
	if err != nil {
		return nil, fmt.Errorf("cpu: resize: %w", err)
	}
	xv, err := resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cpu: resize: %w", err)
	}
	if xv.Rank < 2 {
		return nil, fmt.Errorf("cpu: resize: x %v needs at least 2 dimensions", x.Shape())
	}
	h, w := xv.Shape[xv.Rank-2], xv.Shape[xv.Rank-1]
	if h <= 0 || w <= 0 || outH <= 0 || outW <= 0 {
		return nil, fmt.Errorf("cpu: resize: cannot resize %dx%d to %dx%d", h, w, outH, outW)
	}
	shape := x.Shape()
	shape[len(shape)-2], shape[len(shape)-1] = outH, outW
	out, dv, err := be.output(dst, resultDType(xv.dt), shape)
	if err != nil {
		return nil, fmt.Errorf("cpu: resize: %w", err)
	}
	if dv.overlaps(&xv) {
		return nil, fmt.Errorf("cpu: resize: dst overlaps x")
	}
	planes := xv.NumElements() / (h * w)
	if planes == 0 {
		return out, nil
	}
	src := xv.f32
	if xv.dt != tensor.F32 || !xv.Contiguous() {
		xc, err := be.Convert(x, tensor.F32)
		if err != nil {
			return nil, fmt.Errorf("cpu: resize: %w", err)
		}
		defer be.Free(xc)
		cv, _ := resolve(xc, "x")
		xv = cv
		src = cv.f32
	}
	src = src[xv.Offset : xv.Offset+planes*h*w]
	var mt matTarget
	if dv.dt == tensor.F32 && dv.Contiguous() {
		mt = matTarget{f32: dv.f32[dv.Offset:], target: out}
	} else {
		tmp, err := be.Alloc(tensor.F32, shape...)
		if err != nil {
			return nil, fmt.Errorf("cpu: resize: %w", err)
		}
		tv, _ := resolve(tmp, "tmp")
		mt = matTarget{f32: tv.f32, tmp: tmp, target: tmp}
	}
	var once sync.Once
	var firstErr error
	be.w.parallelFor(planes, 1, func(lo, hi int) {
		err := resample.Planes(mt.f32[lo*outH*outW:hi*outH*outW], src[lo*h*w:hi*h*w], hi-lo, h, w, outH, outW, m)
		if err != nil {
			once.Do(func() { firstErr = err })
		}
	})
	if firstErr != nil {
		return nil, fmt.Errorf("cpu: resize: %w", firstErr)
	}
	return out, be.finishErr("resize", mt, out)
}
