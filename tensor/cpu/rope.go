package cpu

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// RoPE rotates pairs of the last dimension of x [B, S, H, D] by the table cos/sin [S, D/2] or
// [B, S, D/2].
func (be *Backend) RoPE(dst, x, cos, sin *tensor.Tensor, mode tensor.RoPEMode) (*tensor.Tensor, error) {
	if mode != tensor.RoPEInterleaved && mode != tensor.RoPEHalf {
		return nil, fmt.Errorf("cpu: rope: invalid mode %v", mode)
	}
	if x == nil || x.Rank() != 4 {
		return nil, fmt.Errorf("cpu: rope: x must be [B, S, H, D]")
	}
	bsz, s, h, d := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	if d%2 != 0 {
		return nil, fmt.Errorf("cpu: rope: head dim %d is odd", d)
	}
	half := d / 2
	cv, err := ropeTable(cos, "cos", bsz, s, half)
	if err != nil {
		return nil, fmt.Errorf("cpu: rope: %w", err)
	}
	sv, err := ropeTable(sin, "sin", bsz, s, half)
	if err != nil {
		return nil, fmt.Errorf("cpu: rope: %w", err)
	}
	if _, err := resolve(x, "x"); err != nil {
		return nil, fmt.Errorf("cpu: rope: %w", err)
	}
	out, dv, err := be.output(dst, resultDType(x.DType()), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cpu: rope: %w", err)
	}
	xv, done, err := be.prepareInput(x, "x", &dv)
	if err != nil {
		return nil, fmt.Errorf("cpu: rope: %w", err)
	}
	defer done()
	tokens := bsz * s
	be.w.parallelFor(tokens, be.w.grainFor(tokens, max(1, 4096/max(h*d, 1))), func(lo, hi int) {
		buf, hold := be.pool.getF32(2*half + 2*d)
		defer be.pool.put(hold)
		cb, sb, xb, ob := buf[:half], buf[half:2*half], buf[2*half:2*half+d], buf[2*half+d:]
		for t := lo; t < hi; t++ {
			b, p := t/s, t%s
			c := cv.rowStrided(tableOffset(&cv, b, p), cv.Strides[cv.Rank-1], half, cb)
			sn := sv.rowStrided(tableOffset(&sv, b, p), sv.Strides[sv.Rank-1], half, sb)
			for hh := range h {
				xo := xv.Offset + b*xv.Strides[0] + p*xv.Strides[1] + hh*xv.Strides[2]
				in := xv.rowStrided(xo, xv.Strides[3], d, xb)
				do := dv.Offset + b*dv.Strides[0] + p*dv.Strides[1] + hh*dv.Strides[2]
				o := ob
				direct := dv.dt == tensor.F32 && dv.Strides[3] == 1
				if direct {
					o = dv.f32[do : do+d]
				}
				if mode == tensor.RoPEInterleaved {
					for i := range half {
						x0, x1 := in[2*i], in[2*i+1]
						o[2*i] = float32(c[i]*x0) - float32(sn[i]*x1)
						o[2*i+1] = float32(sn[i]*x0) + float32(c[i]*x1)
					}
				} else {
					for i := range half {
						x0, x1 := in[i], in[i+half]
						o[i] = float32(x0*c[i]) - float32(x1*sn[i])
						o[i+half] = float32(x1*c[i]) + float32(x0*sn[i])
					}
				}
				if !direct {
					dv.store(o, do, dv.Strides[3])
				}
			}
		}
	})
	return out, nil
}

// ropeTable checks a cos/sin table of shape [S, half], [1, S, half] or [B, S, half].
func ropeTable(t *tensor.Tensor, what string, b, s, half int) (view, error) {
	v, err := resolve(t, what)
	if err != nil {
		return v, err
	}
	ok := v.Rank == 2 && v.Shape[0] == s && v.Shape[1] == half ||
		v.Rank == 3 && (v.Shape[0] == b || v.Shape[0] == 1) && v.Shape[1] == s && v.Shape[2] == half
	if !ok {
		return v, fmt.Errorf("%s table has shape %v, want [%d %d] or [%d %d %d]", what, t.Shape(), s, half, b, s, half)
	}
	return v, nil
}

func tableOffset(v *view, b, p int) int {
	if v.Rank == 2 {
		return v.Offset + p*v.Strides[0]
	}
	if v.Shape[0] == 1 {
		b = 0
	}
	return v.Offset + b*v.Strides[0] + p*v.Strides[1]
}
