package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func f32(bits uint32) float32 { return math.Float32frombits(bits) }

func TestBF16Rounding(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3f80},
		{"minus zero", float32(math.Copysign(0, -1)), 0x8000},
		{"tie to even stays", f32(0x3f808000), 0x3f80},
		{"tie to even rounds up", f32(0x3f818000), 0x3f82},
		{"above tie", f32(0x3f808001), 0x3f81},
		{"below tie", f32(0x3f807fff), 0x3f80},
		{"max float32 overflows", math.MaxFloat32, 0x7f80},
		{"largest bf16", f32(0x7f7f0000), 0x7f7f},
		{"+inf", float32(math.Inf(1)), 0x7f80},
		{"-inf", float32(math.Inf(-1)), 0xff80},
		{"smallest f32 subnormal rounds to zero", f32(1), 0},
		{"subnormal tie to even", f32(0x00008000), 0},
		{"subnormal tie up", f32(0x00018000), 0x0002},
		{"subnormal kept", f32(0x00050000), 0x0005},
		{"rounds into normal", f32(0x007fffff), 0x0080},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := F32ToBF16(tc.in); got != tc.want {
				t.Fatalf("F32ToBF16(%g [%#08x]) = %#04x, want %#04x", tc.in, math.Float32bits(tc.in), got, tc.want)
			}
		})
	}
	if h := F32ToBF16(float32(math.NaN())); h&0x7f80 != 0x7f80 || h&0x7f == 0 && h&0x40 == 0 {
		t.Fatalf("NaN -> %#04x, not a NaN", h)
	}
	if h := F32ToBF16(f32(0xff800001)); !math.IsNaN(float64(BF16ToF32(h))) || h&0x8000 == 0 {
		t.Fatalf("-sNaN with low payload -> %#04x, want a negative NaN", h)
	}
}

func TestF16Rounding(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"max", 65504, 0x7bff},
		{"just below overflow tie", 65519.996, 0x7bff},
		{"overflow tie goes to inf (even)", 65520, 0x7c00},
		{"inf", float32(math.Inf(1)), 0x7c00},
		{"-inf", float32(math.Inf(-1)), 0xfc00},
		{"min normal", float32(math.Ldexp(1, -14)), 0x0400},
		{"min subnormal", float32(math.Ldexp(1, -24)), 0x0001},
		{"half min subnormal ties to zero", float32(math.Ldexp(1, -25)), 0x0000},
		{"above half min subnormal", float32(math.Ldexp(1.5, -25)), 0x0001},
		{"subnormal tie 1.5 -> 2", float32(math.Ldexp(3, -25)), 0x0002},
		{"subnormal tie 2.5 -> 2", float32(math.Ldexp(5, -25)), 0x0002},
		{"largest subnormal", float32(math.Ldexp(1023, -24)), 0x03ff},
		{"rounds up into normal", float32(math.Ldexp(1023.5, -24)), 0x0400},
		{"tiny f32 subnormal", f32(1), 0},
		{"negative tiny", -f32(1), 0x8000},
		{"mantissa tie even", 1 + float32(math.Ldexp(1, -11)), 0x3c00},
		{"mantissa tie odd", 1 + float32(math.Ldexp(3, -11)), 0x3c02},
		{"mantissa carry into exponent", 2 - float32(math.Ldexp(1, -12)), 0x4000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := F32ToF16(tc.in); got != tc.want {
				t.Fatalf("F32ToF16(%g) = %#04x, want %#04x", tc.in, got, tc.want)
			}
		})
	}
	if h := F32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Fatalf("NaN -> %#04x, not a NaN", h)
	}
	if h := F32ToF16(-float32(math.NaN())); h&0x8000 == 0 {
		t.Fatalf("-NaN lost its sign: %#04x", h)
	}
}

// TestHalfRoundTripExhaustive widens every 16-bit pattern and narrows it back.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F16ToF32(h)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(F16ToF32(F32ToF16(f)))) {
				t.Fatalf("f16 NaN %#04x did not stay NaN", h)
			}
			continue
		}
		if got := F32ToF16(f); got != h {
			t.Fatalf("f16 %#04x -> %g -> %#04x", h, f, got)
		}
		b := BF16ToF32(h)
		if math.IsNaN(float64(b)) {
			continue
		}
		if got := F32ToBF16(b); got != h {
			t.Fatalf("bf16 %#04x -> %g -> %#04x", h, b, got)
		}
	}
}

// nearestOK checks that code r is a correctly rounded (ties-to-even) encoding of x among its
// neighbouring codes, using float64 arithmetic.
func nearestOK(x float64, r uint32, decode func(uint32) float64, maxMag uint32) bool {
	v := decode(r)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return false
	}
	d := math.Abs(x - v)
	for _, nb := range []uint32{r - 1, r + 1} {
		if nb&^(1<<31) > maxMag && nb > r { // beyond the largest finite value
			continue
		}
		w := decode(nb)
		if math.IsNaN(w) || math.IsInf(w, 0) || math.Signbit(w) != math.Signbit(v) && w != 0 {
			continue
		}
		e := math.Abs(x - w)
		if e < d || e == d && r&1 == 1 {
			return false
		}
	}
	return true
}

func TestF16RoundingProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dec := func(c uint32) float64 { return float64(F16ToF32(uint16(c))) }
	for range 200000 {
		// Random magnitudes across the whole f16 range, subnormals included.
		x := float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(34)-26))
		r := uint32(F32ToF16(x))
		if !nearestOK(float64(x), r, dec, 0x7bff) {
			t.Fatalf("F32ToF16(%g [%#08x]) = %#04x is not the nearest-even value", x, math.Float32bits(x), r)
		}
	}
}

func TestF8Decode(t *testing.T) {
	tests := []struct {
		name string
		got  float32
		want float64
	}{
		{"e4m3 max", F8E4M3ToF32(0x7e), 448},
		{"e4m3 -max", F8E4M3ToF32(0xfe), -448},
		{"e4m3 one", F8E4M3ToF32(0x38), 1},
		{"e4m3 min normal", F8E4M3ToF32(0x08), math.Ldexp(1, -6)},
		{"e4m3 min subnormal", F8E4M3ToF32(0x01), math.Ldexp(1, -9)},
		{"e4m3 largest subnormal", F8E4M3ToF32(0x07), 7 * math.Ldexp(1, -9)},
		{"e4m3 exponent 15 is finite", F8E4M3ToF32(0x78), 256},
		{"e5m2 max", F8E5M2ToF32(0x7b), 57344},
		{"e5m2 one", F8E5M2ToF32(0x3c), 1},
		{"e5m2 inf", F8E5M2ToF32(0x7c), math.Inf(1)},
		{"e5m2 -inf", F8E5M2ToF32(0xfc), math.Inf(-1)},
		{"e5m2 min subnormal", F8E5M2ToF32(0x01), math.Ldexp(1, -16)},
		{"e5m2 min normal", F8E5M2ToF32(0x04), math.Ldexp(1, -14)},
	}
	for _, tc := range tests {
		if float64(tc.got) != tc.want {
			t.Errorf("%s: got %g, want %g", tc.name, tc.got, tc.want)
		}
	}
	for _, b := range []uint8{0x7f, 0xff} {
		if !math.IsNaN(float64(F8E4M3ToF32(b))) {
			t.Errorf("e4m3 %#02x should be NaN", b)
		}
	}
	for _, b := range []uint8{0x7d, 0x7e, 0x7f, 0xfd} {
		if !math.IsNaN(float64(F8E5M2ToF32(b))) {
			t.Errorf("e5m2 %#02x should be NaN", b)
		}
	}
	// e5m2 is the top byte of an IEEE half.
	for i := range 256 {
		a, h := F8E5M2ToF32(uint8(i)), F16ToF32(uint16(i)<<8)
		if a != h && !(math.IsNaN(float64(a)) && math.IsNaN(float64(h))) {
			t.Fatalf("e5m2 %#02x = %g, half %#04x = %g", i, a, i<<8, h)
		}
	}
}

func TestF8Encode(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name string
		got  uint8
		want uint8
	}{
		{"e4m3 max", F32ToF8E4M3(448), 0x7e},
		{"e4m3 tie below NaN goes to even 448", F32ToF8E4M3(464), 0x7e},
		{"e4m3 above the tie is NaN", F32ToF8E4M3(465), 0x7f},
		{"e4m3 480 is NaN", F32ToF8E4M3(480), 0x7f},
		{"e4m3 -1e6 is -NaN", F32ToF8E4M3(-1e6), 0xff},
		{"e4m3 inf is NaN", F32ToF8E4M3(float32(math.Inf(1))), 0x7f},
		{"e4m3 NaN", F32ToF8E4M3(nan), 0x7f},
		{"e4m3 min subnormal", F32ToF8E4M3(float32(math.Ldexp(1, -9))), 0x01},
		{"e4m3 half min subnormal ties to 0", F32ToF8E4M3(float32(math.Ldexp(1, -10))), 0x00},
		{"e4m3 0.75 min subnormal -> 1", F32ToF8E4M3(float32(math.Ldexp(3, -11))), 0x01},
		{"e4m3 1.1 rounds to 1.125", F32ToF8E4M3(1.1), 0x39},
		{"e5m2 max", F32ToF8E5M2(57344), 0x7b},
		{"e5m2 below the overflow tie", F32ToF8E5M2(61439), 0x7b},
		{"e5m2 overflow tie to even is inf", F32ToF8E5M2(61440), 0x7c},
		{"e5m2 -inf", F32ToF8E5M2(float32(math.Inf(-1))), 0xfc},
		{"e5m2 NaN", F32ToF8E5M2(nan), 0x7f},
		{"e5m2 min subnormal", F32ToF8E5M2(float32(math.Ldexp(1, -16))), 0x01},
		{"e5m2 1.125 tie to even 1.0", F32ToF8E5M2(1.125), 0x3c},
		{"e5m2 1.375 tie to even 1.5", F32ToF8E5M2(1.375), 0x3e},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %#02x, want %#02x", tc.name, tc.got, tc.want)
		}
	}
}

// TestF8RoundingBruteForce compares narrowing against the nearest of all 256 codes.
func TestF8RoundingBruteForce(t *testing.T) {
	type format struct {
		name   string
		enc    func(float32) uint8
		dec    func(uint8) float32
		maxVal float64
	}
	for _, f := range []format{
		{"e4m3", F32ToF8E4M3, F8E4M3ToF32, 448},
		{"e5m2", F32ToF8E5M2, F8E5M2ToF32, 57344},
	} {
		t.Run(f.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			for range 6000 {
				x := float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(36)-20))
				if math.Abs(float64(x)) > f.maxVal {
					continue
				}
				best, bestD := -1, math.Inf(1)
				for c := range 256 {
					v := float64(f.dec(uint8(c)))
					if math.IsNaN(v) || math.IsInf(v, 0) {
						continue
					}
					d := math.Abs(float64(x) - v)
					if d < bestD || d == bestD && c&1 == 0 && v != 0 {
						best, bestD = c, d
					}
				}
				got := f.enc(x)
				if float64(f.dec(got)) != float64(f.dec(uint8(best))) {
					t.Fatalf("%s(%g) = %#02x (%g), nearest-even is %#02x (%g)", f.name, x, got, f.dec(got), best, f.dec(uint8(best)))
				}
			}
			// Exhaustive round trip of every finite code.
			for c := range 256 {
				v := f.dec(uint8(c))
				if math.IsNaN(float64(v)) {
					continue
				}
				if got := f.enc(v); got != uint8(c) {
					t.Fatalf("%s code %#02x -> %g -> %#02x", f.name, c, v, got)
				}
			}
		})
	}
}

func TestDecodeEncodeSlices(t *testing.T) {
	src := []float32{0, 1, -2.5, 3.140625, 1e-5, 65504, float32(math.Inf(1))}
	for _, dt := range []DType{F32, BF16, F16, F8E4M3, F8E5M2} {
		b := make([]byte, len(src)*dt.Size())
		if err := EncodeF32(b, src, dt); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(src))
		if err := DecodeF32(got, b, dt); err != nil {
			t.Fatal(err)
		}
		for i, v := range src {
			var want float32
			switch dt {
			case F32:
				want = v
			case BF16:
				want = BF16ToF32(F32ToBF16(v))
			case F16:
				want = F16ToF32(F32ToF16(v))
			case F8E4M3:
				want = F8E4M3ToF32(F32ToF8E4M3(v))
			case F8E5M2:
				want = F8E5M2ToF32(F32ToF8E5M2(v))
			}
			if got[i] != want && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want))) {
				t.Errorf("%v: element %d: got %g, want %g", dt, i, got[i], want)
			}
		}
	}
	if err := DecodeF32(make([]float32, 2), make([]byte, 3), F16); err == nil {
		t.Error("DecodeF32 accepted a wrong byte count")
	}
	if err := EncodeF32(make([]byte, 2), make([]float32, 2), F32); err == nil {
		t.Error("EncodeF32 accepted a wrong byte count")
	}
	if err := DecodeF32(nil, nil, InvalidDType); err == nil {
		t.Error("DecodeF32 accepted an invalid dtype")
	}
}

func TestDTypeNames(t *testing.T) {
	for _, dt := range []DType{F32, F16, BF16, F8E4M3, F8E5M2} {
		got, err := ParseDType(dt.String())
		if err != nil || got != dt {
			t.Errorf("ParseDType(%q) = %v, %v", dt.String(), got, err)
		}
	}
	if _, err := ParseDType("I64"); err == nil {
		t.Error("ParseDType accepted I64")
	}
	if F8E4M3.IsComputeType() || !BF16.IsComputeType() || F32.Size() != 4 || F8E5M2.Size() != 1 {
		t.Error("dtype properties wrong")
	}
}
