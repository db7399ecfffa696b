package tensor

import (
	"math"
	"testing"
)

// checkNearestEven reports whether magnitude code r (of a format whose finite magnitude codes
// are 0..maxCode, in increasing order of value) is the round-to-nearest-even encoding of |x|.
func checkNearestEven(x float64, r, maxCode uint32, dec func(uint32) float64) bool {
	if r > maxCode {
		return false
	}
	d := math.Abs(x - dec(r))
	if r > 0 {
		if e := math.Abs(x - dec(r-1)); e < d || e == d && r&1 == 1 {
			return false
		}
	}
	if r < maxCode {
		if e := math.Abs(x - dec(r+1)); e < d || e == d && r&1 == 1 {
			return false
		}
	}
	return true
}

// FuzzNarrowing checks every narrowing conversion of an arbitrary float32 against the
// definition: nearest representable value, ties to even, with each format's overflow rule.
func FuzzNarrowing(f *testing.F) {
	for _, seed := range []uint32{0, 0x3f800000, 0x477fe000, 0x7f7fffff, 0x7f800000, 0x7fc00000, 1, 0x00008000, 0x43e80000, 0x47700000, 0x33000000} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bits uint32) {
		x := math.Float32frombits(bits)
		neg := bits>>31 == 1
		ax := math.Abs(float64(x))
		type format struct {
			name     string
			enc      func(float32) uint32
			dec      func(uint32) float64
			sign     uint32
			maxCode  uint32  // largest finite magnitude code
			overflow float64 // magnitudes at or above this do not round to a finite value
			over     func(uint32) bool
		}
		formats := []format{
			{"bf16", func(v float32) uint32 { return uint32(F32ToBF16(v)) }, func(c uint32) float64 { return float64(BF16ToF32(uint16(c))) },
				0x8000, 0x7f7f, float64(math.Float32frombits(0x7f7f8000)), func(c uint32) bool { return c&0x7fff == 0x7f80 }},
			{"f16", func(v float32) uint32 { return uint32(F32ToF16(v)) }, func(c uint32) float64 { return float64(F16ToF32(uint16(c))) },
				0x8000, 0x7bff, 65520, func(c uint32) bool { return c&0x7fff == 0x7c00 }},
			{"e5m2", func(v float32) uint32 { return uint32(F32ToF8E5M2(v)) }, func(c uint32) float64 { return float64(F8E5M2ToF32(uint8(c))) },
				0x80, 0x7b, 61440, func(c uint32) bool { return c&0x7f == 0x7c }},
			{"e4m3", func(v float32) uint32 { return uint32(F32ToF8E4M3(v)) }, func(c uint32) float64 { return float64(F8E4M3ToF32(uint8(c))) },
				0x80, 0x7e, 464 + 1e-9, func(c uint32) bool { return c&0x7f == 0x7f }},
		}
		for _, fm := range formats {
			r := fm.enc(x)
			if neg != (r&fm.sign != 0) && !(math.IsNaN(float64(x)) && fm.name == "e4m3") {
				t.Fatalf("%s(%g): sign lost in %#x", fm.name, x, r)
			}
			mag := r &^ fm.sign
			switch {
			case math.IsNaN(float64(x)):
				if !math.IsNaN(fm.dec(r)) {
					t.Fatalf("%s(NaN) = %#x is not NaN", fm.name, r)
				}
			case ax >= fm.overflow:
				if !fm.over(r) {
					t.Fatalf("%s(%g) = %#x, want the overflow value", fm.name, x, r)
				}
			default:
				if !checkNearestEven(ax, mag, fm.maxCode, fm.dec) {
					t.Fatalf("%s(%g [%#08x]) = %#x (%g) is not nearest-even", fm.name, x, bits, r, fm.dec(r))
				}
			}
		}
	})
}
