package cuda

import (
	"encoding/binary"
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// Map op codes of kernel ew_map (1..12 are tensor.UnaryOp).
const (
	opCopy   = 0
	opAffine = 32
	opClamp  = 33
)

const eltBlock = 256

// mapView runs ew_map: y = op(x) with x broadcast to y's shape.
func (be *Backend) mapView(y, x *dview, op int, p0, p1 float32) error {
	l, err := newND(y.Shape[:y.Rank], y, x)
	if err != nil {
		return err
	}
	if l.n == 0 {
		return nil
	}
	a := (&args{}).structure(l.pack()).ptr(y.addr()).i32(int(y.dt)).ptr(x.addr()).i32(int(x.dt)).i32(op).f32(p0).f32(p1)
	return be.launch(kEwMap, gridFor(l.n, eltBlock), eltBlock, 0, a)
}

// copyView copies x into y (x broadcast to y's shape), converting the dtype.
func (be *Backend) copyView(y, x *dview) error {
	if y.dt == x.dt && y.Contiguous() && x.Contiguous() && y.NumElements() == x.NumElements() && y.Rank >= x.Rank && sameShape(y, x) {
		n := uint64(y.NumElements() * y.dt.Size())
		if n == 0 || y.addr() == x.addr() {
			return nil
		}
		return be.dev.dtod(y.addr(), x.addr(), n)
	}
	return be.mapView(y, x, opCopy, 0, 0)
}

func sameShape(a, b *dview) bool {
	if a.Rank != b.Rank {
		return false
	}
	for i := range a.Rank {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}

// prepareInput resolves an element-wise input and, if it overlaps dst without being exactly
// dst's layout, copies it first so that the op reads the original values. The returned func
// frees the copy.
func (be *Backend) prepareInput(t *tensor.Tensor, what string, dv *dview) (dview, func(), error) {
	v, err := be.resolve(t, what)
	if err != nil {
		return v, nil, err
	}
	if dv == nil || !v.overlaps(dv) || v.sameLayout(dv) {
		return v, func() {}, nil
	}
	c, err := be.Copy(nil, t)
	if err != nil {
		return v, nil, err
	}
	cv, err := be.resolve(c, what)
	return cv, func() { be.Free(c) }, err
}

// Copy writes src into dst (src may broadcast), converting the dtype; a nil dst makes a
// contiguous copy of src.
func (be *Backend) Copy(dst, src *tensor.Tensor) (*tensor.Tensor, error) {
	sv, err := be.resolve(src, "src")
	if err != nil {
		return nil, fmt.Errorf("cuda: copy: %w", err)
	}
	var out *tensor.Tensor
	var dv dview
	if dst == nil {
		if out, err = be.Alloc(sv.dt, src.Shape()...); err == nil {
			dv, err = be.resolve(out, "dst")
		}
	} else {
		out = dst
		if dv, err = be.resolve(dst, "dst"); err == nil {
			if bs, berr := tensor.BroadcastShapes(dst.Shape(), src.Shape()); berr != nil || !dst.ShapeIs(bs...) {
				err = fmt.Errorf("src %v does not broadcast to dst %v", src.Shape(), dst.Shape())
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cuda: copy: %w", err)
	}
	if dst != nil && sv.overlaps(&dv) && !sv.sameLayout(&dv) {
		tmp, err := be.Copy(nil, src)
		if err != nil {
			return nil, err
		}
		defer be.Free(tmp)
		sv, _ = be.resolve(tmp, "src")
	}
	if err := be.copyView(&dv, &sv); err != nil {
		if dst == nil {
			be.Free(out)
		}
		return nil, fmt.Errorf("cuda: copy: %w", err)
	}
	return out, nil
}

// Convert returns a contiguous copy of src in dtype dt (FP8 included).
func (be *Backend) Convert(src *tensor.Tensor, dt tensor.DType) (*tensor.Tensor, error) {
	sv, err := be.resolve(src, "src")
	if err != nil {
		return nil, fmt.Errorf("cuda: convert: %w", err)
	}
	out, err := be.Alloc(dt, src.Shape()...)
	if err != nil {
		return nil, fmt.Errorf("cuda: convert: %w", err)
	}
	dv, _ := be.resolve(out, "dst")
	if err := be.copyView(&dv, &sv); err != nil {
		be.Free(out)
		return nil, fmt.Errorf("cuda: convert: %w", err)
	}
	return out, nil
}

// Concat joins xs along dim.
func (be *Backend) Concat(dst *tensor.Tensor, dim int, xs ...*tensor.Tensor) (*tensor.Tensor, error) {
	views := make([]dview, len(xs))
	for i, x := range xs {
		v, err := be.resolve(x, fmt.Sprintf("input %d", i))
		if err != nil {
			return nil, fmt.Errorf("cuda: concat: %w", err)
		}
		views[i] = v
	}
	shape, d, err := tensor.ConcatShape(dim, xs...)
	if err != nil {
		return nil, fmt.Errorf("cuda: concat: %w", err)
	}
	out, dv, err := be.output(dst, resultDType(views[0].dt), shape)
	if err != nil {
		return nil, fmt.Errorf("cuda: concat: %w", err)
	}
	for i := range views {
		if dv.overlaps(&views[i]) {
			return nil, fmt.Errorf("cuda: concat: dst overlaps input %d", i)
		}
	}
	at := 0
	for i := range xs {
		part, err := out.Slice(d, at, at+views[i].Shape[d])
		if err != nil {
			return nil, fmt.Errorf("cuda: concat: %w", err)
		}
		pv, _ := be.resolve(part, "dst")
		if views[i].NumElements() > 0 {
			if err := be.copyView(&pv, &views[i]); err != nil {
				return nil, fmt.Errorf("cuda: concat: %w", err)
			}
		}
		at += views[i].Shape[d]
	}
	return out, nil
}

// GatherRows copies rows ids of table [V, D] into dst [len(ids), D].
func (be *Backend) GatherRows(dst, table *tensor.Tensor, ids []int) (*tensor.Tensor, error) {
	tv, err := be.resolve(table, "table")
	if err != nil {
		return nil, fmt.Errorf("cuda: gather rows: %w", err)
	}
	if tv.Rank != 2 {
		return nil, fmt.Errorf("cuda: gather rows: table %v must be [V, D]", table.Shape())
	}
	vocab, d := tv.Shape[0], tv.Shape[1]
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("cuda: gather rows: id %d at %d is outside [0, %d)", id, i, vocab)
		}
	}
	out, dv, err := be.output(dst, resultDType(tv.dt), []int{len(ids), d})
	if err != nil {
		return nil, fmt.Errorf("cuda: gather rows: %w", err)
	}
	if dv.overlaps(&tv) {
		return nil, fmt.Errorf("cuda: gather rows: dst overlaps the table")
	}
	if len(ids)*d == 0 {
		return out, nil
	}
	if len(ids)*d > maxLaunchElems {
		return nil, fmt.Errorf("cuda: gather rows: %d×%d elements exceed one launch", len(ids), d)
	}
	idb, err := be.newBuffer(4 * len(ids))
	if err != nil {
		return nil, fmt.Errorf("cuda: gather rows: %w", err)
	}
	defer be.releaseBuffer(idb)
	host := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(host[4*i:], uint32(id))
	}
	if err := be.dev.htod(idb.ptr, host); err != nil {
		return nil, fmt.Errorf("cuda: gather rows: %w", err)
	}
	a := (&args{}).ptr(tv.addr()).i32(int(tv.dt)).i64(tv.Strides[0]).i64(tv.Strides[1]).ptr(idb.ptr).i32(len(ids)).i32(d).
		ptr(dv.addr()).i32(int(dv.dt)).i64(dv.Strides[0]).i64(dv.Strides[1])
	if err := be.launch(kGatherRows, gridFor(len(ids)*d, eltBlock), eltBlock, 0, a); err != nil {
		return nil, fmt.Errorf("cuda: gather rows: %w", err)
	}
	return out, nil
}
