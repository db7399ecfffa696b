package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

const rowWarps = 4 // ROW_WARPS in norm.cu

// param1D resolves a [d] parameter (gain, bias), or returns a zero address for nil.
func (be *Backend) param1D(p *tensor.Tensor, d int, what string) (devPtr, tensor.DType, int, error) {
	if p == nil {
		return 0, tensor.F32, 0, nil
	}
	v, err := be.resolve(p, what)
	if err != nil {
		return 0, 0, 0, err
	}
	if v.Rank != 1 || v.Shape[0] != d {
		return 0, 0, 0, fmt.Errorf("%s has shape %v, want [%d]", what, p.Shape(), d)
	}
	return v.addr(), v.dt, v.Strides[0], nil
}

// rowOp prepares a row kernel over the last dimension of x and returns the output, the views
// and a release func.
func (be *Backend) rowOp(dst, x *tensor.Tensor, name string) (*tensor.Tensor, dview, dview, func(), error) {
	xv0, err := be.resolve(x, "x")
	if err != nil {
		return nil, dview{}, dview{}, nil, err
	}
	if xv0.Rank == 0 {
		return nil, dview{}, dview{}, nil, fmt.Errorf("x is a scalar")
	}
	out, dv, err := be.output(dst, resultDType(xv0.dt), x.Shape())
	if err != nil {
		return nil, dview{}, dview{}, nil, err
	}
	xv, done, err := be.prepareInput(x, "x", &dv)
	if err != nil {
		return nil, dview{}, dview{}, nil, err
	}
	return out, xv, dv, done, nil
}

func (be *Backend) launchRows(k *kernel, xv, dv *dview, tail func(a *args)) error {
	rs, rows, d, err := packRows(xv, dv)
	if err != nil {
		return err
	}
	if rows == 0 || d == 0 {
		return nil
	}
	a := (&args{}).structure(rs).ptr(xv.addr()).i32(int(xv.dt)).ptr(dv.addr()).i32(int(dv.dt))
	tail(a)
	grid := [3]uint32{uint32((rows + rowWarps - 1) / rowWarps), 1, 1}
	return be.launch(k, grid, 32*rowWarps, 0, a)
}

// RMSNorm computes x / sqrt(mean(x²) + eps) · w over the last dimension.
func (be *Backend) RMSNorm(dst, x, w *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x == nil || x.Rank() == 0 {
		return nil, fmt.Errorf("cuda: rmsnorm: x must have at least one dimension")
	}
	wp, wdt, ws, err := be.param1D(w, x.Dim(-1), "weight")
	if err != nil {
		return nil, fmt.Errorf("cuda: rmsnorm: %w", err)
	}
	out, xv, dv, done, err := be.rowOp(dst, x, "rmsnorm")
	if err != nil {
		return nil, fmt.Errorf("cuda: rmsnorm: %w", err)
	}
	defer done()
	if err := be.launchRows(kRMSNorm, &xv, &dv, func(a *args) { a.ptr(wp).i32(int(wdt)).i64(ws).f32(eps) }); err != nil {
		return nil, fmt.Errorf("cuda: rmsnorm: %w", err)
	}
	return out, nil
}

// LayerNorm computes (x - mean)/sqrt(var + eps)·w + b over the last dimension.
func (be *Backend) LayerNorm(dst, x, w, b *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x == nil || x.Rank() == 0 {
		return nil, fmt.Errorf("cuda: layernorm: x must have at least one dimension")
	}
	d := x.Dim(-1)
	wp, wdt, ws, err := be.param1D(w, d, "weight")
	if err != nil {
		return nil, fmt.Errorf("cuda: layernorm: %w", err)
	}
	bp, bdt, bs, err := be.param1D(b, d, "bias")
	if err != nil {
		return nil, fmt.Errorf("cuda: layernorm: %w", err)
	}
	out, xv, dv, done, err := be.rowOp(dst, x, "layernorm")
	if err != nil {
		return nil, fmt.Errorf("cuda: layernorm: %w", err)
	}
	defer done()
	if err := be.launchRows(kLayerNorm, &xv, &dv, func(a *args) {
		a.ptr(wp).i32(int(wdt)).i64(ws).ptr(bp).i32(int(bdt)).i64(bs).f32(eps)
	}); err != nil {
		return nil, fmt.Errorf("cuda: layernorm: %w", err)
	}
	return out, nil
}

// Softmax computes softmax over the last dimension (a row of -Inf gives NaN, as torch).
func (be *Backend) Softmax(dst, x *tensor.Tensor) (*tensor.Tensor, error) {
	out, xv, dv, done, err := be.rowOp(dst, x, "softmax")
	if err != nil {
		return nil, fmt.Errorf("cuda: softmax: %w", err)
	}
	defer done()
	if err := be.launchRows(kSoftmax, &xv, &dv, func(*args) {}); err != nil {
		return nil, fmt.Errorf("cuda: softmax: %w", err)
	}
	return out, nil
}

const gnThreads = 256 // GN_THREADS in norm.cu

// GroupNorm normalises x [N, C, ...] over groups of C/groups channels and the trailing
// dimensions (two passes over float64 partial sums), then applies w and b per channel.
func (be *Backend) GroupNorm(dst, x, w, b *tensor.Tensor, groups int, eps float32) (*tensor.Tensor, error) {
	if x == nil || x.Rank() < 2 {
		return nil, fmt.Errorf("cuda: groupnorm: x must be [N, C, ...]")
	}
	n, c := x.Dim(0), x.Dim(1)
	if groups <= 0 || c%groups != 0 {
		return nil, fmt.Errorf("cuda: groupnorm: %d channels do not split into %d groups", c, groups)
	}
	wp, wdt, ws, err := be.param1D(w, c, "weight")
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	bp, bdt, bs, err := be.param1D(b, c, "bias")
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	if _, err := be.resolve(x, "x"); err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	out, dv0, err := be.output(dst, resultDType(x.DType()), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	s := x.NumElements() / max(n*c, 1)
	if n*c*s == 0 {
		return out, nil
	}
	// [N, C, S] views; copies where the trailing dimensions do not flatten or x overlaps dst
	// in another layout.
	xv, done, err := be.prepareInput(x, "x", &dv0)
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	defer done()
	x3, freeX, err := be.view3(x, &xv, n, c, s)
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	defer freeX()
	target := out
	d3, rerr := out.Reshape(n, c, s)
	if rerr != nil {
		tmp, err := be.Alloc(resultDType(x.DType()), n, c, s)
		if err != nil {
			return nil, fmt.Errorf("cuda: groupnorm: %w", err)
		}
		defer be.Free(tmp)
		d3, target = tmp, tmp
	}
	yv, _ := be.resolve(d3, "dst")
	ng := n * groups
	count := (c / groups) * s
	splits := max(1, min((count+gnThreads*16-1)/(gnThreads*16), 65535, max(1, 4*be.inf.sms*8/max(ng, 1))))
	part, err := be.newBuffer(8 * ng * splits)
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	defer be.releaseBuffer(part)
	stats, err := be.newBuffer(16 * ng)
	if err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	defer be.releaseBuffer(stats)
	if ng > 1<<31-1 {
		return nil, fmt.Errorf("cuda: groupnorm: %d groups", ng)
	}
	for mode := range 2 {
		a := (&args{}).ptr(x3.addr()).i32(int(x3.dt)).i64(x3.Strides[0]).i64(x3.Strides[1]).i64(x3.Strides[2]).
			i32(c).i32(s).i32(groups).i32(splits).i32(mode).ptr(stats.ptr).ptr(part.ptr)
		if err := be.launch(kGNReduce, [3]uint32{uint32(ng), uint32(splits), 1}, gnThreads, 0, a); err != nil {
			return nil, fmt.Errorf("cuda: groupnorm: %w", err)
		}
		f := (&args{}).ptr(part.ptr).i32(splits).i32(ng).f64(float64(count)).i32(mode).f32(eps).ptr(stats.ptr)
		if err := be.launch(kGNFinalize, gridFor(ng, eltBlock), eltBlock, 0, f); err != nil {
			return nil, fmt.Errorf("cuda: groupnorm: %w", err)
		}
	}
	st := &sbuf{}
	for i := range 3 {
		st.i64(x3.Strides[i])
	}
	for i := range 3 {
		st.i64(yv.Strides[i])
	}
	st.i64(ws).i64(bs).i32(n).i32(c).i32(s).i32(groups).i32(int(x3.dt)).i32(int(yv.dt)).i32(int(wdt)).i32(int(bdt))
	a := (&args{}).structure(st.end()).ptr(x3.addr()).ptr(yv.addr()).ptr(stats.ptr).ptr(wp).ptr(bp)
	if err := be.launch(kGNApply, gridFor(n*c*s, eltBlock), eltBlock, 0, a); err != nil {
		return nil, fmt.Errorf("cuda: groupnorm: %w", err)
	}
	if target != out {
		src, _ := target.Reshape(out.Shape()...)
		if _, err := be.Copy(out, src); err != nil {
			return nil, fmt.Errorf("cuda: groupnorm: %w", err)
		}
	}
	return out, nil
}

// view3 returns x (resolved as xv) as an [n, c, s] view, copying it when the trailing
// dimensions do not flatten. The func frees any copy.
func (be *Backend) view3(x *tensor.Tensor, xv *dview, n, c, s int) (dview, func(), error) {
	src := x
	if xv.buf != nil {
		if t, err := tensor.New(xv.buf, xv.dt, xv.Shape[:xv.Rank], xv.Strides[:xv.Rank], xv.Offset); err == nil {
			src = t
		}
	}
	if r, err := src.Reshape(n, c, s); err == nil {
		v, err := be.resolve(r, "x")
		return v, func() {}, err
	}
	cp, err := be.Copy(nil, src)
	if err != nil {
		return dview{}, nil, err
	}
	r, err := cp.Reshape(n, c, s)
	if err != nil {
		be.Free(cp)
		return dview{}, nil, err
	}
	v, err := be.resolve(r, "x")
	return v, func() { be.Free(cp) }, err
}
