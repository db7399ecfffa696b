package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// refMatMul multiplies row-major a [batch.., m, k] by b ([bb.., k, n], or [bb.., n, k] when
// transB) in float64 with numpy broadcasting of batch dims; it also returns Σ|a||b| per output
// element for the tolerance.
func refMatMul(a []float64, as []int, b []float64, bs []int, transB bool) (out, scale []float64, shape []int) {
	m, k := as[len(as)-2], as[len(as)-1]
	n := bs[len(bs)-1]
	if transB {
		n = bs[len(bs)-2]
	}
	aB, bB := as[:len(as)-2], bs[:len(bs)-2]
	batch, _ := tensor.BroadcastShapes(aB, bB)
	nb := 1
	for _, d := range batch {
		nb *= d
	}
	out = make([]float64, nb*m*n)
	scale = make([]float64, nb*m*n)
	aStr, bStr := strides(aB), strides(bB)
	for bi := range nb {
		// batch offsets with broadcasting
		offA, offB, r := 0, 0, bi
		for d := len(batch) - 1; d >= 0; d-- {
			i := r % batch[d]
			r /= batch[d]
			if j := d - (len(batch) - len(aB)); j >= 0 && aB[j] != 1 {
				offA += i * aStr[j]
			}
			if j := d - (len(batch) - len(bB)); j >= 0 && bB[j] != 1 {
				offB += i * bStr[j]
			}
		}
		offA *= m * k
		offB *= k * n
		for i := range m {
			for j := range n {
				var s, sa float64
				for p := range k {
					x := a[offA+i*k+p]
					var y float64
					if transB {
						y = b[offB+j*k+p]
					} else {
						y = b[offB+p*n+j]
					}
					s += x * y
					sa += math.Abs(x * y)
				}
				out[bi*m*n+i*n+j] = s
				scale[bi*m*n+i*n+j] = sa
			}
		}
	}
	return out, scale, append(append([]int(nil), batch...), m, n)
}

func TestMatMul(t *testing.T) {
	tests := []struct {
		name              string
		as, bs            []int
		bdt               tensor.DType
		transB            bool
		stridedA, transA  bool
		stridedDst, bfDst bool
	}{
		{name: "1x1x1", as: []int{1, 1}, bs: []int{1, 1}, bdt: tensor.F32},
		{name: "odd bf16 transB", as: []int{7, 13}, bs: []int{5, 13}, bdt: tensor.BF16, transB: true},
		{name: "odd f16", as: []int{33, 65}, bs: []int{65, 17}, bdt: tensor.F16},
		{name: "two K blocks", as: []int{13, 600}, bs: []int{600, 37}, bdt: tensor.F32},
		{name: "two N blocks bf16", as: []int{3, 20}, bs: []int{4100, 20}, bdt: tensor.BF16, transB: true},
		{name: "f8 weights", as: []int{70, 31}, bs: []int{70, 31}, bdt: tensor.F8E4M3, transB: true},
		{name: "e5m2 weights", as: []int{9, 31}, bs: []int{31, 11}, bdt: tensor.F8E5M2},
		{name: "many tiles", as: []int{150, 40}, bs: []int{40, 130}, bdt: tensor.F32},
		{name: "batched broadcast", as: []int{2, 3, 5, 7}, bs: []int{3, 7, 4}, bdt: tensor.F32},
		{name: "batched b broadcast dim", as: []int{2, 1, 5, 7}, bs: []int{1, 3, 4, 7}, bdt: tensor.BF16, transB: true},
		{name: "shared b merged rows", as: []int{2, 5, 7}, bs: []int{7, 9}, bdt: tensor.BF16},
		{name: "strided a", as: []int{2, 6, 19}, bs: []int{19, 10}, bdt: tensor.F32, stridedA: true},
		{name: "transposed a", as: []int{2, 6, 19}, bs: []int{10, 19}, bdt: tensor.F16, transB: true, transA: true},
		{name: "strided dst", as: []int{4, 9}, bs: []int{9, 6}, bdt: tensor.F32, stridedDst: true},
		{name: "bf16 dst", as: []int{4, 9}, bs: []int{9, 6}, bdt: tensor.BF16, bfDst: true},
		{name: "k zero", as: []int{3, 0}, bs: []int{0, 4}, bdt: tensor.F32},
	}
	for _, be := range backends(t) {
		for _, tc := range tests {
			t.Run(be.kern.name+"/"+tc.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
				a := randT(t, rng, tensor.F32, tc.as...)
				b := randT(t, rng, tc.bdt, tc.bs...)
				want, scale, shape := refMatMul(vals(t, a), tc.as, vals(t, b), tc.bs, tc.transB)
				if tc.stridedA || tc.transA {
					a = strided(t, be, a, tc.transA)
				}
				var dst *tensor.Tensor
				switch {
				case tc.stridedDst:
					z, _ := tensor.Zeros(tensor.F32, shape...)
					dst = strided(t, be, z, true)
				case tc.bfDst:
					dst, _ = tensor.Zeros(tensor.BF16, shape...)
				}
				got, err := be.MatMul(dst, a, b, tc.transB)
				if err != nil {
					t.Fatal(err)
				}
				if !got.ShapeIs(shape...) {
					t.Fatalf("shape %v, want %v", got.Shape(), shape)
				}
				tol := 2e-6 * math.Sqrt(float64(tc.as[len(tc.as)-1])+1)
				if tc.bfDst {
					tol = 1.0 / 128
				}
				closeTo(t, "matmul", vals(t, got), want, scale, 1e-6, tol)
			})
		}
	}
}

func TestMatMulHandComputed(t *testing.T) {
	be := newBackend(t)
	a, _ := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b, _ := tensor.FromFloat32As(tensor.BF16, []float32{1, 0, -1, 2, 0.5, 0.25}, 3, 2)
	got, err := be.MatMul(nil, a, b, false)
	if err != nil {
		t.Fatal(err)
	}
	// [1 2 3; 4 5 6]·[1 0; -1 2; 0.5 0.25] = [0.5 4.75; 2 11.5]
	closeTo(t, "hand", vals(t, got), []float64{0.5, 4.75, 2, 11.5}, nil, 0, 0)
}

func TestLinear(t *testing.T) {
	tests := []struct {
		name     string
		xs       []int
		n        int
		wdt      tensor.DType
		bias     bool
		stridedX bool
	}{
		{"bias bf16", []int{2, 5, 19}, 23, tensor.BF16, true, false},
		{"no bias f32 row", []int{19}, 7, tensor.F32, false, false},
		{"strided x f16", []int{3, 4, 33}, 17, tensor.F16, true, true},
		{"wide", []int{1, 8}, 300, tensor.BF16, true, false},
	}
	for _, be := range backends(t) {
		for _, tc := range tests {
			t.Run(be.kern.name+"/"+tc.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(11, uint64(tc.n)))
				k := tc.xs[len(tc.xs)-1]
				x := randT(t, rng, tensor.F32, tc.xs...)
				w := randT(t, rng, tc.wdt, tc.n, k)
				var bias *tensor.Tensor
				if tc.bias {
					bias = randT(t, rng, tensor.BF16, tc.n)
				}
				rows := x.NumElements() / k
				want, scale, _ := refMatMul(vals(t, x), []int{rows, k}, vals(t, w), []int{tc.n, k}, true)
				if bias != nil {
					bv := vals(t, bias)
					for i := range want {
						want[i] += bv[i%tc.n]
						scale[i] += math.Abs(bv[i%tc.n])
					}
				}
				if tc.stridedX {
					x = strided(t, be, x, false)
				}
				got, err := be.Linear(nil, x, w, bias)
				if err != nil {
					t.Fatal(err)
				}
				wantShape := append(append([]int(nil), tc.xs[:len(tc.xs)-1]...), tc.n)
				if !got.ShapeIs(wantShape...) {
					t.Fatalf("shape %v, want %v", got.Shape(), wantShape)
				}
				closeTo(t, "linear", vals(t, got), want, scale, 1e-6, 1e-5)
			})
		}
	}
}

func TestMatMulErrors(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(1, 1))
	a := randT(t, rng, tensor.F32, 3, 4)
	b := randT(t, rng, tensor.F32, 5, 6)
	v := randT(t, rng, tensor.F32, 4)
	ba := randT(t, rng, tensor.F32, 2, 3, 4)
	bb := randT(t, rng, tensor.F32, 3, 4, 5)
	wrongDst, _ := tensor.Zeros(tensor.F32, 3, 3)
	f8Dst, _ := tensor.Zeros(tensor.F8E4M3, 3, 5)
	tests := []struct {
		name string
		run  func() error
	}{
		{"inner mismatch", func() error { _, err := be.MatMul(nil, a, b, false); return err }},
		{"rank 1", func() error { _, err := be.MatMul(nil, v, b, false); return err }},
		{"batch mismatch", func() error { _, err := be.MatMul(nil, ba, bb, false); return err }},
		{"dst shape", func() error { _, err := be.MatMul(wrongDst, a, randT(t, rng, tensor.F32, 4, 5), false); return err }},
		{"fp8 dst", func() error { _, err := be.MatMul(f8Dst, a, randT(t, rng, tensor.F32, 4, 5), false); return err }},
		{"dst aliases a", func() error { _, err := be.MatMul(a, a, randT(t, rng, tensor.F32, 4, 4), false); return err }},
		{"nil a", func() error { _, err := be.MatMul(nil, nil, b, false); return err }},
		{"linear weight", func() error { _, err := be.Linear(nil, a, b, nil); return err }},
		{"linear bias", func() error { _, err := be.Linear(nil, a, randT(t, rng, tensor.F32, 5, 4), v); return err }},
		{"linear 3d weight", func() error { _, err := be.Linear(nil, a, ba, nil); return err }},
	}
	for _, tc := range tests {
		if err := tc.run(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
