package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// mapUnary runs ew_map with op over x into dst (in place when dst is x).
func (be *Backend) mapUnary(dst, x *tensor.Tensor, name string, op int, p0, p1 float32) (*tensor.Tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("cuda: %s: x is nil", name)
	}
	if _, err := be.resolve(x, "x"); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	out, dv, err := be.output(dst, resultDType(x.DType()), x.Shape())
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	xv, done, err := be.prepareInput(x, "x", &dv)
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	defer done()
	if err := be.mapView(&dv, &xv, op, p0, p1); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	return out, nil
}

// Unary applies op element-wise.
func (be *Backend) Unary(dst, x *tensor.Tensor, op tensor.UnaryOp) (*tensor.Tensor, error) {
	if !op.Valid() {
		return nil, fmt.Errorf("cuda: unary: invalid op %v", op)
	}
	return be.mapUnary(dst, x, "unary "+op.String(), int(op), 0, 0)
}

// Affine computes x·mul + add element-wise (the product rounded before the sum).
func (be *Backend) Affine(dst, x *tensor.Tensor, mul, add float32) (*tensor.Tensor, error) {
	return be.mapUnary(dst, x, "affine", opAffine, mul, add)
}

// Clamp limits x to [lo, hi]; NaN stays NaN.
func (be *Backend) Clamp(dst, x *tensor.Tensor, lo, hi float32) (*tensor.Tensor, error) {
	if lo > hi {
		return nil, fmt.Errorf("cuda: clamp: lo %v > hi %v", lo, hi)
	}
	return be.mapUnary(dst, x, "clamp", opClamp, lo, hi)
}

// Binary applies op to a and b broadcast together.
func (be *Backend) Binary(dst, a, b *tensor.Tensor, op tensor.BinaryOp) (*tensor.Tensor, error) {
	name := "binary " + op.String()
	if !op.Valid() {
		return nil, fmt.Errorf("cuda: binary: invalid op %v", op)
	}
	if a == nil || b == nil {
		return nil, fmt.Errorf("cuda: %s: nil operand", name)
	}
	shape, err := tensor.BroadcastShapes(a.Shape(), b.Shape())
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	if _, err := be.resolve(a, "a"); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	if _, err := be.resolve(b, "b"); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	out, dv, err := be.output(dst, resultDType(a.DType()), shape)
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	av, doneA, err := be.prepareInput(a, "a", &dv)
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	defer doneA()
	bv, doneB, err := be.prepareInput(b, "b", &dv)
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	defer doneB()
	l, err := newND(shape, &dv, &av, &bv)
	if err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	if l.n == 0 {
		return out, nil
	}
	ar := (&args{}).structure(l.pack()).ptr(dv.addr()).i32(int(dv.dt)).ptr(av.addr()).i32(int(av.dt)).
		ptr(bv.addr()).i32(int(bv.dt)).i32(int(op))
	if err := be.launch(kEwBin, gridFor(l.n, eltBlock), eltBlock, 0, ar); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", name, err)
	}
	return out, nil
}
