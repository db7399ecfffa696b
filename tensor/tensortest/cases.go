package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dypegraph/dypegraph/tensor"
)

// Cases lists the conformance cases (one or more per Backend op).
func Cases() []Case {
	var cs []Case
	add := func(c Case) {
		if c.ATol == 0 && c.RTol == 0 {
			c.ATol, c.RTol = 1e-5, 1e-5
		}
		cs = append(cs, c)
	}
	// Layout and copies.
	add(Case{Name: "copy/strided-to-contiguous", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(padded(rng, tensor.F32, 3, 5, 7))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.Copy(nil, unpad(in[0]))
	}})
	add(Case{Name: "copy/transpose-bf16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.BF16, 4, 6, 5))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.Copy(nil, must(in[0].Permute(2, 0, 1)))
	}})
	add(Case{Name: "copy/broadcast-into-f16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 1, 5))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.F16, 3, 5)
		if err != nil {
			return nil, err
		}
		return be.Copy(dst, in[0])
	}})
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16, tensor.F8E4M3, tensor.F8E5M2} {
		add(Case{Name: "convert/" + dt.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(Rand(rng, tensor.F32, -300, 300, 257))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Convert(in[0], dt)
		}, ATol: 1e-30, RTol: 1e-30})
	}
	add(Case{Name: "concat/dim1", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 2, 3, 4), r(rng, tensor.BF16, 2, 5, 4), padded(rng, tensor.F32, 2, 1, 4))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.Concat(nil, 1, in[0], in[1], unpad(in[2]))
	}})
	add(Case{Name: "gather-rows/bf16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.BF16, 50, 33))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.GatherRows(nil, in[0], []int{3, 49, 0, 3, 17})
	}})

	// Linear algebra.
	type mm struct {
		as, bs []int
		dt     tensor.DType
		transB bool
	}
	for _, c := range []mm{
		{[]int{37, 65}, []int{65, 29}, tensor.F32, false},
		{[]int{2, 33, 300}, []int{70, 300}, tensor.BF16, true},
		{[]int{3, 17, 40}, []int{3, 40, 23}, tensor.F16, false},
		{[]int{2, 1, 9, 16}, []int{4, 11, 16}, tensor.BF16, true},
		{[]int{5, 31}, []int{19, 31}, tensor.F8E4M3, true},
	} {
		k := c.as[len(c.as)-1]
		add(Case{Name: fmt.Sprintf("matmul/%v%v-%v-transB=%v", c.as, c.bs, c.dt, c.transB), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, c.as...), r(rng, c.dt, c.bs...))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.MatMul(nil, in[0], in[1], c.transB)
		}, ATol: 1e-5, RTol: 1e-5 * math.Sqrt(float64(k))})
	}
	add(Case{Name: "linear/bias-bf16-strided-x", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(padded(rng, tensor.F32, 2, 7, 96), r(rng, tensor.BF16, 45, 96), r(rng, tensor.BF16, 45))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.Linear(nil, unpad(in[0]), in[1], in[2])
	}, ATol: 1e-5, RTol: 1e-4})
	type at struct {
		b, sq, skv, hq, hkv, d int
		causal, mask           bool
	}
	for _, c := range []at{
		{1, 77, 77, 4, 4, 64, false, false},
		{2, 13, 13, 8, 2, 32, true, false},
		{1, 40, 150, 2, 1, 16, false, true},
	} {
		add(Case{Name: fmt.Sprintf("attention/%+v", c), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			m := Rand(rng, tensor.F32, -2, 0, c.sq, c.skv)
			return ins(Rand(rng, tensor.F32, -2, 2, c.b, c.sq, c.hq, c.d), r(rng, tensor.F32, c.b, c.skv, c.hkv, c.d),
				r(rng, tensor.F32, c.b, c.skv, c.hkv, c.d), m)
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			opt := tensor.AttentionOptions{Causal: c.causal}
			if c.mask {
				opt.Mask = in[3]
			}
			return be.Attention(nil, in[0], in[1], in[2], opt)
		}, ATol: 1e-5, RTol: 1e-4})
	}
	type cv struct {
		n, cin, h, w, cout, k int
		p                     tensor.Conv2DParams
		dt                    tensor.DType
	}
	for _, c := range []cv{
		{1, 8, 13, 11, 16, 3, tensor.Pad(1, 1), tensor.BF16},
		{2, 4, 10, 12, 6, 3, tensor.Conv2DParams{StrideH: 2, StrideW: 2, PadBottom: 1, PadRight: 1}, tensor.F32},
		{1, 16, 9, 9, 8, 1, tensor.Conv2DParams{}, tensor.F32},
	} {
		add(Case{Name: fmt.Sprintf("conv2d/%dx%d-%v-%+v", c.k, c.k, c.dt, c.p), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, c.n, c.cin, c.h, c.w), r(rng, c.dt, c.cout, c.cin, c.k, c.k), r(rng, tensor.F32, c.cout))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Conv2D(nil, in[0], in[1], in[2], c.p)
		}, ATol: 1e-5, RTol: 1e-4})
	}

	// Normalisation.
	add(Case{Name: "rmsnorm/bf16-weight", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(Rand(rng, tensor.F32, -3, 3, 3, 5, 128), r(rng, tensor.BF16, 128))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.RMSNorm(nil, in[0], in[1], 1e-6)
	}})
	add(Case{Name: "rmsnorm/in-place-strided", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(padded(rng, tensor.F32, 7, 33))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x := unpad(in[0])
		return be.RMSNorm(x, x, nil, 1e-5)
	}})
	add(Case{Name: "layernorm/affine-and-plain", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(Rand(rng, tensor.F32, -3, 5, 4, 96), r(rng, tensor.F32, 96), r(rng, tensor.F32, 96))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		y, err := be.LayerNorm(nil, in[0], in[1], in[2], 1e-6)
		if err != nil {
			return nil, err
		}
		return be.LayerNorm(nil, y, nil, nil, 1e-6)
	}})
	add(Case{Name: "groupnorm/32-groups", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(Rand(rng, tensor.F32, -2, 3, 2, 64, 5, 7), r(rng, tensor.F32, 64), r(rng, tensor.F32, 64))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.GroupNorm(nil, in[0], in[1], in[2], 32, 1e-6)
	}})
	add(Case{Name: "softmax/rows", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(Rand(rng, tensor.F32, -20, 20, 6, 301))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.Softmax(nil, in[0])
	}, ATol: 1e-7, RTol: 1e-5})

	// Element-wise.
	for _, op := range []tensor.UnaryOp{tensor.Neg, tensor.Abs, tensor.Square, tensor.Sqrt, tensor.Rsqrt, tensor.Exp,
		tensor.Tanh, tensor.Sigmoid, tensor.SiLU, tensor.ReLU, tensor.GELUErf, tensor.GELUTanh} {
		add(Case{Name: "unary/" + op.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			lo := -6.0
			if op == tensor.Sqrt || op == tensor.Rsqrt {
				lo = 0.01
			}
			return ins(Rand(rng, tensor.F32, lo, 6, 3, 1031))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Unary(nil, in[0], op)
		}, ATol: 1e-6, RTol: 1e-5})
	}
	for _, op := range []tensor.BinaryOp{tensor.Add, tensor.Sub, tensor.Mul, tensor.Div, tensor.Maximum, tensor.Minimum} {
		add(Case{Name: "binary/" + op.String() + "-broadcast", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, 2, 9, 16), Rand(rng, tensor.BF16, 0.5, 2, 2, 1, 16))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Binary(nil, in[0], in[1], op)
		}, ATol: 1e-7, RTol: 1e-6})
	}
	add(Case{Name: "binary/in-place-add", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 5, 40), r(rng, tensor.F32, 40))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, err := be.Copy(nil, in[0])
		if err != nil {
			return nil, err
		}
		return be.Binary(x, x, in[1], tensor.Add)
	}})
	add(Case{Name: "affine-clamp", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(Rand(rng, tensor.F32, -3, 3, 4, 100))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		y, err := be.Affine(nil, in[0], 0.3611, 0.1159)
		if err != nil {
			return nil, err
		}
		return be.Clamp(y, y, -0.5, 0.75)
	}})
	for _, mode := range []tensor.RoPEMode{tensor.RoPEInterleaved, tensor.RoPEHalf} {
		add(Case{Name: "rope/" + mode.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			ang := Rand(rng, tensor.F32, 0, 6.28, 11, 16)
			a, _ := ang.Float32s()
			c, s := make([]float32, len(a)), make([]float32, len(a))
			for i, v := range a {
				c[i], s[i] = float32(math.Cos(float64(v))), float32(math.Sin(float64(v)))
			}
			ct, _ := tensor.FromFloat32(c, 11, 16)
			st, _ := tensor.FromFloat32(s, 11, 16)
			return ins(r(rng, tensor.F32, 2, 11, 3*4*32), ct, st)
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			q := must(must(in[0].Slice(2, 4*32, 2*4*32)).Reshape(2, 11, 4, 32)) // k of a fused qkv
			return be.RoPE(nil, q, in[1], in[2], mode)
		}})
	}
	for _, m := range []tensor.ResizeMethod{tensor.ResizeNearestExact, tensor.ResizeBilinear, tensor.ResizeBicubic, tensor.ResizeArea} {
		add(Case{Name: "resize/" + string(m), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, 1, 3, 13, 17))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			y, err := be.Resize(nil, in[0], 26, 9, m)
			if err != nil {
				return nil, err
			}
			return be.Resize(nil, y, 7, 30, m)
		}})
	}
	return cs
}
