package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/resample"
)

// Resize interpolates the two last dimensions of x. nearest-exact, bilinear, bicubic and area
// run as kernels with torch's float32 arithmetic (tensor/resample); lanczos (ComfyUI's Pillow
// filter on 8-bit values, used for images only) falls back to the CPU backend.
func (be *Backend) Resize(dst, x *tensor.Tensor, outH, outW int, method tensor.ResizeMethod) (*tensor.Tensor, error) {
	m, err := resample.ParseMethod(string(method))
	if err != nil {
		return nil, fmt.Errorf("cuda: resize: %w", err)
	}
	xv, err := be.resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cuda: resize: %w", err)
	}
	if xv.Rank < 2 {
		return nil, fmt.Errorf("cuda: resize: x %v needs at least 2 dimensions", x.Shape())
	}
	h, w := xv.Shape[xv.Rank-2], xv.Shape[xv.Rank-1]
	if h <= 0 || w <= 0 || outH <= 0 || outW <= 0 {
		return nil, fmt.Errorf("cuda: resize: cannot resize %dx%d to %dx%d", h, w, outH, outW)
	}
	shape := x.Shape()
	shape[len(shape)-2], shape[len(shape)-1] = outH, outW
	out, dv, err := be.output(dst, resultDType(xv.dt), shape)
	if err != nil {
		return nil, fmt.Errorf("cuda: resize: %w", err)
	}
	if dv.overlaps(&xv) {
		return nil, fmt.Errorf("cuda: resize: dst overlaps x")
	}
	planes := xv.NumElements() / (h * w)
	if planes == 0 {
		return out, nil
	}
	if m == resample.Lanczos {
		return be.hostRun(out, []*tensor.Tensor{x}, func(c tensor.Backend, in []*tensor.Tensor, d *tensor.Tensor) (*tensor.Tensor, error) {
			return c.Resize(d, in[0], outH, outW, method)
		})
	}
	if planes*max(h*w, outH*outW) > maxLaunchElems {
		return nil, fmt.Errorf("cuda: resize: %v to %dx%d is too large for one launch", x.Shape(), outH, outW)
	}
	src := xv
	if xv.dt != tensor.F32 || !xv.Contiguous() {
		xc, err := be.Convert(x, tensor.F32)
		if err != nil {
			return nil, fmt.Errorf("cuda: resize: %w", err)
		}
		defer be.Free(xc)
		src, _ = be.resolve(xc, "x")
	}
	target := dv
	var tmp *tensor.Tensor
	if dv.dt != tensor.F32 || !dv.Contiguous() {
		if tmp, err = be.Alloc(tensor.F32, shape...); err != nil {
			return nil, fmt.Errorf("cuda: resize: %w", err)
		}
		defer be.Free(tmp)
		target, _ = be.resolve(tmp, "tmp")
	}
	a := (&args{}).ptr(src.addr()).ptr(target.addr()).i32(planes).i32(h).i32(w).i32(outH).i32(outW)
	k := kResizeNear
	switch m {
	case resample.Bilinear, resample.Bicubic:
		k = kResizeSep
		cubic := 0
		if m == resample.Bicubic {
			cubic = 1
		}
		a.i32(cubic)
	case resample.Area:
		k = kResizeArea
	}
	if err := be.launch(k, gridFor(planes*outH*outW, eltBlock), eltBlock, 0, a); err != nil {
		return nil, fmt.Errorf("cuda: resize: %w", err)
	}
	if tmp != nil {
		if err := be.copyView(&dv, &target); err != nil {
			return nil, fmt.Errorf("cuda: resize: %w", err)
		}
	}
	return out, nil
}
