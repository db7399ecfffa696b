package zimage

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// Denoised returns the flow-matching x0 estimate x − σ·v (ComfyUI model_sampling CONST
// calculate_denoised) as a new F32 tensor on be: x and v are [B, ...] and sigma holds one value
// per sample (or one for all). The caller frees the result.
func Denoised(be tensor.Backend, x, v *tensor.Tensor, sigma []float32) (*tensor.Tensor, error) {
	if x == nil || v == nil || !x.SameShape(v) || x.Rank() < 1 {
		return nil, fmt.Errorf("zimage: denoised: x %v and v %v must have the same shape", shapeOf(x), shapeOf(v))
	}
	b := x.Dim(0)
	sig := make([]float32, b)
	switch len(sigma) {
	case b:
		copy(sig, sigma)
	case 1:
		for i := range sig {
			sig[i] = sigma[0]
		}
	default:
		return nil, fmt.Errorf("zimage: denoised: %d sigmas for a batch of %d", len(sigma), b)
	}
	shape := make([]int, x.Rank())
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = b
	st, err := be.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, fmt.Errorf("zimage: denoised: %w", err)
	}
	defer be.Free(st)
	if err := be.Write(st, sig); err != nil {
		return nil, fmt.Errorf("zimage: denoised: %w", err)
	}
	out, err := be.Alloc(tensor.F32, x.Shape()...)
	if err != nil {
		return nil, fmt.Errorf("zimage: denoised: %w", err)
	}
	if _, err := be.Binary(out, v, st, tensor.Mul); err == nil {
		_, err = be.Binary(out, x, out, tensor.Sub)
	}
	if err != nil {
		be.Free(out)
		return nil, fmt.Errorf("zimage: denoised: %w", err)
	}
	return out, nil
}
