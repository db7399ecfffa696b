package sampling

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestMT19937KnownOutputs(t *testing.T) {
	// Reference values of the standard MT19937 (init_genrand): the first outputs for seed 5489
	// and the 10000th output of a default-seeded std::mt19937 (C++ standard, [rand.predef]).
	cases := []struct {
		seed  uint64
		index int // 1-based
		want  uint32
	}{
		{5489, 1, 3499211612},
		{5489, 2, 581869302},
		{5489, 3, 3890346734},
		{5489, 4, 3586334585},
		{5489, 10000, 4123659995},
		{5489 + 1<<32, 1, 3499211612}, // only the low 32 bits seed the engine
	}
	for _, c := range cases {
		g := NewGenerator(c.seed)
		var got uint32
		for i := 0; i < c.index; i++ {
			got = g.Uint32()
		}
		if got != c.want {
			t.Errorf("seed %d output %d = %d, want %d", c.seed, c.index, got, c.want)
		}
	}
}

// TestRandnMatchesTorch compares with torch.randn on torch.manual_seed generators, including
// successive calls on one generator (sizes below 16 use the double-precision scalar path and
// its cached second value, which carries over between calls).
func TestRandnMatchesTorch(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.Noise {
		t.Run(fmt.Sprintf("seed%d_%v", c.Seed, c.Sizes), func(t *testing.T) {
			g := NewGenerator(c.Seed)
			for j, n := range c.Sizes {
				got := make([]float32, n)
				g.Randn(got)
				want := ref.tensor(t, c.Tensors[j]).Data
				if u := ulpDiff(got, want); u != 0 {
					t.Errorf("call %d (size %d): %d ulp from torch (max |diff| %g)", j, n, u, maxAbsDiff(got, want))
				}
			}
		})
	}
}

func TestPrepareNoiseMatchesComfy(t *testing.T) {
	ref := loadReference(t)
	for _, c := range ref.PrepareNoise {
		t.Run(fmt.Sprintf("%v_seed%d_inds%v", c.Shape, c.Seed, c.BatchIndex), func(t *testing.T) {
			got, err := PrepareNoise(c.Shape, c.Seed, c.BatchIndex)
			if err != nil {
				t.Fatal(err)
			}
			if u := ulpDiff(got.Data, ref.tensor(t, c.Tensor).Data); u != 0 {
				t.Errorf("%d ulp from ComfyUI's prepare_noise", u)
			}
		})
	}
}

// TestBatchNoiseIsOneStream checks that a batch shares one generator stream: sample 0 of a
// batch-2 draw is the batch-1 draw (its uniforms come first and the transform works on blocks
// of 16), sample 1 continues the stream instead of restarting it.
func TestBatchNoiseIsOneStream(t *testing.T) {
	one, _ := PrepareNoise([]int{1, 16, 4, 4}, 7, nil)
	two, _ := PrepareNoise([]int{2, 16, 4, 4}, 7, nil)
	all := make([]float32, 2*256)
	NewGenerator(7).Randn(all)
	if ulpDiff(two.Data, all) != 0 {
		t.Fatal("batch noise is not one randn over the whole shape")
	}
	if ulpDiff(two.Data[:256], one.Data) != 0 {
		t.Fatal("batch sample 0 differs from the batch-1 noise")
	}
	if ulpDiff(two.Data[256:], one.Data) == 0 {
		t.Fatal("batch sample 1 repeats sample 0")
	}
}

func TestPrepareNoiseErrors(t *testing.T) {
	cases := []struct {
		name  string
		shape []int
		inds  []int
	}{
		{"no dims", nil, nil},
		{"zero dim", []int{1, 0, 4, 4}, nil},
		{"negative dim", []int{1, 16, -4, 4}, nil},
		{"too large", []int{1 << 20, 1 << 20}, nil},
		{"index count", []int{2, 16, 2, 2}, []int{0}},
		{"negative index", []int{2, 16, 2, 2}, []int{0, -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := PrepareNoise(c.shape, 1, c.inds); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestNoiseSamplerSeedPlusOne(t *testing.T) {
	ns := NewNoiseSampler(41)
	x, _ := NewLatent(1, 16, 2, 2)
	a := ns.Next(x)
	b := ns.Next(x)
	want := make([]float32, 128)
	NewGenerator(42).Randn(want)
	if ulpDiff(append(a.Data, b.Data...), want) != 0 {
		t.Fatal("noise sampler is not a seed+1 generator drawing x-sized tensors in sequence")
	}
}

// TestFmaf checks the single-precision fused multiply-add against exact rational arithmetic,
// including products constructed to land next to rounding ties.
func TestFmaf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(0).SetFloat64(float64(a))
		x.SetPrec(200).Mul(x, new(big.Float).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	check := func(a, b, c float32) {
		t.Helper()
		if got, want := fmaf(a, b, c), exact(a, b, c); math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fmaf(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
	}
	for i := 0; i < 200000; i++ {
		a := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		b := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		c := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		check(a, b, c)
		// c = -round(a·b) + half an ulp of it: the exact sum sits beside a tie.
		p := a * b
		ulp := math.Nextafter32(p, float32(math.Inf(1))) - p
		check(a, b, -p+ulp/2)
		check(a, b, ulp/2)
	}
	for i := 0; i < 100000; i++ { // results in and near the float32 subnormal range
		a := float32(r.NormFloat64() * 0x1p-70)
		b := float32(r.NormFloat64() * 0x1p-60)
		check(a, b, float32(r.NormFloat64()*0x1p-130))
		check(a, b, -a*b)
	}
	check(1, 1, float32(math.Inf(1)))
	check(3, 5, -15)
	if v := fmaf(float32(math.NaN()), 1, 1); v == v {
		t.Fatal("NaN lost")
	}
}

func TestLogfSincosfAccuracy(t *testing.T) {
	// The Cephes routines are accurate to a few ulp over the Box–Muller domain.
	for i := 1; i <= 1<<24; i += 97 {
		u := float32(i) / (1 << 24)
		want := math.Log(float64(u))
		if got := float64(logf(u)); math.Abs(got-want) > 4e-7*math.Max(1, math.Abs(want)) {
			t.Fatalf("logf(%v) = %v, want %v", u, got, want)
		}
		th := float32(2*math.Pi) * (u - 1.0/(1<<24))
		s, c := sincosf(th)
		if math.Abs(float64(s)-math.Sin(float64(th))) > 3e-7 || math.Abs(float64(c)-math.Cos(float64(th))) > 3e-7 {
			t.Fatalf("sincosf(%v) = %v, %v", th, s, c)
		}
	}
	for _, x := range []float32{0, -1, float32(math.Inf(-1))} {
		if v := logf(x); v == v {
			t.Errorf("logf(%v) = %v, want NaN", x, v)
		}
	}
}

func BenchmarkRandn(b *testing.B) {
	for _, n := range []int{16 * 128 * 128, 16 * 16 * 16, 15} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]float32, n)
			g := NewGenerator(1)
			b.SetBytes(int64(4 * n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g.Randn(buf)
			}
		})
	}
}

// BenchmarkPrepareNoise1024 is the noise of one 1024×1024 Z-Image latent.
func BenchmarkPrepareNoise1024(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := PrepareNoise([]int{1, 16, 128, 128}, uint64(i), nil); err != nil {
			b.Fatal(err)
		}
	}
}
