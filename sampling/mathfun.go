package sampling

import "math"

// Single-precision log and sincos reproducing, operation for operation, the Cephes-derived AVX
// routines that torch's CPU normal kernel calls (aten/src/ATen/native/cpu/avx_mathfun.h:
// log256_ps, sincos256_ps) as compiled into torch's AVX2 kernels: GCC contracts a multiply that
// feeds an add into one fused multiply-add there, so the polynomial steps use fmaf below and
// every other product is rounded on its own (explicit float32 conversions keep the Go compiler
// from fusing them). Checked bit for bit against torch 1.13 on 2^20 normals (testdata).

// f32 rounds a float64 to float32 at run time, so that constants written as decimal literals
// go through double first, as the C float arrays initialised from double literals do.
func f32(v float64) float32 { return float32(v) }

var (
	cephesSQRTHF = f32(0.707106781186547524)
	logP0        = f32(7.0376836292e-2)
	logP1        = f32(-1.1514610310e-1)
	logP2        = f32(1.1676998740e-1)
	logP3        = f32(-1.2420140846e-1)
	logP4        = f32(+1.4249322787e-1)
	logP5        = f32(-1.6668057665e-1)
	logP6        = f32(+2.0000714765e-1)
	logP7        = f32(-2.4999993993e-1)
	logP8        = f32(+3.3333331174e-1)
	logQ1        = f32(-2.12194440e-4)
	logQ2        = f32(0.693359375)

	minusDP1 = f32(-0.78515625)
	minusDP2 = f32(-2.4187564849853515625e-4)
	minusDP3 = f32(-3.77489497744594108e-8)
	sinP0    = f32(-1.9515295891e-4)
	sinP1    = f32(8.3321608736e-3)
	sinP2    = f32(-1.6666654611e-1)
	cosP0    = f32(2.443315711809948e-005)
	cosP1    = f32(-1.388731625493765e-003)
	cosP2    = f32(4.166664568298827e-002)
	fourOvPi = f32(1.27323954473516)
)

const (
	minNormPos  = 0x00800000
	expMask     = 0x7f800000
	signMask    = 0x80000000
	halfBits    = 0x3f000000 // 0.5f
	float32NaN1 = 0xffffffff // what OR-ing an all-ones mask gives
)

// logf is log256_ps for one lane: NaN for x <= 0.
func logf(x float32) float32 {
	invalid := x <= 0
	if !(x > math.Float32frombits(minNormPos)) { // _mm256_max_ps(x, min_norm_pos) returns the 2nd operand unless x > it
		x = math.Float32frombits(minNormPos)
	}
	bits := math.Float32bits(x)
	imm0 := int32(bits >> 23)
	x = math.Float32frombits(bits&^expMask | halfBits)
	imm0 -= 0x7f
	e := float32(imm0)
	e = e + 1
	var tmp float32
	mask := x < cephesSQRTHF
	if mask {
		tmp = x
	}
	x = x - 1
	if mask {
		e = e - 1
	}
	x = x + tmp
	z := float32(x * x)
	y := fmaf(logP0, x, logP1)
	y = fmaf(y, x, logP2)
	y = fmaf(y, x, logP3)
	y = fmaf(y, x, logP4)
	y = fmaf(y, x, logP5)
	y = fmaf(y, x, logP6)
	y = fmaf(y, x, logP7)
	y = fmaf(y, x, logP8)
	y = float32(y * x)
	y = fmaf(y, z, float32(e*logQ1))
	y = fmaf(-z, 0.5, y)
	x = x + y
	x = fmaf(e, logQ2, x)
	if invalid {
		return math.Float32frombits(float32NaN1)
	}
	return x
}

// sincosf is sincos256_ps for one lane; valid (as torch's) for |x| < 8192.
func sincosf(x float32) (sin, cos float32) {
	bits := math.Float32bits(x)
	signSin := bits & signMask
	x = math.Float32frombits(bits &^ signMask)
	y := float32(x * fourOvPi)
	j := cvtt(y)
	j = (j + 1) &^ 1
	y = float32(j)
	j4 := j
	swapSin := uint32(j&4) << 29
	polyMask := j&2 == 0
	x = fmaf(y, minusDP1, x)
	x = fmaf(y, minusDP2, x)
	x = fmaf(y, minusDP3, x)
	j4 -= 2
	signCos := uint32(^j4&4) << 29
	signSin ^= swapSin

	z := float32(x * x)
	yc := fmaf(cosP0, z, cosP1)
	yc = fmaf(yc, z, cosP2)
	yc = float32(yc * z)
	yc = fmaf(yc, z, -float32(z*0.5))
	yc = yc + 1

	ys := fmaf(sinP0, z, sinP1)
	ys = fmaf(ys, z, sinP2)
	ys = float32(ys * z)
	ys = fmaf(ys, x, x)

	var ysin1, ysin2 float32 // the lanes of each polynomial selected for the sine
	if polyMask {
		ysin2 = ys
	} else {
		ysin1 = yc
	}
	ys = ys - ysin2
	yc = yc - ysin1
	s := ysin1 + ysin2
	c := yc + ys
	return math.Float32frombits(math.Float32bits(s) ^ signSin), math.Float32frombits(math.Float32bits(c) ^ signCos)
}

// cvtt is _mm256_cvttps_epi32 for one lane: truncation, 0x80000000 when out of range or NaN.
func cvtt(v float32) int32 {
	if v != v || v >= 2147483648 || v < -2147483648 {
		return math.MinInt32
	}
	return int32(v)
}

// fmaf is the correctly rounded single-precision a·b + c. The product of two float32 values is
// exact in float64 and the float64 sum can only be wrong for float32 when it lands exactly on a
// float32 rounding tie (or in the subnormal range); then the sum is rounded to odd instead,
// using the exact remainder from TwoSum, which makes the rounding to float32 correct.
func fmaf(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b))
	s := p + float64(c)
	// Not a tie and not below the float32 normal range (Inf and NaN included): float64 rounding
	// cannot have crossed a float32 boundary.
	if bits := math.Float64bits(s); bits&(1<<29-1) != 1<<28 && bits&(0x7ff<<52) >= (1023-126)<<52 {
		return float32(s)
	}
	return fmafRound(p, float64(c), s)
}

// fmafRound finishes fmaf for sums on a tie or in the subnormal range: round to odd in
// float64 with the exact remainder, then to float32.
func fmafRound(p, c, s float64) float32 {
	if s == 0 || math.IsInf(s, 0) || s != s {
		return float32(s)
	}
	bv := s - p
	e := (p - (s - bv)) + (c - bv)
	if bits := math.Float64bits(s); e != 0 && bits&1 == 0 {
		if (e > 0) == (s > 0) {
			bits++ // odd neighbour away from zero
		} else {
			bits-- // odd neighbour towards zero
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}
