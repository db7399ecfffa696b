package cpu

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/dypegraph/dypegraph/tensor"
)

// segLen is the longest run of elements an element-wise kernel handles at once.
const segLen = 1024

// scratch is per-chunk working memory, overlaid on a pooled buffer.
type scratch struct {
	a, b, o [segLen]float32
}

// nd is an iteration over a shape shared by up to three operands (each with its own strides,
// 0 where it broadcasts), with mergeable dimensions coalesced.
type nd struct {
	rank  int
	n     int
	shape [tensor.MaxRank]int
	str   [3][tensor.MaxRank]int
	off   [3]int
}

func newND(shape []int, ops ...*view) nd {
	l := nd{n: len(ops)}
	r := len(shape)
	for d := range r {
		l.shape[d] = shape[d]
	}
	for k, v := range ops {
		l.off[k] = v.Offset
		lead := r - v.Rank
		for d := range r {
			if d >= lead && v.Shape[d-lead] != 1 {
				l.str[k][d] = v.Strides[d-lead]
			}
		}
	}
	// Drop size-1 dimensions, then merge neighbours that are contiguous for every operand.
	var out nd
	out.n, out.off = l.n, l.off
	for d := range r {
		if l.shape[d] == 1 {
			continue
		}
		if out.rank > 0 {
			p := out.rank - 1
			merge := true
			for k := range l.n {
				if out.str[k][p] != l.str[k][d]*l.shape[d] {
					merge = false
					break
				}
			}
			if merge {
				out.shape[p] *= l.shape[d]
				for k := range l.n {
					out.str[k][p] = l.str[k][d]
				}
				continue
			}
		}
		out.shape[out.rank] = l.shape[d]
		for k := range l.n {
			out.str[k][out.rank] = l.str[k][d]
		}
		out.rank++
	}
	if out.rank == 0 {
		out.rank = 1
		out.shape[0] = 1
		for _, d := range shape {
			if d == 0 {
				out.shape[0] = 0
			}
		}
	}
	return out
}

func (l *nd) numel() int {
	n := 1
	for d := range l.rank {
		n *= l.shape[d]
	}
	return n
}

// rowOffsets sets o to the operands' offsets of the first element of outer row r.
func (l *nd) rowOffsets(r int, o *[3]int) {
	*o = l.off
	for d := l.rank - 2; d >= 0; d-- {
		i := r % l.shape[d]
		r /= l.shape[d]
		for k := range l.n {
			o[k] += i * l.str[k][d]
		}
	}
}

// forEachSeg calls fn, in parallel, for every run of at most segLen elements along the inner
// dimension, with the operands' offsets of the run's first element and a scratch area.
func (be *Backend) forEachSeg(l *nd, fn func(o *[3]int, n int, sc *scratch)) {
	total := l.numel()
	if total == 0 {
		return
	}
	inner := l.shape[l.rank-1]
	nseg := ceilDiv(inner, segLen)
	units := total / inner * nseg
	perUnit := min(inner, segLen)
	grain := be.w.grainFor(units, max(1, 32768/perUnit))
	be.w.parallelFor(units, grain, func(lo, hi int) {
		buf := be.pool.get(int(unsafe.Sizeof(scratch{})))
		defer be.pool.put(buf)
		sc := (*scratch)(unsafe.Pointer(&buf.full[0]))
		var o [3]int
		last := l.rank - 1
		for u := lo; u < hi; u++ {
			r, s := u/nseg, u%nseg
			l.rowOffsets(r, &o)
			start := s * segLen
			for k := range l.n {
				o[k] += start * l.str[k][last]
			}
			fn(&o, min(segLen, inner-start), sc)
		}
	})
}

// prepareInput resolves an element-wise input and, if it overlaps dst without being exactly
// dst's layout, copies it first so that the op reads the original values. The returned func
// frees the copy.
func (be *Backend) prepareInput(t *tensor.Tensor, what string, dv *view) (view, func(), error) {
	v, err := resolve(t, what)
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
	cv, err := resolve(c, what)
	return cv, func() { be.Free(c) }, err
}

// Copy writes src into dst (src may broadcast), converting dtype; nil dst makes a contiguous
// copy of src with src's dtype.
func (be *Backend) Copy(dst, src *tensor.Tensor) (*tensor.Tensor, error) {
	sv, err := resolve(src, "src")
	if err != nil {
		return nil, fmt.Errorf("cpu: copy: %w", err)
	}
	var out *tensor.Tensor
	var dv view
	if dst == nil {
		out, err = be.Alloc(sv.dt, src.Shape()...)
		if err == nil {
			dv, err = resolve(out, "dst")
		}
	} else {
		out = dst
		dv, err = resolve(dst, "dst")
		if err == nil {
			if bs, berr := tensor.BroadcastShapes(dst.Shape(), src.Shape()); berr != nil || !dst.ShapeIs(bs...) {
				err = fmt.Errorf("src %v does not broadcast to dst %v", src.Shape(), dst.Shape())
			} else if !dv.dt.Valid() {
				err = fmt.Errorf("dst has invalid dtype")
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cpu: copy: %w", err)
	}
	if dst != nil && sv.overlaps(&dv) && !sv.sameLayout(&dv) {
		tmp, err := be.Copy(nil, src)
		if err != nil {
			return nil, err
		}
		defer be.Free(tmp)
		sv, _ = resolve(tmp, "src")
	}
	be.copyView(&dv, &sv)
	return out, nil
}

// copyView copies sv into dv (sv broadcast to dv's shape), converting dtype.
func (be *Backend) copyView(dv, sv *view) {
	l := newND(dv.Shape[:dv.Rank], dv, sv)
	last := l.rank - 1
	ds, ss := l.str[0][last], l.str[1][last]
	if dv.dt == sv.dt && ds == 1 && ss == 1 {
		be.forEachSeg(&l, func(o *[3]int, n int, _ *scratch) {
			sz := dv.dt.Size()
			db := unsafeBytes(dv)
			sb := unsafeBytes(sv)
			copy(db[o[0]*sz:(o[0]+n)*sz], sb[o[1]*sz:(o[1]+n)*sz])
		})
		return
	}
	be.forEachSeg(&l, func(o *[3]int, n int, sc *scratch) {
		x := sv.rowStrided(o[1], ss, n, sc.a[:])
		dv.store(x, o[0], ds)
	})
}

// unsafeBytes returns the raw storage bytes of v.
func unsafeBytes(v *view) []byte {
	switch {
	case v.f32 != nil:
		return unsafe.Slice((*byte)(unsafe.Pointer(&v.f32[0])), 4*len(v.f32))
	case v.u16 != nil:
		return unsafe.Slice((*byte)(unsafe.Pointer(&v.u16[0])), 2*len(v.u16))
	}
	return v.u8
}

// Convert returns a contiguous copy of src in dtype dt.
func (be *Backend) Convert(src *tensor.Tensor, dt tensor.DType) (*tensor.Tensor, error) {
	sv, err := resolve(src, "src")
	if err != nil {
		return nil, fmt.Errorf("cpu: convert: %w", err)
	}
	out, err := be.Alloc(dt, src.Shape()...)
	if err != nil {
		return nil, fmt.Errorf("cpu: convert: %w", err)
	}
	dv, _ := resolve(out, "dst")
	be.copyView(&dv, &sv)
	return out, nil
}

// Unary applies op element-wise.
func (be *Backend) Unary(dst, x *tensor.Tensor, op tensor.UnaryOp) (*tensor.Tensor, error) {
	if !op.Valid() {
		return nil, fmt.Errorf("cpu: unary: invalid op %v", op)
	}
	return be.mapUnary(dst, x, "unary "+op.String(), func(out, in, tmp []float32) { applyUnary(op, out, in, tmp) })
}

// Affine computes x·mul + add element-wise.
func (be *Backend) Affine(dst, x *tensor.Tensor, mul, add float32) (*tensor.Tensor, error) {
	return be.mapUnary(dst, x, "affine", func(out, in, _ []float32) {
		for i, v := range in {
			out[i] = float32(v*mul) + add
		}
	})
}

// Clamp limits x to [lo, hi]; NaN stays NaN.
func (be *Backend) Clamp(dst, x *tensor.Tensor, lo, hi float32) (*tensor.Tensor, error) {
	if lo > hi {
		return nil, fmt.Errorf("cpu: clamp: lo %v > hi %v", lo, hi)
	}
	return be.mapUnary(dst, x, "clamp", func(out, in, _ []float32) {
		for i, v := range in {
			switch {
			case v < lo:
				v = lo
			case v > hi:
				v = hi
			}
			out[i] = v
		}
	})
}

// mapUnary applies f to x element-wise; f gets the input run, the output run (which may be
// the input itself) and a scratch run of the same length.
func (be *Backend) mapUnary(dst, x *tensor.Tensor, name string, f func(out, in, tmp []float32)) (*tensor.Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("cpu: %s: x is nil", name)
	}
	if _, err := resolve(x, "x"); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	out, dv, err := be.output(dst, resultDType(x.DType()), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	xv, done, err := be.prepareInput(x, "x", &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	defer done()
	l := newND(dv.Shape[:dv.Rank], &dv, &xv)
	last := l.rank - 1
	ds, xs := l.str[0][last], l.str[1][last]
	be.forEachSeg(&l, func(o *[3]int, n int, sc *scratch) {
		in := xv.rowStrided(o[1], xs, n, sc.a[:])
		if dv.dt == tensor.F32 && ds == 1 {
			f(dv.f32[o[0]:o[0]+n], in, sc.b[:n])
			return
		}
		f(sc.o[:n], in, sc.b[:n])
		dv.store(sc.o[:n], o[0], ds)
	})
	return out, nil
}

const (
	sqrt2OverPi = 0.7978845608028654 // sqrt(2/pi)
	invSqrt2    = 0.7071067811865476
)

// applyUnary computes out = op(in); tmp is scratch of the same length (out may alias in).
func applyUnary(op tensor.UnaryOp, out, in, tmp []float32) {
	out = out[:len(in)]
	switch op {
	case tensor.Neg:
		for i, v := range in {
			out[i] = -v
		}
	case tensor.Abs:
		for i, v := range in {
			out[i] = float32(math.Abs(float64(v)))
		}
	case tensor.Square:
		for i, v := range in {
			out[i] = v * v
		}
	case tensor.Sqrt:
		for i, v := range in {
			out[i] = float32(math.Sqrt(float64(v)))
		}
	case tensor.Rsqrt:
		for i, v := range in {
			out[i] = float32(1 / math.Sqrt(float64(v)))
		}
	case tensor.Exp:
		for i, v := range in {
			out[i] = float32(math.Exp(float64(v)))
		}
	case tensor.Tanh:
		for i, v := range in {
			out[i] = float32(math.Tanh(float64(v)))
		}
	case tensor.Sigmoid:
		for i, v := range in {
			out[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	case tensor.SiLU:
		siluF32(out, in, tmp)
	case tensor.ReLU:
		for i, v := range in {
			if v < 0 {
				v = 0
			}
			out[i] = v
		}
	case tensor.GELUErf:
		for i, v := range in {
			x := float64(v)
			out[i] = float32(0.5 * x * (1 + math.Erf(x*invSqrt2)))
		}
	case tensor.GELUTanh:
		for i, v := range in {
			x := float64(v)
			out[i] = float32(0.5 * x * (1 + math.Tanh(sqrt2OverPi*(x+0.044715*x*x*x))))
		}
	}
}

// Binary applies op to a and b broadcast together.
func (be *Backend) Binary(dst, a, b *tensor.Tensor, op tensor.BinaryOp) (*tensor.Tensor, error) {
	name := "binary " + op.String()
	if !op.Valid() {
		return nil, fmt.Errorf("cpu: binary: invalid op %v", op)
	}
	if a == nil || b == nil {
		return nil, fmt.Errorf("cpu: %s: nil operand", name)
	}
	shape, err := tensor.BroadcastShapes(a.Shape(), b.Shape())
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	if _, err := resolve(a, "a"); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	if _, err := resolve(b, "b"); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	out, dv, err := be.output(dst, resultDType(a.DType()), shape)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	av, doneA, err := be.prepareInput(a, "a", &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	defer doneA()
	bv, doneB, err := be.prepareInput(b, "b", &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	defer doneB()
	l := newND(shape, &dv, &av, &bv)
	last := l.rank - 1
	ds, as, bs := l.str[0][last], l.str[1][last], l.str[2][last]
	be.forEachSeg(&l, func(o *[3]int, n int, sc *scratch) {
		x := av.rowStrided(o[1], as, n, sc.a[:])
		var y []float32
		if bs == 0 {
			bv.load(sc.b[:], 0, o[2], 0, 1)
			y = sc.b[:1]
		} else {
			y = bv.rowStrided(o[2], bs, n, sc.b[:])
		}
		res := sc.o[:n]
		direct := dv.dt == tensor.F32 && ds == 1
		if direct {
			res = dv.f32[o[0] : o[0]+n]
		}
		applyBinary(op, res, x, y)
		if !direct {
			dv.store(res, o[0], ds)
		}
	})
	return out, nil
}

// applyBinary computes out = x op y; y of length 1 is a scalar.
func applyBinary(op tensor.BinaryOp, out, x, y []float32) {
	if len(y) == 1 && len(x) != 1 {
		s := y[0]
		switch op {
		case tensor.Add:
			for i, v := range x {
				out[i] = v + s
			}
		case tensor.Sub:
			for i, v := range x {
				out[i] = v - s
			}
		case tensor.Mul:
			for i, v := range x {
				out[i] = v * s
			}
		case tensor.Div:
			for i, v := range x {
				out[i] = v / s
			}
		case tensor.Maximum:
			for i, v := range x {
				out[i] = max(v, s)
			}
		case tensor.Minimum:
			for i, v := range x {
				out[i] = min(v, s)
			}
		}
		return
	}
	y = y[:len(x)]
	out = out[:len(x)]
	switch op {
	case tensor.Add:
		for i, v := range x {
			out[i] = v + y[i]
		}
	case tensor.Sub:
		for i, v := range x {
			out[i] = v - y[i]
		}
	case tensor.Mul:
		for i, v := range x {
			out[i] = v * y[i]
		}
	case tensor.Div:
		for i, v := range x {
			out[i] = v / y[i]
		}
	case tensor.Maximum:
		for i, v := range x {
			out[i] = max(v, y[i])
		}
	case tensor.Minimum:
		for i, v := range x {
			out[i] = min(v, y[i])
		}
	}
}

// siluF32 computes x·sigmoid(x) with the vectorised float32 exponential (it dominates the
// FFN and VAE activations). With e = exp(-|x|), which never overflows,
// sigmoid(x) = 1/(1+e) for x ≥ 0 and e/(1+e) otherwise. out may alias in; e is scratch.
func siluF32(out, in, e []float32) {
	e = e[:len(in)]
	out = out[:len(in)]
	for i, v := range in {
		e[i] = -float32(math.Abs(float64(v)))
	}
	expShiftSum(e, 0)
	for i, v := range in {
		// numerator: e for negative x, 1 otherwise, selected by the sign bit without a branch
		// (the sign of activations is unpredictable).
		neg := uint32(int32(math.Float32bits(v)) >> 31)
		num := math.Float32frombits(math.Float32bits(e[i])&neg | 0x3f800000&^neg)
		out[i] = v * (num / (1 + e[i]))
	}
}
