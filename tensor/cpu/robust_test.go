package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// TestNoPanics feeds every op random, mostly invalid, shapes (empty dimensions and scalars
// included): each call must return a result or an error, never panic.
func TestNoPanics(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(99, 7))
	randShape := func() []int {
		s := make([]int, rng.IntN(5))
		for i := range s {
			s[i] = rng.IntN(4)
		}
		return s
	}
	dtypes := []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, tensor.F8E4M3}
	rt := func() *tensor.Tensor {
		if rng.IntN(12) == 0 {
			return nil
		}
		return randT(t, rng, dtypes[rng.IntN(len(dtypes))], randShape()...)
	}
	ops := []func(a, b, c, d *tensor.Tensor) error{
		func(a, b, c, d *tensor.Tensor) error { _, err := be.MatMul(d, a, b, rng.IntN(2) == 0); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Linear(d, a, b, c); return err },
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.Attention(d, a, b, c, tensor.AttentionOptions{Causal: rng.IntN(2) == 0})
			return err
		},
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.Attention(nil, a, b, c, tensor.AttentionOptions{Mask: d})
			return err
		},
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.Conv2D(d, a, b, c, tensor.Pad(rng.IntN(3), rng.IntN(3)))
			return err
		},
		func(a, b, c, d *tensor.Tensor) error { _, err := be.RMSNorm(d, a, b, 1e-6); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.LayerNorm(d, a, b, c, 1e-6); return err },
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.GroupNorm(d, a, b, c, rng.IntN(4), 1e-6)
			return err
		},
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Softmax(d, a); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Unary(d, a, tensor.SiLU); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Binary(d, a, b, tensor.Mul); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Affine(d, a, 2, 1); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Clamp(d, a, -1, 1); return err },
		func(a, b, c, d *tensor.Tensor) error { _, err := be.RoPE(d, a, b, c, tensor.RoPEHalf); return err },
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.Resize(d, a, rng.IntN(4), rng.IntN(4), tensor.ResizeBilinear)
			return err
		},
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Concat(d, rng.IntN(5)-2, a, b); return err },
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.GatherRows(d, a, []int{rng.IntN(4) - 1, rng.IntN(3)})
			return err
		},
		func(a, b, c, d *tensor.Tensor) error { _, err := be.Copy(d, a); return err },
		func(a, b, c, d *tensor.Tensor) error {
			_, err := be.Convert(a, dtypes[rng.IntN(len(dtypes))])
			return err
		},
		func(a, b, c, d *tensor.Tensor) error {
			if a == nil {
				return nil
			}
			return be.Read(make([]float32, rng.IntN(8)), a)
		},
	}
	for i := range 4000 {
		op := i % len(ops)
		a, b, c, d := rt(), rt(), rt(), rt()
		if rng.IntN(3) > 0 {
			d = nil
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("op %d panicked on %v %v %v %v: %v", op, a, b, c, d, r)
				}
			}()
			_ = ops[op](a, b, c, d)
		}()
	}
}

// TestEmptyAndScalar checks the degenerate shapes that are valid.
func TestEmptyAndScalar(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(1, 1))
	empty := randT(t, rng, tensor.F32, 0, 5)
	tests := []struct {
		name  string
		run   func() (*tensor.Tensor, error)
		shape []int
	}{
		{"unary empty", func() (*tensor.Tensor, error) { return be.Unary(nil, empty, tensor.Exp) }, []int{0, 5}},
		{"matmul empty", func() (*tensor.Tensor, error) { return be.MatMul(nil, empty, randT(t, rng, tensor.F32, 5, 3), false) }, []int{0, 3}},
		{"rmsnorm empty", func() (*tensor.Tensor, error) { return be.RMSNorm(nil, empty, nil, 1e-6) }, []int{0, 5}},
		{"scalar unary", func() (*tensor.Tensor, error) { return be.Unary(nil, randT(t, rng, tensor.F32), tensor.Neg) }, []int{}},
		{"concat with empty", func() (*tensor.Tensor, error) { return be.Concat(nil, 0, empty, randT(t, rng, tensor.F32, 2, 5)) }, []int{2, 5}},
		{"attention no queries", func() (*tensor.Tensor, error) {
			return be.Attention(nil, randT(t, rng, tensor.F32, 1, 0, 2, 4), randT(t, rng, tensor.F32, 1, 3, 2, 4), randT(t, rng, tensor.F32, 1, 3, 2, 4), tensor.AttentionOptions{})
		}, []int{1, 0, 2, 4}},
		{"attention no keys", func() (*tensor.Tensor, error) {
			return be.Attention(nil, randT(t, rng, tensor.F32, 1, 2, 2, 4), randT(t, rng, tensor.F32, 1, 0, 2, 4), randT(t, rng, tensor.F32, 1, 0, 2, 4), tensor.AttentionOptions{})
		}, []int{1, 2, 2, 4}},
		{"groupnorm empty batch", func() (*tensor.Tensor, error) {
			return be.GroupNorm(nil, randT(t, rng, tensor.F32, 0, 4, 3), nil, nil, 2, 1e-6)
		}, []int{0, 4, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.run()
			if err != nil {
				t.Fatal(err)
			}
			if !got.ShapeIs(tc.shape...) {
				t.Fatalf("shape %v, want %v", got.Shape(), tc.shape)
			}
			if fmt.Sprint(tc.name) == "attention no keys" {
				for _, v := range vals(t, got) {
					if v != 0 {
						t.Fatalf("attention over no keys gave %v, want zeros", v)
					}
				}
			}
		})
	}
}
