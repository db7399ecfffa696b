package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// refAttention is softmax(q·kᵀ·scale + mask)·v in float64 on row-major [B,S,H,D] data.
// mask (may be nil) is [B,Hq,Sq,Skv] row-major (already broadcast).
func refAttention(q, k, v []float64, b, sq, skv, hq, hkv, d, dv int, scale float64, causal bool, mask []float64) []float64 {
	out := make([]float64, b*sq*hq*dv)
	g := hq / hkv
	s := make([]float64, skv)
	for bi := range b {
		for h := range hq {
			hk := h / g
			for i := range sq {
				mx := math.Inf(-1)
				for j := range skv {
					var dot float64
					for c := range d {
						dot += q[((bi*sq+i)*hq+h)*d+c] * k[((bi*skv+j)*hkv+hk)*d+c]
					}
					x := dot * scale
					if mask != nil {
						x += mask[((bi*hq+h)*sq+i)*skv+j]
					}
					if causal && j > i {
						x = math.Inf(-1)
					}
					s[j] = x
					mx = math.Max(mx, x)
				}
				if math.IsInf(mx, -1) {
					continue // fully masked row: zeros
				}
				var sum float64
				for j := range skv {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for c := range dv {
					var acc float64
					for j := range skv {
						acc += s[j] * v[((bi*skv+j)*hkv+hk)*dv+c]
					}
					out[((bi*sq+i)*hq+h)*dv+c] = acc / sum
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	type tc struct {
		name                   string
		b, sq, skv, hq, hkv, d int
		dv                     int
		dt                     tensor.DType
		causal                 bool
		mask                   []int // mask shape (broadcast to [B,Hq,Sq,Skv]); nil = none
		fused                  bool  // q, k, v are views into one fused qkv projection
		scale                  float32
	}
	tests := []tc{
		{name: "tiny", b: 1, sq: 1, skv: 1, hq: 1, hkv: 1, d: 4, dv: 4, dt: tensor.F32},
		{name: "odd sizes gqa", b: 2, sq: 37, skv: 53, hq: 6, hkv: 2, d: 16, dv: 24, dt: tensor.F32},
		{name: "several blocks", b: 1, sq: 150, skv: 300, hq: 2, hkv: 1, d: 32, dv: 32, dt: tensor.F32},
		{name: "causal qwen-like", b: 1, sq: 70, skv: 70, hq: 4, hkv: 2, d: 32, dv: 32, dt: tensor.F32, causal: true},
		{name: "causal long", b: 1, sq: 200, skv: 200, hq: 1, hkv: 1, d: 8, dv: 8, dt: tensor.F32, causal: true},
		{name: "mask 2d", b: 2, sq: 9, skv: 17, hq: 2, hkv: 2, d: 8, dv: 8, dt: tensor.F32, mask: []int{9, 17}},
		{name: "mask per batch", b: 2, sq: 9, skv: 140, hq: 3, hkv: 1, d: 8, dv: 5, dt: tensor.F32, mask: []int{2, 1, 9, 140}},
		{name: "bf16 inputs", b: 1, sq: 20, skv: 33, hq: 2, hkv: 2, d: 16, dv: 16, dt: tensor.BF16},
		{name: "fused qkv views", b: 2, sq: 65, skv: 65, hq: 3, hkv: 3, d: 16, dv: 16, dt: tensor.F32, fused: true},
		{name: "explicit scale", b: 1, sq: 5, skv: 7, hq: 1, hkv: 1, d: 3, dv: 2, dt: tensor.F32, scale: 0.7},
	}
	for _, be := range backends(t) {
		for _, c := range tests {
			t.Run(be.kern.name+"/"+c.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(5, uint64(c.sq*31+c.skv)))
				var q, k, v *tensor.Tensor
				if c.fused {
					qkv := randT(t, rng, c.dt, c.b, c.sq, 3*c.hq*c.d)
					q, _ = qkv.Slice(2, 0, c.hq*c.d)
					k, _ = qkv.Slice(2, c.hq*c.d, 2*c.hq*c.d)
					v, _ = qkv.Slice(2, 2*c.hq*c.d, 3*c.hq*c.d)
					var err error
					if q, err = q.Reshape(c.b, c.sq, c.hq, c.d); err != nil {
						t.Fatal(err)
					}
					k, _ = k.Reshape(c.b, c.sq, c.hq, c.d)
					v, _ = v.Reshape(c.b, c.sq, c.hq, c.d)
				} else {
					q = randT(t, rng, c.dt, c.b, c.sq, c.hq, c.d)
					k = randT(t, rng, c.dt, c.b, c.skv, c.hkv, c.d)
					v = randT(t, rng, c.dt, c.b, c.skv, c.hkv, c.dv)
				}
				// Larger logits make the softmax peaky, which exercises the online rescaling.
				qs, err := be.Affine(nil, q, 3, 0)
				if err != nil {
					t.Fatal(err)
				}
				opt := tensor.AttentionOptions{Causal: c.causal, Scale: c.scale}
				var maskFull []float64
				if c.mask != nil {
					m := randT(t, rng, tensor.F32, c.mask...)
					mv, _ := m.Float32s()
					for i := range mv {
						if i%7 == 3 {
							mv[i] = float32(math.Inf(-1))
						}
					}
					opt.Mask = m
					ex, err := m.Expand(c.b, c.hq, c.sq, c.skv)
					if err != nil {
						t.Fatal(err)
					}
					maskFull = vals(t, ex)
				}
				scale := float64(c.scale)
				if scale == 0 {
					scale = 1 / math.Sqrt(float64(c.d))
				}
				want := refAttention(vals(t, qs), vals(t, k), vals(t, v), c.b, c.sq, c.skv, c.hq, c.hkv, c.d, c.dv, scale, c.causal, maskFull)
				got, err := be.Attention(nil, qs, k, v, opt)
				if err != nil {
					t.Fatal(err)
				}
				if !got.ShapeIs(c.b, c.sq, c.hq, c.dv) {
					t.Fatalf("shape %v", got.Shape())
				}
				atol := 2e-6
				if c.dt == tensor.BF16 {
					atol = 1e-2 // the output is rounded to bf16
				}
				closeTo(t, "attention", vals(t, got), want, nil, atol, 1e-5)
			})
		}
	}
}

func TestAttentionHandComputed(t *testing.T) {
	be := newBackend(t)
	// One query, two keys with scores 0 and ln 3 → weights 1/4, 3/4.
	q, _ := tensor.FromFloat32([]float32{1}, 1, 1, 1, 1)
	k, _ := tensor.FromFloat32([]float32{0, float32(math.Log(3))}, 1, 2, 1, 1)
	v, _ := tensor.FromFloat32([]float32{4, 8}, 1, 2, 1, 1)
	got, err := be.Attention(nil, q, k, v, tensor.AttentionOptions{Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "hand", vals(t, got), []float64{7}, nil, 1e-6, 0)
	// Every key masked: zeros, not NaN.
	m, _ := tensor.FromFloat32([]float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, 1, 2)
	got, err = be.Attention(nil, q, k, v, tensor.AttentionOptions{Mask: m})
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "masked", vals(t, got), []float64{0}, nil, 0, 0)
}

func TestAttentionErrors(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(1, 1))
	q := randT(t, rng, tensor.F32, 1, 4, 6, 8)
	k := randT(t, rng, tensor.F32, 1, 5, 4, 8)
	k2 := randT(t, rng, tensor.F32, 1, 5, 2, 8)
	v2 := randT(t, rng, tensor.F32, 1, 5, 2, 8)
	kd := randT(t, rng, tensor.F32, 1, 5, 2, 7)
	tests := []struct {
		name    string
		q, k, v *tensor.Tensor
		opt     tensor.AttentionOptions
	}{
		{"heads not multiple", q, k, k, tensor.AttentionOptions{}},
		{"head dim", q, kd, v2, tensor.AttentionOptions{}},
		{"rank", randT(t, rng, tensor.F32, 4, 6, 8), k2, v2, tensor.AttentionOptions{}},
		{"v length", q, k2, randT(t, rng, tensor.F32, 1, 6, 2, 8), tensor.AttentionOptions{}},
		{"batch", q, randT(t, rng, tensor.F32, 2, 5, 2, 8), randT(t, rng, tensor.F32, 2, 5, 2, 8), tensor.AttentionOptions{}},
		{"mask shape", q, k2, v2, tensor.AttentionOptions{Mask: randT(t, rng, tensor.F32, 4, 4)}},
	}
	for _, tc := range tests {
		if _, err := be.Attention(nil, tc.q, tc.k, tc.v, tc.opt); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestExpf(t *testing.T) {
	maxRel := 0.0
	for x := -87.0; x < 88.7; x += 0.00731 {
		got := float64(expf(float32(x)))
		want := math.Exp(float64(float32(x)))
		if rel := math.Abs(got-want) / want; rel > maxRel {
			maxRel = rel
		}
	}
	if maxRel > 3e-7 {
		t.Fatalf("expf max relative error %g", maxRel)
	}
	if expf(-100) != 0 || !math.IsInf(float64(expf(100)), 1) || expf(0) != 1 || !math.IsNaN(float64(expf(float32(math.NaN())))) {
		t.Fatal("expf special values wrong")
	}
	s := []float32{0, -1, 2, float32(math.Inf(-1))}
	sum := expShiftSum(s, 2)
	want := math.Exp(-2) + math.Exp(-3) + 1
	if math.Abs(float64(sum)-want) > 1e-6 || s[3] != 0 || s[2] != 1 {
		t.Fatalf("expShiftSum = %v %v", sum, s)
	}
	s = []float32{1, -3, 2, 0.5, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -2}
	if m := scaleMax(s, 0.5); m != 3.5 || s[1] != -1.5 || s[17] != -1 {
		t.Fatalf("scaleMax = %v %v", m, s)
	}
}

// TestSoftmaxKernels checks the vector exp/max kernels (and their Go tails) against float64.
func TestSoftmaxKernels(t *testing.T) {
	for _, impl := range softmaxImpls() {
		t.Run(impl.name, func(t *testing.T) { testSoftmaxKernels(t, impl.scaleMax, impl.expShiftSum) })
	}
}

func testSoftmaxKernels(t *testing.T, scaleMax, expShiftSum func([]float32, float32) float32) {
	rng := rand.New(rand.NewPCG(13, 1))
	ninf := float32(math.Inf(-1))
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 37, 128} {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.Float64()*-95 + 3)
			if i%11 == 5 {
				s[i] = ninf
			}
		}
		orig := append([]float32(nil), s...)
		const m = 3.5
		sum := expShiftSum(s, m)
		var want float64
		for i, x := range orig {
			d := float64(x - m) // the kernels subtract in float32, as torch does
			e := math.Exp(d)
			if d < expMin {
				e = 0
			}
			want += e
			if rel := math.Abs(float64(s[i])-e) / math.Max(e, 1e-30); rel > 3e-7 && !(e == 0 && s[i] == 0) {
				t.Fatalf("n=%d: exp(%g) = %g, want %g", n, d, s[i], e)
			}
		}
		if math.Abs(float64(sum)-want) > 1e-6*math.Max(want, 1) {
			t.Fatalf("n=%d: sum %g, want %g", n, sum, want)
		}
		copy(s, orig)
		mx := scaleMax(s, 0.5)
		wm := ninf
		for i, x := range orig {
			wm = max(wm, x*0.5)
			if s[i] != x*0.5 {
				t.Fatalf("n=%d: scaled %g, want %g", n, s[i], x*0.5)
			}
		}
		if mx != wm {
			t.Fatalf("n=%d: max %g, want %g", n, mx, wm)
		}
		if n > 0 {
			copy(s, orig)
			s[n/2] = float32(math.NaN())
			if mx := scaleMax(s, 1); !math.IsNaN(float64(mx)) {
				t.Fatalf("n=%d: max with a NaN = %g", n, mx)
			}
			s[n/2] = 0
			if sum := expShiftSum(append(s[:0:0], float32(math.NaN())), 0); !math.IsNaN(float64(sum)) {
				t.Fatalf("exp of NaN summed to %g", sum)
			}
			nan9 := make([]float32, 33)
			nan9[19] = float32(math.NaN())
			if sum := expShiftSum(nan9, 0); !math.IsNaN(float64(sum)) {
				t.Fatalf("vector exp of NaN summed to %g", sum)
			}
		}
	}
}
