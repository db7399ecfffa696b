package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/tensortest"
)

// extraCases go beyond tensortest.Cases: every dtype through the conversions (bit-exact),
// special values through the element-wise math, the kernel variants of attention, the
// layouts and dtypes the GEMM engines must normalise, and the fallbacks.
func extraCases() []tensortest.Case {
	var cs []tensortest.Case
	add := func(c tensortest.Case) { cs = append(cs, c) }
	exact := 1e-30

	// Conversions from float32, special values included, bit-exact (NaN compared as NaN).
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16, tensor.F8E4M3, tensor.F8E5M2, tensor.F32} {
		add(tensortest.Case{Name: "convert-specials/" + dt.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(specials(rng, 40))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Convert(in[0], dt)
		}, ATol: exact, RTol: exact})
	}
	// Widening of every 8-bit pattern and of a sweep of 16-bit ones.
	for _, dt := range []tensor.DType{tensor.F8E4M3, tensor.F8E5M2, tensor.BF16, tensor.F16} {
		add(tensortest.Case{Name: "widen-all/" + dt.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			n := 256
			if dt.Size() == 2 {
				n = 65536
			}
			b := make([]byte, n*dt.Size())
			for i := range n {
				if dt.Size() == 1 {
					b[i] = byte(i)
				} else {
					b[2*i], b[2*i+1] = byte(i), byte(i>>8)
				}
			}
			t, err := tensor.FromBytes(b, dt, n)
			if err != nil {
				panic(err)
			}
			return ins(t)
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Convert(in[0], tensor.F32)
		}, ATol: exact, RTol: exact})
	}
	add(tensortest.Case{Name: "copy/f8-broadcast-into-transposed-f16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(tensortest.Rand(rng, tensor.F8E4M3, -3, 3, 1, 7))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.F16, 7, 5)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Transpose(0, 1)
		return be.Copy(dt, in[0])
	}, ATol: exact, RTol: exact})
	add(tensortest.Case{Name: "copy/overlapping-shift", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 40))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, err := be.Copy(nil, in[0])
		if err != nil {
			return nil, err
		}
		a, _ := x.Slice(0, 0, 30)
		b, _ := x.Slice(0, 5, 35)
		if _, err := be.Copy(b, a); err != nil {
			return nil, err
		}
		return x, nil
	}})

	// Element-wise math over special and large values.
	for _, op := range []tensor.UnaryOp{tensor.Neg, tensor.Abs, tensor.Square, tensor.Sqrt, tensor.Rsqrt, tensor.Exp,
		tensor.Tanh, tensor.Sigmoid, tensor.SiLU, tensor.ReLU, tensor.GELUErf, tensor.GELUTanh} {
		add(tensortest.Case{Name: "unary-wide/" + op.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(specials(rng, 300))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Unary(nil, in[0], op)
			// ATol: GELU's tail for x < -8.3 is about 1e-20 here and exactly -0 on the CPU,
			// whose 1+erf(x/√2) cancels to 0.
		}, ATol: 1e-15, RTol: 2e-6})
	}
	add(tensortest.Case{Name: "unary/bf16-broadcast-input", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.BF16, 1, 33))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, _ := in[0].Expand(4, 33)
		return be.Unary(nil, x, tensor.SiLU)
	}, ATol: 1e-6, RTol: 8e-3})
	for _, op := range []tensor.BinaryOp{tensor.Add, tensor.Sub, tensor.Mul, tensor.Div, tensor.Maximum, tensor.Minimum} {
		add(tensortest.Case{Name: "binary-specials/" + op.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			a := specials(rng, 16)
			b := specials(rand.New(rand.NewPCG(9, 9)), 16)
			a2, _ := a.Reshape(a.NumElements(), 1)
			b2, _ := b.Reshape(1, b.NumElements())
			return ins(a2, b2)
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Binary(nil, in[0], in[1], op)
		}, ATol: exact, RTol: exact})
	}
	add(tensortest.Case{Name: "binary/f8-into-strided-bf16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F8E5M2, 6, 4), r(rng, tensor.F32, 4))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.BF16, 4, 6)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Transpose(0, 1)
		return be.Binary(dt, in[0], in[1], tensor.Mul)
	}, ATol: exact, RTol: exact})
	add(tensortest.Case{Name: "affine-clamp/specials-bf16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(specials(rng, 50))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		y, err := be.Affine(nil, in[0], -1.7, 0.25)
		if err != nil {
			return nil, err
		}
		z, err := be.Convert(y, tensor.BF16)
		if err != nil {
			return nil, err
		}
		return be.Clamp(z, z, -2, 3)
	}, ATol: exact, RTol: exact})

	// Layout ops.
	add(tensortest.Case{Name: "concat/last-dim-bf16-into-strided", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.BF16, 3, 4), r(rng, tensor.F16, 3, 2), r(rng, tensor.F32, 3, 5))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.F32, 11, 3)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Transpose(0, 1)
		return be.Concat(dt, -1, in...)
	}, ATol: exact, RTol: exact})
	add(tensortest.Case{Name: "gather-rows/f8-into-strided", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F8E4M3, 9, 6))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.F32, 6, 4)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Transpose(0, 1)
		return be.GatherRows(dt, in[0], []int{8, 0, 0, 5})
	}, ATol: exact, RTol: exact})

	// Matrix products: dtypes and layouts.
	type mm struct {
		name   string
		as, bs []int
		adt    tensor.DType
		bdt    tensor.DType
		transB bool
		permA  bool // a given as a transposed view
		rtol   float64
	}
	for _, c := range []mm{
		{"f16xf16", []int{19, 40}, []int{40, 9}, tensor.F16, tensor.F16, false, false, 2e-3},
		{"bf16xbf16-transB", []int{2, 17, 64}, []int{33, 64}, tensor.BF16, tensor.BF16, true, false, 8e-3},
		{"f32xf16-transB", []int{13, 30}, []int{7, 30}, tensor.F32, tensor.F16, true, false, 1e-4},
		{"bf16xf32", []int{5, 30}, []int{30, 11}, tensor.BF16, tensor.F32, false, false, 8e-3},
		{"f32xe5m2", []int{6, 20}, []int{20, 3}, tensor.F32, tensor.F8E5M2, false, false, 1e-4},
		{"f32-batched-broadcast", []int{2, 1, 5, 7}, []int{3, 7, 4}, tensor.F32, tensor.F32, false, false, 1e-4},
		{"f32-permuted-a", []int{3, 9, 6}, []int{3, 6, 5}, tensor.F32, tensor.BF16, false, true, 1e-4},
		{"k1", []int{4, 1}, []int{1, 3}, tensor.F32, tensor.F32, false, false, 1e-5},
		{"m1-n1", []int{1, 50}, []int{50, 1}, tensor.F32, tensor.BF16, false, false, 1e-4},
		{"long-k-split", []int{3, 1000}, []int{1000, 5}, tensor.F32, tensor.BF16, false, false, 1e-4},
	} {
		add(tensortest.Case{Name: "matmul/" + c.name, Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			as := c.as
			if c.permA {
				as = append(append([]int{}, as[:len(as)-2]...), as[len(as)-1], as[len(as)-2])
			}
			return ins(r(rng, c.adt, as...), r(rng, c.bdt, c.bs...))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			a := in[0]
			if c.permA {
				a, _ = a.Transpose(-1, -2)
			}
			return be.MatMul(nil, a, in[1], c.transB)
		}, ATol: 1e-5, RTol: c.rtol})
	}
	add(tensortest.Case{Name: "matmul/into-transposed-dst", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 6, 10), r(rng, tensor.BF16, 10, 4))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.F32, 4, 6)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Transpose(0, 1)
		return be.MatMul(dt, in[0], in[1], false)
	}, ATol: 1e-5, RTol: 1e-4})
	type lin struct {
		name    string
		xs      []int
		xdt     tensor.DType
		wdt     tensor.DType
		bias    tensor.DType // 0: none
		permute bool
		rtol    float64
	}
	for _, c := range []lin{
		{"bf16-x-bf16-w-f32-bias", []int{2, 9, 48}, tensor.BF16, tensor.BF16, tensor.F32, false, 8e-3},
		{"f16-x-f16-w", []int{7, 24}, tensor.F16, tensor.F16, 0, false, 2e-3},
		{"f32-x-e4m3-w-bf16-bias", []int{5, 32}, tensor.F32, tensor.F8E4M3, tensor.BF16, false, 1e-4},
		{"permuted-x", []int{4, 3, 20}, tensor.F32, tensor.BF16, tensor.F32, true, 1e-4},
		{"f32-x-f32-w", []int{11, 17}, tensor.F32, tensor.F32, tensor.F32, false, 1e-4},
	} {
		add(tensortest.Case{Name: "linear/" + c.name, Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			k := c.xs[len(c.xs)-1]
			xs := c.xs
			if c.permute {
				xs = []int{c.xs[1], c.xs[0], k}
			}
			t := ins(r(rng, c.xdt, xs...), r(rng, c.wdt, 13, k))
			if c.bias != 0 {
				t = append(t, r(rng, c.bias, 13))
			}
			return t
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			x := in[0]
			if c.permute {
				x, _ = x.Transpose(0, 1)
			}
			var b *tensor.Tensor
			if len(in) > 2 {
				b = in[2]
			}
			return be.Linear(nil, x, in[1], b)
		}, ATol: 1e-5, RTol: c.rtol})
	}
	add(tensortest.Case{Name: "linear/into-strided-dst", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 2, 3, 16), r(rng, tensor.BF16, 5, 16), r(rng, tensor.F32, 5))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		dst, err := be.Zeros(tensor.BF16, 3, 2, 5)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Transpose(0, 1)
		return be.Linear(dt, in[0], in[1], in[2])
	}, ATol: 1e-5, RTol: 8e-3})

	// Attention variants (the three fp32 kernels, GQA, masks, causal with Sq < Skv, strided
	// inputs, bf16 inputs, and the CPU fallback for a 600-wide value head).
	type at struct {
		name                 string
		b, sq, skv, hq, hkv  int
		d, dv                int
		causal, mask, masked bool
		dt                   tensor.DType
		rtol                 float64
		atol                 float64
	}
	for _, c := range []at{
		{"d128-gqa", 1, 70, 70, 6, 2, 128, 128, false, false, false, tensor.F32, 1e-4, 1e-5},
		{"d64-dv32-causal-short-q", 2, 9, 40, 2, 1, 64, 32, true, false, false, tensor.F32, 1e-4, 1e-5},
		{"d256", 1, 20, 45, 2, 2, 256, 256, false, true, false, tensor.F32, 1e-4, 1e-5},
		{"d512-single-head", 1, 37, 33, 1, 1, 512, 512, false, false, false, tensor.F32, 1e-4, 1e-5},
		{"masked-rows", 1, 12, 20, 2, 1, 32, 32, false, true, true, tensor.F32, 1e-4, 1e-5},
		{"dv600-fallback", 1, 5, 7, 1, 1, 16, 600, false, false, false, tensor.F32, 1e-4, 1e-5},
		// Tensor cores: P is rounded to bf16 before P·V (as FlashAttention), and the result
		// to bf16, so the error is a few bf16 steps of the typical |output| (~0.2).
		{"bf16-mma-d64-causal", 1, 33, 50, 4, 4, 64, 64, true, false, false, tensor.BF16, 1e-2, 2e-3},
		{"bf16-mma-d128-gqa-mask", 2, 70, 131, 6, 3, 128, 128, false, true, false, tensor.BF16, 1e-2, 2e-3},
		{"bf16-mma-masked-rows", 1, 12, 20, 2, 1, 64, 64, false, true, true, tensor.BF16, 1e-2, 2e-3},
		{"bf16-d32-simt", 1, 10, 20, 2, 1, 32, 32, true, false, false, tensor.BF16, 8e-3, 1e-5},
	} {
		add(tensortest.Case{Name: "attention/" + c.name, Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			m := tensortest.Rand(rng, tensor.BF16, -2, 0, c.b, 1, c.sq, c.skv)
			if c.masked {
				v, _ := m.ToFloat32()
				for i := range v {
					if (i/c.skv)%3 == 1 || i%4 == 0 {
						v[i] = float32(math.Inf(-1))
					}
				}
				m, _ = tensor.FromFloat32As(tensor.BF16, v, c.b, 1, c.sq, c.skv)
			}
			return ins(tensortest.Rand(rng, c.dt, -2, 2, c.b, c.sq, c.hq, c.d), r(rng, c.dt, c.b, c.skv, c.hkv, c.d),
				r(rng, c.dt, c.b, c.skv, c.hkv, c.dv), m)
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			opt := tensor.AttentionOptions{Causal: c.causal}
			if c.mask {
				opt.Mask = in[3]
			}
			return be.Attention(nil, in[0], in[1], in[2], opt)
		}, ATol: c.atol, RTol: c.rtol})
	}
	add(tensortest.Case{Name: "attention/fused-qkv-views-into-strided-dst", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 1, 21, 3*2*32))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		qkv, _ := in[0].Reshape(1, 21, 3, 2, 32)
		pick := func(i int) *tensor.Tensor {
			v, _ := qkv.Slice(2, i, i+1)
			v, _ = v.Reshape(1, 21, 2, 32)
			return v
		}
		dst, err := be.Zeros(tensor.F32, 1, 2, 21, 32)
		if err != nil {
			return nil, err
		}
		dt, _ := dst.Permute(0, 2, 1, 3)
		return be.Attention(dt, pick(0), pick(1), pick(2), tensor.AttentionOptions{Scale: 0.3})
	}, ATol: 1e-5, RTol: 1e-4})

	// Convolutions.
	type cv struct {
		name                  string
		n, cin, h, w, cout, k int
		p                     tensor.Conv2DParams
		xdt, wdt              tensor.DType
		bias, permX, strDst   bool
		rtol                  float64
	}
	for _, c := range []cv{
		{"1x1-direct-bf16w", 2, 8, 5, 7, 6, 1, tensor.Conv2DParams{}, tensor.F32, tensor.BF16, true, false, false, 1e-4},
		{"3x3-s2-asym-bf16x", 1, 3, 9, 10, 4, 3, tensor.Conv2DParams{StrideH: 2, StrideW: 1, PadTop: 1, PadLeft: 2, PadRight: 1}, tensor.BF16, tensor.BF16, true, false, false, 8e-3},
		{"permuted-x-strided-dst", 1, 4, 6, 6, 5, 3, tensor.Pad(1, 1), tensor.F32, tensor.F32, false, true, true, 1e-4},
		{"f16-weights-no-bias", 2, 5, 4, 4, 3, 2, tensor.Conv2DParams{}, tensor.F32, tensor.F16, false, false, false, 1e-4},
	} {
		add(tensortest.Case{Name: "conv2d/" + c.name, Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			xs := []int{c.n, c.cin, c.h, c.w}
			if c.permX {
				xs = []int{c.n, c.h, c.w, c.cin}
			}
			return ins(r(rng, c.xdt, xs...), r(rng, c.wdt, c.cout, c.cin, c.k, c.k), r(rng, tensor.F32, c.cout))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			x := in[0]
			if c.permX {
				x, _ = x.Permute(0, 3, 1, 2)
			}
			var b *tensor.Tensor
			if c.bias {
				b = in[2]
			}
			var dst *tensor.Tensor
			if c.strDst {
				sh, sw := max(c.p.StrideH, 1), max(c.p.StrideW, 1)
				oh := (c.h+c.p.PadTop+c.p.PadBottom-c.k)/sh + 1
				ow := (c.w+c.p.PadLeft+c.p.PadRight-c.k)/sw + 1
				d, err := be.Zeros(tensor.F32, c.n, oh, ow, c.cout)
				if err != nil {
					return nil, err
				}
				dst, _ = d.Permute(0, 3, 1, 2)
			}
			return be.Conv2D(dst, x, in[1], b, c.p)
		}, ATol: 1e-5, RTol: c.rtol})
	}

	// Norms and softmax.
	add(tensortest.Case{Name: "layernorm/bf16-x-bf16-w-no-bias", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(tensortest.Rand(rng, tensor.BF16, -4, 6, 5, 70), r(rng, tensor.BF16, 70))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.LayerNorm(nil, in[0], in[1], nil, 1e-5)
	}, ATol: 1e-5, RTol: 8e-3})
	add(tensortest.Case{Name: "rmsnorm/broadcast-x-strided-w", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 1, 40), r(rng, tensor.F32, 40, 2))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, _ := in[0].Expand(3, 40)
		w, _ := in[1].Slice(1, 1, 2)
		w, _ = w.Reshape(40)
		return be.RMSNorm(nil, x, w, 1e-6)
	}})
	add(tensortest.Case{Name: "softmax/inf-rows-strided-bf16", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		v := make([]float32, 6*9)
		for i := range v {
			v[i] = float32(rng.Float64()*60 - 30)
			if i%9 == 0 || i/9 == 2 {
				v[i] = float32(math.Inf(-1))
			}
		}
		t, _ := tensor.FromFloat32As(tensor.BF16, v, 6, 9)
		return ins(t)
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, _ := in[0].Transpose(0, 1)
		return be.Softmax(nil, x)
	}, ATol: 1e-6, RTol: 8e-3})
	add(tensortest.Case{Name: "groupnorm/permuted-3d-no-affine", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(tensortest.Rand(rng, tensor.F32, -3, 5, 2, 4, 3, 5, 6))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, _ := in[0].Permute(0, 4, 1, 2, 3) // [2, 6, 4, 3, 5]
		return be.GroupNorm(nil, x, nil, nil, 3, 1e-5)
	}, ATol: 1e-5, RTol: 1e-5})
	add(tensortest.Case{Name: "groupnorm/in-place-bf16-w", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(tensortest.Rand(rng, tensor.F32, -3, 5, 1, 8, 33), r(rng, tensor.BF16, 8), r(rng, tensor.BF16, 8))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x, err := be.Copy(nil, in[0])
		if err != nil {
			return nil, err
		}
		return be.GroupNorm(x, x, in[1], in[2], 1, 1e-6)
	}, ATol: 1e-5, RTol: 1e-5})

	// RoPE with per-batch bf16 tables and in-place bf16 x.
	for _, mode := range []tensor.RoPEMode{tensor.RoPEInterleaved, tensor.RoPEHalf} {
		add(tensortest.Case{Name: "rope/batch-tables-in-place-bf16-" + mode.String(), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.BF16, 2, 5, 3, 8), r(rng, tensor.BF16, 2, 5, 4), r(rng, tensor.BF16, 2, 5, 4))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			x, err := be.Copy(nil, in[0])
			if err != nil {
				return nil, err
			}
			return be.RoPE(x, x, in[1], in[2], mode)
		}, ATol: 1e-6, RTol: 8e-3})
	}

	// Resize: bf16 and strided inputs into strided outputs; lanczos through the fallback.
	for _, m := range []tensor.ResizeMethod{tensor.ResizeNearestExact, tensor.ResizeBilinear, tensor.ResizeBicubic, tensor.ResizeArea, tensor.ResizeLanczos} {
		add(tensortest.Case{Name: "resize/strided-bf16-" + string(m), Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(tensortest.Rand(rng, tensor.BF16, 0, 1, 2, 11, 7, 3))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			x, _ := in[0].Permute(0, 3, 1, 2) // [2, 3, 11, 7]
			d, err := be.Zeros(tensor.F32, 2, 5, 16, 3)
			if err != nil {
				return nil, err
			}
			dst, _ := d.Permute(0, 3, 2, 1) // [2, 3, 16, 5]
			return be.Resize(dst, x, 16, 5, m)
		}, ATol: 1e-6, RTol: 1e-5})
	}
	return cs
}

func ins(ts ...*tensor.Tensor) []*tensor.Tensor { return ts }

func r(rng *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	return tensortest.Rand(rng, dt, -1, 1, shape...)
}

// specials returns n random values in a wide range followed by the edge cases of every
// dtype: signed zeros, infinities, NaN, subnormals, rounding ties and overflow thresholds.
func specials(rng *rand.Rand, n int) *tensor.Tensor {
	v := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		1e-45, -1e-45, 1e-40, 6e-8, 3e-8, 1e-30, 5.96e-8, 65504, 65520, 65519.99, 70000, 448, 449, 464, 480,
		57344, 61440, 1e38, -3.4e38, 1.00390625, 1.01171875, 2.5, -0.0009765625, 0.5, 88.7, 89, -104, -745, 20, -20,
		9.5, -9.5, 0.001, -0.001, 1e-8, 3, -3, 100, -100, 1000, -1000}
	for range n {
		e := rng.Float64()*40 - 20
		v = append(v, float32(math.Copysign(math.Exp(e), rng.Float64()-0.5)))
	}
	t, err := tensor.FromFloat32(v, len(v))
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return t
}
