package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

func refUnary(op tensor.UnaryOp, x float64) float64 {
	switch op {
	case tensor.Neg:
		return -x
	case tensor.Abs:
		return math.Abs(x)
	case tensor.Square:
		return x * x
	case tensor.Sqrt:
		return math.Sqrt(x)
	case tensor.Rsqrt:
		return 1 / math.Sqrt(x)
	case tensor.Exp:
		return math.Exp(x)
	case tensor.Tanh:
		return math.Tanh(x)
	case tensor.Sigmoid:
		return 1 / (1 + math.Exp(-x))
	case tensor.SiLU:
		return x / (1 + math.Exp(-x))
	case tensor.ReLU:
		return math.Max(x, 0)
	case tensor.GELUErf:
		return x * 0.5 * (1 + math.Erf(x/math.Sqrt2))
	case tensor.GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}
	panic("unknown op")
}

func TestUnaryHandComputed(t *testing.T) {
	be := newBackend(t)
	x, _ := tensor.FromFloat32([]float32{-1, 0, 0.5, 1, 2}, 5)
	tests := []struct {
		op   tensor.UnaryOp
		want []float64
	}{
		{tensor.SiLU, []float64{-0.2689414214, 0, 0.3112296867, 0.7310585786, 1.7615941560}},
		{tensor.GELUErf, []float64{-0.1586552539, 0, 0.3457312753, 0.8413447461, 1.9544997361}},
		{tensor.GELUTanh, []float64{-0.1588080094, 0, 0.3457140546, 0.8411919906, 1.9545976940}},
		{tensor.Tanh, []float64{-0.7615941560, 0, 0.4621171573, 0.7615941560, 0.9640275801}},
		{tensor.Sigmoid, []float64{0.2689414214, 0.5, 0.6224593312, 0.7310585786, 0.8807970780}},
		{tensor.ReLU, []float64{0, 0, 0.5, 1, 2}},
		{tensor.Square, []float64{1, 0, 0.25, 1, 4}},
	}
	for _, tc := range tests {
		got, err := be.Unary(nil, x, tc.op)
		if err != nil {
			t.Fatal(err)
		}
		closeTo(t, tc.op.String(), vals(t, got), tc.want, nil, 1e-7, 1e-6)
	}
}

func TestUnary(t *testing.T) {
	be := newBackend(t)
	ops := []tensor.UnaryOp{tensor.Neg, tensor.Abs, tensor.Square, tensor.Sqrt, tensor.Rsqrt, tensor.Exp,
		tensor.Tanh, tensor.Sigmoid, tensor.SiLU, tensor.ReLU, tensor.GELUErf, tensor.GELUTanh}
	rng := rand.New(rand.NewPCG(2, 3))
	for _, op := range ops {
		for _, layout := range []string{"contiguous", "strided", "transposed", "bf16", "inplace", "bf16 dst"} {
			t.Run(op.String()+"/"+layout, func(t *testing.T) {
				dt := tensor.F32
				if layout == "bf16" {
					dt = tensor.BF16
				}
				x := randT(t, rng, dt, 3, 2, 1100) // rows longer than one segment
				if op == tensor.Sqrt || op == tensor.Rsqrt {
					x, _ = be.Unary(nil, x, tensor.Abs)
				}
				xv := vals(t, x)
				want := make([]float64, len(xv))
				for i, v := range xv {
					want[i] = float64(float32(refUnary(op, v)))
				}
				var dst *tensor.Tensor
				switch layout {
				case "strided":
					x = strided(t, be, x, false)
				case "transposed":
					x = strided(t, be, x, true)
				case "inplace":
					dst = x
				case "bf16", "bf16 dst":
					if layout == "bf16 dst" {
						dst, _ = tensor.Zeros(tensor.BF16, 3, 2, 1100)
					}
					for i := range want { // the result is rounded to bf16
						want[i] = float64(tensor.BF16ToF32(tensor.F32ToBF16(float32(want[i]))))
					}
				}
				got, err := be.Unary(dst, x, op)
				if err != nil {
					t.Fatal(err)
				}
				if layout == "inplace" && got != x {
					t.Fatal("in-place op returned another tensor")
				}
				closeTo(t, "unary", vals(t, got), want, nil, 1e-7, 4e-7)
			})
		}
	}
	if _, err := be.Unary(nil, randT(t, rng, tensor.F32, 2), tensor.UnaryOp(99)); err == nil {
		t.Error("invalid op accepted")
	}
}

func TestSpecialValues(t *testing.T) {
	be := newBackend(t)
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	sub := float32(math.Ldexp(1, -140)) // float32 subnormal
	x, _ := tensor.FromFloat32([]float32{inf, -inf, nan, sub, -sub, 0}, 6)
	tests := []struct {
		op   tensor.UnaryOp
		want []float64
	}{
		// torch gives NaN for silu(-inf) and gelu(-inf) (-inf·0); so do we.
		{tensor.SiLU, []float64{math.Inf(1), math.NaN(), math.NaN(), float64(sub) / 2, -float64(sub) / 2, 0}},
		{tensor.Tanh, []float64{1, -1, math.NaN(), float64(sub), -float64(sub), 0}},
		{tensor.Exp, []float64{math.Inf(1), 0, math.NaN(), 1, 1, 1}},
		{tensor.ReLU, []float64{math.Inf(1), 0, math.NaN(), float64(sub), 0, 0}},
		{tensor.GELUErf, []float64{math.Inf(1), math.NaN(), math.NaN(), float64(sub) / 2, -float64(sub) / 2, 0}},
		{tensor.GELUTanh, []float64{math.Inf(1), math.NaN(), math.NaN(), float64(sub) / 2, -float64(sub) / 2, 0}},
		{tensor.Abs, []float64{math.Inf(1), math.Inf(1), math.NaN(), float64(sub), float64(sub), 0}},
	}
	for _, tc := range tests {
		got, err := be.Unary(nil, x, tc.op)
		if err != nil {
			t.Fatal(err)
		}
		g := vals(t, got)
		for i, w := range tc.want {
			if math.IsNaN(w) != math.IsNaN(g[i]) || !math.IsNaN(w) && math.Abs(g[i]-w) > 1e-45 {
				t.Errorf("%v(%v) = %v, want %v", tc.op, x, g[i], w)
			}
		}
	}
	// Clamp keeps NaN; Maximum propagates it.
	c, _ := be.Clamp(nil, x, -1, 1)
	if g := vals(t, c); g[0] != 1 || g[1] != -1 || !math.IsNaN(g[2]) {
		t.Errorf("clamp = %v", g)
	}
	one, _ := tensor.FromFloat32([]float32{1}, 1)
	m, _ := be.Binary(nil, x, one, tensor.Maximum)
	if g := vals(t, m); !math.IsNaN(g[2]) || g[1] != 1 || g[0] != math.Inf(1) {
		t.Errorf("maximum = %v", g)
	}
}

func refBinary(op tensor.BinaryOp, a, b float64) float64 {
	switch op {
	case tensor.Add:
		return a + b
	case tensor.Sub:
		return a - b
	case tensor.Mul:
		return a * b
	case tensor.Div:
		return a / b
	case tensor.Maximum:
		return math.Max(a, b)
	case tensor.Minimum:
		return math.Min(a, b)
	}
	panic("unknown op")
}

func TestBinaryBroadcast(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(4, 4))
	tests := []struct {
		name   string
		as, bs []int
		strA   bool
		bdt    tensor.DType
	}{
		{"same", []int{4, 7}, []int{4, 7}, false, tensor.F32},
		{"row vector", []int{3, 5, 7}, []int{7}, false, tensor.BF16},
		{"column", []int{3, 5, 7}, []int{5, 1}, true, tensor.F32},
		{"scalar", []int{2, 1300}, []int{1}, false, tensor.F16},
		{"both broadcast", []int{3, 1, 6}, []int{1, 4, 1}, false, tensor.F32},
		{"modulation [B,1,D]", []int{2, 9, 16}, []int{2, 1, 16}, true, tensor.F32},
		{"lower rank a", []int{6}, []int{2, 3, 6}, false, tensor.F32},
	}
	ops := []tensor.BinaryOp{tensor.Add, tensor.Sub, tensor.Mul, tensor.Div, tensor.Maximum, tensor.Minimum}
	for _, tc := range tests {
		for _, op := range ops {
			t.Run(tc.name+"/"+op.String(), func(t *testing.T) {
				a := randT(t, rng, tensor.F32, tc.as...)
				b := randT(t, rng, tc.bdt, tc.bs...)
				shape, _ := tensor.BroadcastShapes(tc.as, tc.bs)
				ea, _ := a.Expand(shape...)
				eb, _ := b.Expand(shape...)
				av, bv := vals(t, ea), vals(t, eb)
				want := make([]float64, len(av))
				for i := range av {
					want[i] = float64(float32(refBinary(op, av[i], bv[i])))
				}
				if tc.strA {
					a = strided(t, be, a, true)
				}
				got, err := be.Binary(nil, a, b, op)
				if err != nil {
					t.Fatal(err)
				}
				if !got.ShapeIs(shape...) {
					t.Fatalf("shape %v, want %v", got.Shape(), shape)
				}
				closeTo(t, "binary", vals(t, got), want, nil, 0, 0)
			})
		}
	}
}

func TestInPlaceAndAliasing(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(9, 9))
	x := randT(t, rng, tensor.F32, 4, 6)
	y := randT(t, rng, tensor.F32, 4, 6)
	xv, yv := vals(t, x), vals(t, y)
	// x += y in place.
	if _, err := be.Binary(x, x, y, tensor.Add); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(xv))
	for i := range xv {
		want[i] = float64(float32(xv[i] + yv[i]))
	}
	closeTo(t, "x+=y", vals(t, x), want, nil, 0, 0)
	// dst = transpose of its own input: must read the original values.
	sq := randT(t, rng, tensor.F32, 5, 5)
	orig := vals(t, sq)
	tr, _ := sq.Transpose(0, 1)
	if _, err := be.Copy(sq, tr); err != nil {
		t.Fatal(err)
	}
	got := vals(t, sq)
	for i := range 5 {
		for j := range 5 {
			if got[i*5+j] != orig[j*5+i] {
				t.Fatalf("overlapping transpose copy wrong at %d,%d", i, j)
			}
		}
	}
	// A shifted overlap through Affine.
	z := randT(t, rng, tensor.F32, 10)
	zo := vals(t, z)
	src, _ := z.Slice(0, 0, 9)
	dstv, _ := z.Slice(0, 1, 10)
	if _, err := be.Affine(dstv, src, 2, 1); err != nil {
		t.Fatal(err)
	}
	zg := vals(t, z)
	for i := 1; i < 10; i++ {
		if zg[i] != float64(float32(float32(zo[i-1])*2)+1) {
			t.Fatalf("shifted affine wrong at %d: %v vs %v", i, zg[i], zo[i-1]*2+1)
		}
	}
}

func TestAffineClampCopyConvert(t *testing.T) {
	be := newBackend(t)
	x, _ := tensor.FromFloat32([]float32{-2, -0.5, 0, 0.25, 3}, 5)
	a, err := be.Affine(nil, x, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "affine", vals(t, a), []float64{0, 0.75, 1, 1.125, 2.5}, nil, 0, 0)
	c, err := be.Clamp(nil, x, -1, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "clamp", vals(t, c), []float64{-1, -0.5, 0, 0.1, 0.1}, nil, 0, 1e-7)
	if _, err := be.Clamp(nil, x, 1, 0); err == nil {
		t.Error("clamp with lo > hi accepted")
	}
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, tensor.F8E4M3, tensor.F8E5M2} {
		y, err := be.Convert(x, dt)
		if err != nil {
			t.Fatal(err)
		}
		if y.DType() != dt {
			t.Fatalf("convert gave %v", y.DType())
		}
		back, err := be.Convert(y, tensor.F32)
		if err != nil {
			t.Fatal(err)
		}
		closeTo(t, "convert "+dt.String(), vals(t, back), []float64{-2, -0.5, 0, 0.25, 3}, nil, 0, 0)
	}
	// Copy of a broadcast source into a strided destination.
	row, _ := tensor.FromFloat32([]float32{1, 2, 3}, 3)
	big, _ := tensor.Zeros(tensor.BF16, 4, 5)
	dst, _ := big.Slice(1, 1, 4)
	if _, err := be.Copy(dst, row); err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 1, 2, 3, 0}
	got := vals(t, big)
	for i := range 4 {
		closeTo(t, "broadcast copy", got[i*5:i*5+5], want, nil, 0, 0)
	}
	if _, err := be.Copy(dst, x); err == nil {
		t.Error("copy with mismatched shapes accepted")
	}
	// Read and Write round-trip through a strided bf16 view.
	buf := make([]float32, 12)
	if err := be.Read(buf, dst); err != nil {
		t.Fatal(err)
	}
	for i, v := range buf {
		if v != float32(i%3+1) {
			t.Fatalf("Read = %v", buf)
		}
	}
	if err := be.Write(dst, []float32{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2}); err != nil {
		t.Fatal(err)
	}
	if v, _ := big.At(3, 3); v != -2 {
		t.Fatalf("Write through a view: %v", vals(t, big))
	}
	if err := be.Read(make([]float32, 3), dst); err == nil {
		t.Error("Read accepted a wrong length")
	}
}
