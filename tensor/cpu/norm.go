package cpu

import (
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/tensor"
)

// rowOffset returns the offset of row r (all dimensions but the last) of v.
func rowOffset(v *view, r int) int {
	off := v.Offset
	for d := v.Rank - 2; d >= 0; d-- {
		i := r % v.Shape[d]
		r /= v.Shape[d]
		off += i * v.Strides[d]
	}
	return off
}

// loadParam returns a [D] parameter (gain, bias) as float32 in a pooled buffer, or nil.
func (be *Backend) loadParam(p *tensor.Tensor, d int, what string) ([]float32, *buffer, error) {
	if p == nil {
		return nil, nil, nil
	}
	v, err := resolve(p, what)
	if err != nil {
		return nil, nil, err
	}
	if v.Rank != 1 || v.Shape[0] != d {
		return nil, nil, fmt.Errorf("%s has shape %v, want [%d]", what, p.Shape(), d)
	}
	buf, hold := be.pool.getF32(d)
	v.load(buf, 1, v.Offset, v.Strides[0], d)
	return buf, hold, nil
}

// rowOp runs f over the rows (last dimension, length d) of x, writing the rows of dst.
// f gets the input row, the output row and the row index.
func (be *Backend) rowOp(dst, x *tensor.Tensor, name string, f func(out, in []float32)) (*tensor.Tensor, error) {
	xv0, err := resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	if xv0.Rank == 0 {
		return nil, fmt.Errorf("cpu: %s: x is a scalar", name)
	}
	out, dv, err := be.output(dst, resultDType(xv0.dt), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	xv, done, err := be.prepareInput(x, "x", &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", name, err)
	}
	defer done()
	last := xv.Rank - 1
	d := xv.Shape[last]
	if d == 0 {
		return out, nil
	}
	rows := xv.NumElements() / d
	be.w.parallelFor(rows, be.w.grainFor(rows, max(1, 16384/d)), func(lo, hi int) {
		buf, hold := be.pool.getF32(2 * d)
		defer be.pool.put(hold)
		xs, os := buf[:d], buf[d:]
		for r := lo; r < hi; r++ {
			in := xv.rowStrided(rowOffset(&xv, r), xv.Strides[last], d, xs)
			do := rowOffset(&dv, r)
			if dv.dt == tensor.F32 && dv.Strides[last] == 1 {
				f(dv.f32[do:do+d], in)
				continue
			}
			f(os, in)
			dv.store(os, do, dv.Strides[last])
		}
	})
	return out, nil
}

// RMSNorm computes x / sqrt(mean(x²) + eps) · w over the last dimension.
func (be *Backend) RMSNorm(dst, x, w *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x == nil || x.Rank() == 0 {
		return nil, fmt.Errorf("cpu: rmsnorm: x must have at least one dimension")
	}
	d := x.Dim(-1)
	wf, hold, err := be.loadParam(w, d, "weight")
	if err != nil {
		return nil, fmt.Errorf("cpu: rmsnorm: %w", err)
	}
	defer be.pool.put(hold)
	return be.rowOp(dst, x, "rmsnorm", func(out, in []float32) {
		var ss float64
		for _, v := range in {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(len(in))+float64(eps)))
		if wf == nil {
			for i, v := range in {
				out[i] = v * inv
			}
			return
		}
		for i, v := range in {
			out[i] = float32(v*inv) * wf[i]
		}
	})
}

// LayerNorm computes (x - mean)/sqrt(var + eps)·w + b over the last dimension.
func (be *Backend) LayerNorm(dst, x, w, b *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x == nil || x.Rank() == 0 {
		return nil, fmt.Errorf("cpu: layernorm: x must have at least one dimension")
	}
	d := x.Dim(-1)
	wf, wh, err := be.loadParam(w, d, "weight")
	if err != nil {
		return nil, fmt.Errorf("cpu: layernorm: %w", err)
	}
	defer be.pool.put(wh)
	bf, bh, err := be.loadParam(b, d, "bias")
	if err != nil {
		return nil, fmt.Errorf("cpu: layernorm: %w", err)
	}
	defer be.pool.put(bh)
	return be.rowOp(dst, x, "layernorm", func(out, in []float32) {
		mean, rstd := meanRstd(in, eps)
		for i, v := range in {
			y := float32((float64(v) - mean) * rstd)
			if wf != nil {
				y *= wf[i]
			}
			if bf != nil {
				y += bf[i]
			}
			out[i] = y
		}
	})
}

// meanRstd returns the mean and 1/sqrt(biased variance + eps) of x (two passes, float64).
func meanRstd(x []float32, eps float32) (float64, float64) {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mean := s / float64(len(x))
	var ss float64
	for _, v := range x {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
}

// Softmax computes softmax over the last dimension.
func (be *Backend) Softmax(dst, x *tensor.Tensor) (*tensor.Tensor, error) {
	return be.rowOp(dst, x, "softmax", func(out, in []float32) {
		m := float32(math.Inf(-1))
		for _, v := range in {
			m = max(m, v)
		}
		if math.IsInf(float64(m), -1) { // every entry -Inf: torch yields NaN; so do we
			for i := range out {
				out[i] = float32(math.NaN())
			}
			return
		}
		var s float64
		for i, v := range in {
			e := math.Exp(float64(v - m))
			out[i] = float32(e)
			s += e
		}
		inv := 1 / s
		for i, e := range out {
			out[i] = float32(float64(e) * inv)
		}
	})
}

// GroupNorm normalises x [N, C, ...] per group of C/groups channels.
func (be *Backend) GroupNorm(dst, x, w, b *tensor.Tensor, groups int, eps float32) (*tensor.Tensor, error) {
	if x == nil || x.Rank() < 2 {
		return nil, fmt.Errorf("cpu: groupnorm: x must be [N, C, ...]")
	}
	n, c := x.Dim(0), x.Dim(1)
	if groups <= 0 || c%groups != 0 {
		return nil, fmt.Errorf("cpu: groupnorm: %d channels do not split into %d groups", c, groups)
	}
	wf, wh, err := be.loadParam(w, c, "weight")
	if err != nil {
		return nil, fmt.Errorf("cpu: groupnorm: %w", err)
	}
	defer be.pool.put(wh)
	bf, bh, err := be.loadParam(b, c, "bias")
	if err != nil {
		return nil, fmt.Errorf("cpu: groupnorm: %w", err)
	}
	defer be.pool.put(bh)
	if _, err := resolve(x, "x"); err != nil {
		return nil, fmt.Errorf("cpu: groupnorm: %w", err)
	}
	out, dv0, err := be.output(dst, resultDType(x.DType()), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cpu: groupnorm: %w", err)
	}
	// Work on [N, C, S] views; copy when the spatial dimensions cannot be flattened.
	x3, freeX, err := be.flatten3(x, &dv0)
	if err != nil {
		return nil, fmt.Errorf("cpu: groupnorm: %w", err)
	}
	defer freeX()
	d3, err := out.Reshape(n, c, -1)
	target := out
	if err != nil || !(d3.DType() == tensor.F32 && d3.Stride(2) == 1) {
		tmp, aerr := be.Alloc(tensor.F32, n, c, x.NumElements()/max(n*c, 1))
		if aerr != nil {
			return nil, fmt.Errorf("cpu: groupnorm: %w", aerr)
		}
		defer be.Free(tmp)
		d3, target = tmp, tmp
	}
	xv, _ := resolve(x3, "x")
	dv, _ := resolve(d3, "dst")
	s := xv.Shape[2]
	cg := c / groups
	units := n * groups
	be.w.parallelFor(units, 1, func(lo, hi int) {
		buf, hold := be.pool.getF32(s)
		defer be.pool.put(hold)
		for u := lo; u < hi; u++ {
			ni, g := u/groups, u%groups
			var sum float64
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				row := xv.rowStrided(xv.Offset+ni*xv.Strides[0]+ch*xv.Strides[1], xv.Strides[2], s, buf)
				for _, v := range row {
					sum += float64(v)
				}
			}
			cnt := float64(cg * s)
			mean := sum / cnt
			var ss float64
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				row := xv.rowStrided(xv.Offset+ni*xv.Strides[0]+ch*xv.Strides[1], xv.Strides[2], s, buf)
				for _, v := range row {
					dd := float64(v) - mean
					ss += dd * dd
				}
			}
			rstd := 1 / math.Sqrt(ss/cnt+float64(eps))
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				row := xv.rowStrided(xv.Offset+ni*xv.Strides[0]+ch*xv.Strides[1], xv.Strides[2], s, buf)
				o := dv.Offset + ni*dv.Strides[0] + ch*dv.Strides[1]
				orow := dv.f32[o : o+s]
				for i, v := range row {
					y := float32((float64(v) - mean) * rstd)
					if wf != nil {
						y *= wf[ch]
					}
					if bf != nil {
						y += bf[ch]
					}
					orow[i] = y
				}
			}
		}
	})
	if target != out {
		src, _ := target.Reshape(out.Shape()...)
		if _, err := be.Copy(out, src); err != nil {
			return nil, fmt.Errorf("cpu: groupnorm: %w", err)
		}
	}
	return out, nil
}

// flatten3 returns x viewed as [N, C, S] (S the product of the trailing dimensions), copying x
// when that is not expressible as a view or when x partially overlaps dv. The returned func
// frees any copy.
func (be *Backend) flatten3(x *tensor.Tensor, dv *view) (*tensor.Tensor, func(), error) {
	n, c := x.Dim(0), x.Dim(1)
	s := x.NumElements() / max(n*c, 1)
	xv, err := resolve(x, "x")
	if err != nil {
		return nil, nil, err
	}
	if !(xv.overlaps(dv) && !xv.sameLayout(dv)) {
		if r, err := x.Reshape(n, c, s); err == nil {
			return r, func() {}, nil
		}
	}
	cp, err := be.Copy(nil, x)
	if err != nil {
		return nil, nil, err
	}
	r, err := cp.Reshape(n, c, s)
	if err != nil {
		be.Free(cp)
		return nil, nil, err
	}
	return r, func() { be.Free(cp) }, nil
}
