package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// RoPE rotates pairs of the last dimension of x [B, S, H, D] by the table cos/sin
// ([S, D/2] or [1|B, S, D/2]).
func (be *Backend) RoPE(dst, x, cos, sin *tensor.Tensor, mode tensor.RoPEMode) (*tensor.Tensor, error) {
	if mode != tensor.RoPEInterleaved && mode != tensor.RoPEHalf {
		return nil, fmt.Errorf("cuda: rope: invalid mode %v", mode)
	}
	if x == nil || x.Rank() != 4 {
		return nil, fmt.Errorf("cuda: rope: x must be [B, S, H, D]")
	}
	bsz, s, h, d := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	if d%2 != 0 {
		return nil, fmt.Errorf("cuda: rope: head dim %d is odd", d)
	}
	half := d / 2
	cv, cs, err := be.ropeTable(cos, "cos", bsz, s, half)
	if err != nil {
		return nil, fmt.Errorf("cuda: rope: %w", err)
	}
	sv, ss, err := be.ropeTable(sin, "sin", bsz, s, half)
	if err != nil {
		return nil, fmt.Errorf("cuda: rope: %w", err)
	}
	if _, err := be.resolve(x, "x"); err != nil {
		return nil, fmt.Errorf("cuda: rope: %w", err)
	}
	out, dv, err := be.output(dst, resultDType(x.DType()), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cuda: rope: %w", err)
	}
	xv, done, err := be.prepareInput(x, "x", &dv)
	if err != nil {
		return nil, fmt.Errorf("cuda: rope: %w", err)
	}
	defer done()
	total := bsz * s * h * half
	if total == 0 {
		return out, nil
	}
	if total > maxLaunchElems {
		return nil, fmt.Errorf("cuda: rope: %v is too large for one launch", x.Shape())
	}
	st := &sbuf{}
	for i := range 4 {
		st.i64(xv.Strides[i])
	}
	for i := range 4 {
		st.i64(dv.Strides[i])
	}
	for _, v := range cs {
		st.i64(v)
	}
	for _, v := range ss {
		st.i64(v)
	}
	st.i32(bsz).i32(s).i32(h).i32(half).i32(int(mode)).i32(int(xv.dt)).i32(int(dv.dt)).i32(int(cv.dt)).i32(int(sv.dt)).i32(0)
	a := (&args{}).structure(st.end()).ptr(xv.addr()).ptr(dv.addr()).ptr(cv.addr()).ptr(sv.addr())
	if err := be.launch(kRoPE, gridFor(total, eltBlock), eltBlock, 0, a); err != nil {
		return nil, fmt.Errorf("cuda: rope: %w", err)
	}
	return out, nil
}

// ropeTable checks a cos/sin table and returns its strides over (b, s, i).
func (be *Backend) ropeTable(t *tensor.Tensor, what string, b, s, half int) (dview, [3]int, error) {
	v, err := be.resolve(t, what)
	if err != nil {
		return v, [3]int{}, err
	}
	switch {
	case v.Rank == 2 && v.Shape[0] == s && v.Shape[1] == half:
		return v, [3]int{0, v.Strides[0], v.Strides[1]}, nil
	case v.Rank == 3 && (v.Shape[0] == b || v.Shape[0] == 1) && v.Shape[1] == s && v.Shape[2] == half:
		bs := v.Strides[0]
		if v.Shape[0] == 1 {
			bs = 0
		}
		return v, [3]int{bs, v.Strides[1], v.Strides[2]}, nil
	}
	return v, [3]int{}, fmt.Errorf("%s table has shape %v, want [%d %d] or [%d %d %d]", what, t.Shape(), s, half, b, s, half)
}
