package lora

import (
	"fmt"
	"slices"

	"github.com/dypegraph/dypegraph/tensor"
)

// block returns the row range a patch covers in a parameter of the given shape.
func block(p *Patch, shape []int) (start, rows int) {
	if p.Target.Whole() {
		return 0, shape[0]
	}
	return p.Target.Start, p.Target.Rows
}

// Check reports whether p fits a parameter of shape: its row block lies inside the parameter,
// a LoRA's up·down has exactly the block's shape ([rows, product of the other dimensions]; for
// a 1-D parameter the same number of elements, as ComfyUI's reshape), a diff or set value
// exactly the block's shape.
func Check(p *Patch, shape []int) error {
	if len(shape) == 0 {
		return fmt.Errorf("lora: %s: parameter %s is a scalar", p.Source(), p.Target.Param)
	}
	start, rows := block(p, shape)
	if start < 0 || rows < 1 || start+rows > shape[0] {
		return fmt.Errorf("lora: %s: rows %d:%d are outside %s %v", p.Source(), start, start+rows, p.Target.Param, shape)
	}
	want := append([]int{rows}, shape[1:]...)
	n := 1
	for _, d := range want {
		n *= d
	}
	switch p.Kind {
	case KindLoRA:
		if p.Up == nil || p.Down == nil || p.Up.Rank() != 2 || p.Down.Rank() != 2 || p.Up.Dim(1) != p.Down.Dim(0) {
			return fmt.Errorf("lora: %s: malformed LoRA matrices", p.Source())
		}
		out, in := p.Up.Dim(0), p.Down.Dim(1)
		if len(shape) == 1 {
			if out*in != n {
				return fmt.Errorf("lora: %s: up %v · down %v does not fit %s %v (a LoRA for another model?)", p.Source(), p.Up.Shape(), p.Down.Shape(), p.Target, shape)
			}
			return nil
		}
		if out != rows || in != n/rows {
			return fmt.Errorf("lora: %s: up %v · down %v does not fit %s %v (a LoRA for another model?)", p.Source(), p.Up.Shape(), p.Down.Shape(), p.Target, shape)
		}
	case KindDiff, KindSet:
		if p.Diff == nil || !slices.Equal(p.Diff.Shape(), want) {
			var got any = "nothing"
			if p.Diff != nil {
				got = p.Diff.Shape()
			}
			return fmt.Errorf("lora: %s: %s of shape %v does not fit %s %v", p.Source(), p.Kind, got, p.Target, shape)
		}
	default:
		return fmt.Errorf("lora: %s: unknown patch kind %v", p.Source(), p.Kind)
	}
	return nil
}

// Apply returns a new tensor on be with the value ComfyUI's patch_weight_to_device gives the
// parameter: a float32 copy of base, each patch in order added to its row block (LoRA:
// float32(strength·alpha/rank)·(up·down) with up·down computed in float32 in torch's CPU
// order (see product); diff:
// float32(strength)·diff; set: the value), then rounded to base's dtype to nearest even.
// base is never written.
//
// base may be one row block of a larger parameter (diffusers checkpoints keep q, k and v as
// separate tensors of the fused qkv): rowOffset is its first row in the parameter of shape
// paramShape, and each patch adds only the rows that fall inside it. Patches must have passed
// Check against paramShape. The caller frees the result.
func Apply(be tensor.Backend, base *tensor.Tensor, rowOffset int, paramShape []int, patches []Patch) (out *tensor.Tensor, err error) {
	if base == nil || base.Rank() == 0 || len(paramShape) != base.Rank() || !slices.Equal(base.Shape()[1:], paramShape[1:]) ||
		rowOffset < 0 || rowOffset+base.Dim(0) > paramShape[0] {
		return nil, fmt.Errorf("lora: apply: tensor %v at row %d is not part of a parameter %v", shapeOf(base), rowOffset, paramShape)
	}
	for i := range patches {
		if err := Check(&patches[i], paramShape); err != nil {
			return nil, err
		}
	}
	w, err := be.Convert(base, tensor.F32)
	if err != nil {
		return nil, fmt.Errorf("lora: apply: %w", err)
	}
	defer func() {
		if out != w {
			be.Free(w)
		}
	}()
	var temps []*tensor.Tensor
	defer func() { be.Free(temps...) }()
	dev := func(t *tensor.Tensor) (*tensor.Tensor, error) {
		d, err := be.ToDevice(t)
		if err == nil && d != t {
			temps = append(temps, d)
		}
		return d, err
	}
	rows := base.Dim(0)
	for i := range patches {
		p := &patches[i]
		start, n := block(p, paramShape)
		a, b := max(start, rowOffset), min(start+n, rowOffset+rows)
		if a >= b {
			continue
		}
		wv, err := w.Slice(0, a-rowOffset, b-rowOffset)
		if err != nil {
			return nil, fmt.Errorf("lora: %s: %w", p.Source(), err)
		}
		wrap := func(err error) error { return fmt.Errorf("lora: %s: applying to %s: %w", p.Source(), p.Target, err) }
		switch p.Kind {
		case KindLoRA:
			up, err := p.Up.ToFloat32()
			if err != nil {
				return nil, wrap(err)
			}
			down, err := p.Down.ToFloat32()
			if err != nil {
				return nil, wrap(err)
			}
			rank, in := p.Rank(), p.Down.Dim(1)
			out := p.Up.Dim(0)
			if len(paramShape) > 1 {
				up, out = up[(a-start)*rank:(b-start)*rank], b-a
			}
			host, err := tensor.FromFloat32(product(up, down, out, rank, in), out, in)
			if err != nil {
				return nil, wrap(err)
			}
			delta, err := dev(host)
			if err != nil {
				return nil, wrap(err)
			}
			if _, err := be.Affine(delta, delta, p.Factor(), 0); err != nil {
				return nil, wrap(err)
			}
			dv, err := delta.Reshape(wv.Shape()...)
			if err != nil {
				return nil, wrap(err)
			}
			if _, err := be.Binary(wv, wv, dv, tensor.Add); err != nil {
				return nil, wrap(err)
			}
		case KindDiff, KindSet:
			d, err := p.Diff.Slice(0, a-start, b-start)
			if err != nil {
				return nil, wrap(err)
			}
			dd, err := dev(d)
			if err != nil {
				return nil, wrap(err)
			}
			if p.Kind == KindSet {
				if _, err := be.Copy(wv, dd); err != nil {
					return nil, wrap(err)
				}
				continue
			}
			scaled, err := be.Alloc(tensor.F32, dd.Shape()...)
			if err != nil {
				return nil, wrap(err)
			}
			temps = append(temps, scaled)
			if _, err := be.Affine(scaled, dd, p.Factor(), 0); err != nil {
				return nil, wrap(err)
			}
			if _, err := be.Binary(wv, wv, scaled, tensor.Add); err != nil {
				return nil, wrap(err)
			}
		}
	}
	if base.DType() == tensor.F32 {
		return w, nil
	}
	r, err := be.Convert(w, base.DType())
	if err != nil {
		return nil, fmt.Errorf("lora: apply: rounding to %v: %w", base.DType(), err)
	}
	return r, nil
}

func shapeOf(t *tensor.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}
