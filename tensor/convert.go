package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Conversions between float32 and the narrow types. Widening (narrow -> float32) is exact.
// Narrowing rounds to nearest, ties to even, handles subnormals of the target, and treats
// overflow like PyTorch does: F16, BF16 and F8E5M2 produce ±Inf, F8E4M3 (which has no
// infinity) produces NaN. NaN stays NaN (quiet), keeping its sign.

// BF16ToF32 widens a bfloat16 bit pattern to float32 (exact).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 rounds f to the nearest bfloat16 (ties to even).
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep sign and top payload, force quiet
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToF32 widens an IEEE half-precision bit pattern to float32 (exact, subnormals included).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch exp {
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case 0:
		v := float32(man) * (1.0 / (1 << 24)) // subnormal: man·2^-24, exact in float32
		return math.Float32frombits(sign | math.Float32bits(v))
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// narrowFormat describes a binary floating-point format narrower than float32.
type narrowFormat struct {
	bits    uint   // total width
	manBits uint   // explicit mantissa bits
	bias    int    // exponent bias
	maxMag  uint32 // largest finite magnitude encoding
	inf     uint32 // magnitude encoding of infinity; 0 when the format has none
	nan     uint32 // magnitude encoding used for NaN
}

var (
	fmtF16    = narrowFormat{bits: 16, manBits: 10, bias: 15, maxMag: 0x7bff, inf: 0x7c00, nan: 0x7e00}
	fmtF8E5M2 = narrowFormat{bits: 8, manBits: 2, bias: 15, maxMag: 0x7b, inf: 0x7c, nan: 0x7f}
	fmtF8E4M3 = narrowFormat{bits: 8, manBits: 3, bias: 7, maxMag: 0x7e, inf: 0, nan: 0x7f}
)

// encodeNarrow rounds f into the format ft (round to nearest, ties to even).
func encodeNarrow(f float32, ft *narrowFormat) uint32 {
	b := math.Float32bits(f)
	sign := (b >> 31) << (ft.bits - 1)
	a := b & 0x7fffffff
	switch {
	case a > 0x7f800000:
		return sign | ft.nan
	case a == 0x7f800000:
		if ft.inf != 0 {
			return sign | ft.inf
		}
		return sign | ft.nan
	}
	exp := int(a >> 23)
	man := uint64(a & 0x7fffff)
	if exp == 0 {
		exp = 1 // float32 subnormal: no implicit bit, same scale as exponent 1
	} else {
		man |= 1 << 23
	}
	// The value is man·2^(exp-150). In the target, a normal number with biased exponent te has
	// the encoding (te-1)<<manBits + (1<<manBits | fraction); subnormals are te=1 without the
	// implicit bit, so one formula covers both, and a rounding carry moves into the exponent.
	te := exp - 127 + ft.bias
	shift := 23 - int(ft.manBits)
	base := uint32(0)
	if te < 1 {
		shift += 1 - te
	} else {
		base = uint32(te-1) << ft.manBits
	}
	if shift > 40 {
		shift = 40 // man < 2^24: everything rounds to zero from here on
	}
	q := man >> uint(shift)
	rem := man & (1<<uint(shift) - 1)
	half := uint64(1) << uint(shift-1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	mag := base + uint32(q)
	if mag > ft.maxMag {
		if ft.inf != 0 {
			return sign | ft.inf
		}
		return sign | ft.nan
	}
	return sign | mag
}

// decodeNarrow widens an 8-bit pattern of format ft to float32 (exact).
func decodeNarrow(v uint32, ft *narrowFormat) float32 {
	signMask := uint32(1) << (ft.bits - 1)
	mag := v &^ signMask
	var f float32
	switch {
	case ft.inf != 0 && mag == ft.inf:
		f = float32(math.Inf(1))
	case ft.inf != 0 && mag > ft.inf, ft.inf == 0 && mag > ft.maxMag:
		f = float32(math.NaN())
	default:
		expBits := ft.bits - 1 - ft.manBits
		e := int(mag >> ft.manBits & (1<<expBits - 1))
		m := float64(mag & (1<<ft.manBits - 1))
		if e == 0 {
			f = float32(math.Ldexp(m, 1-ft.bias-int(ft.manBits)))
		} else {
			f = float32(math.Ldexp(m+float64(uint32(1)<<ft.manBits), e-ft.bias-int(ft.manBits)))
		}
	}
	if v&signMask != 0 {
		f = -f
	}
	return f
}

// F32ToF16 rounds f to the nearest IEEE half-precision value (ties to even; overflow → ±Inf).
func F32ToF16(f float32) uint16 { return uint16(encodeNarrow(f, &fmtF16)) }

// F32ToF8E4M3 rounds f to the nearest float8 e4m3fn value (ties to even). Magnitudes that round
// above 448, and ±Inf, become NaN, as in PyTorch.
func F32ToF8E4M3(f float32) uint8 { return uint8(encodeNarrow(f, &fmtF8E4M3)) }

// F32ToF8E5M2 rounds f to the nearest float8 e5m2 value (ties to even; overflow → ±Inf).
func F32ToF8E5M2(f float32) uint8 { return uint8(encodeNarrow(f, &fmtF8E5M2)) }

// F8E4M3ToF32 widens a float8 e4m3fn pattern to float32 (exact).
func F8E4M3ToF32(b uint8) float32 { return f8e4m3Table[b] }

// F8E5M2ToF32 widens a float8 e5m2 pattern to float32 (exact).
func F8E5M2ToF32(b uint8) float32 { return f8e5m2Table[b] }

// Lookup tables for the 8-bit formats, computed once; read-only afterwards.
var f8e4m3Table, f8e5m2Table = func() (a, b [256]float32) {
	for i := range 256 {
		a[i] = decodeNarrow(uint32(i), &fmtF8E4M3)
		b[i] = decodeNarrow(uint32(i), &fmtF8E5M2)
	}
	return a, b
}()

// DecodeF32 widens little-endian elements of type dt in src into dst; src must hold exactly
// len(dst) elements.
func DecodeF32(dst []float32, src []byte, dt DType) error {
	if !dt.Valid() {
		return fmt.Errorf("tensor: decode: invalid dtype %v", dt)
	}
	if len(src) != len(dst)*dt.Size() {
		return fmt.Errorf("tensor: decode %v: %d bytes for %d elements (want %d)", dt, len(src), len(dst), len(dst)*dt.Size())
	}
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F8E4M3:
		for i, b := range src {
			dst[i] = f8e4m3Table[b]
		}
	case F8E5M2:
		for i, b := range src {
			dst[i] = f8e5m2Table[b]
		}
	}
	return nil
}

// EncodeF32 rounds src into little-endian elements of type dt in dst; dst must hold exactly
// len(src) elements.
func EncodeF32(dst []byte, src []float32, dt DType) error {
	if !dt.Valid() {
		return fmt.Errorf("tensor: encode: invalid dtype %v", dt)
	}
	if len(dst) != len(src)*dt.Size() {
		return fmt.Errorf("tensor: encode %v: %d bytes for %d elements (want %d)", dt, len(dst), len(src), len(src)*dt.Size())
	}
	switch dt {
	case F32:
		for i, f := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	case BF16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(f))
		}
	case F16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(f))
		}
	case F8E4M3:
		for i, f := range src {
			dst[i] = F32ToF8E4M3(f)
		}
	case F8E5M2:
		for i, f := range src {
			dst[i] = F32ToF8E5M2(f)
		}
	}
	return nil
}
