package sampling

import "math"

// Single-precision log and exp of glibc (2.27 and later, x86-64), which torch's scalar CPU
// kernels call through std::log and std::exp: logit and sigmoid of a 0-dim float32 tensor
// (k-diffusion's sigma_to_half_log_snr and half_log_snr_to_sigma for a CONST model) run
// log(x/(1 − x)) and 1/(1 + exp(−x)) element by element. Both are table-driven double-precision
// evaluations (a 16-entry table for log, 32 entries of 2^(i/32) for exp) that are correctly
// rounded in all but a few cases per thousand; reproducing them makes those values bit-identical
// where a correctly rounded log or exp is not. glibc's x86-64 build selects variants compiled
// with fused multiply-adds on CPUs that have them (every AVX2 CPU): the products feeding an
// add below are fused accordingly (math.FMA), the others rounded on their own (on the ten
// million inputs of each test the unfused evaluation agrees too).

// glibcLogfTab holds, per subinterval i of [0x3f330000, 2·0x3f330000) (as float32 bits), 1/c
// and log(c) for a c near its centre, as glibc's logf table (__logf_data) has them.
var glibcLogfTab = [16][2]float64{
	{0x1.661ec79f8f3bep+0, -0x1.57bf7808caadep-2},
	{0x1.571ed4aaf883dp+0, -0x1.2bef0a7c06ddbp-2},
	{0x1.49539f0f010bp+0, -0x1.01eae7f513a67p-2},
	{0x1.3c995b0b80385p+0, -0x1.b31d8a68224e9p-3},
	{0x1.30d190c8864a5p+0, -0x1.6574f0ac07758p-3},
	{0x1.25e227b0b8eap+0, -0x1.1aa2bc79c81p-3},
	{0x1.1bb4a4a1a343fp+0, -0x1.a4e76ce8c0e5ep-4},
	{0x1.12358f08ae5bap+0, -0x1.1973c5a611cccp-4},
	{0x1.0953f419900a7p+0, -0x1.252f438e10c1ep-5},
	{0x1p+0, 0},
	{0x1.e608cfd9a47acp-1, 0x1.aa5aa5df25984p-5},
	{0x1.ca4b31f026aap-1, 0x1.c5e53aa362eb4p-4},
	{0x1.b2036576afce6p-1, 0x1.526e57720db08p-3},
	{0x1.9c2d163a1aa2dp-1, 0x1.bc2860d22477p-3},
	{0x1.886e6037841edp-1, 0x1.1058bc8a07ee1p-2},
	{0x1.767dcf5534862p-1, 0x1.4043057b6ee09p-2},
}

const (
	glibcLogfLn2 = 0x1.62e42fefa39efp-1
	glibcLogfA0  = -0x1.00ea348b88334p-2
	glibcLogfA1  = 0x1.5575b0be00b6ap-2
	glibcLogfA2  = -0x1.ffffef20a4123p-2
	glibcLogfOff = 0x3f330000
)

// glibcLogf is glibc's logf: log(x) = log1p(z/c − 1) + log(c) + k·ln 2 for x = 2^k·z, with a
// degree-4 polynomial for log1p over the subinterval of z.
func glibcLogf(x float32) float32 {
	ix := math.Float32bits(x)
	if ix == 0x3f800000 {
		return 0
	}
	if ix-0x00800000 >= 0x7f800000-0x00800000 {
		switch {
		case ix*2 == 0:
			return float32(math.Inf(-1))
		case ix == 0x7f800000:
			return x
		case ix&0x80000000 != 0 || ix*2 >= 0xff000000:
			return float32(math.NaN())
		}
		ix = math.Float32bits(x*0x1p23) - 23<<23 // subnormal: normalise
	}
	tmp := ix - glibcLogfOff
	i := (tmp >> (23 - 4)) % 16
	k := int32(tmp) >> 23
	z := float64(math.Float32frombits(ix - tmp&(0x1ff<<23)))
	invc, logc := glibcLogfTab[i][0], glibcLogfTab[i][1]
	r := math.FMA(z, invc, -1)
	y0 := math.FMA(float64(k), glibcLogfLn2, logc)
	r2 := float64(r * r)
	y := math.FMA(glibcLogfA1, r, glibcLogfA2)
	y = math.FMA(glibcLogfA0, r2, y)
	y = math.FMA(y, r2, y0+r)
	return float32(y)
}

const (
	glibcExpfInvLn2N = 0x1.71547652b82fep+0 * 32
	glibcExpfShift   = 0x1.8p+52
	glibcExpfC0      = 0x1.c6af84b912394p-5 / 32 / 32 / 32
	glibcExpfC1      = 0x1.ebfce50fac4f3p-3 / 32 / 32
	glibcExpfC2      = 0x1.62e42ff0c52d6p-1 / 32
)

// glibcExp2Tab is bits(2^(i/32)) − i<<47, so that adding k<<47 gives bits(2^(k/32)).
var glibcExp2Tab = [32]uint64{
	0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
	0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
	0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
	0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
	0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
	0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
	0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
	0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
}

// glibcExpf is glibc's expf: x·32/ln 2 = k + r, exp(x) = 2^(k/32)·2^(r/32) with a cubic for
// 2^(r/32).
func glibcExpf(x float32) float32 {
	xd := float64(x)
	if abstop := math.Float32bits(x) >> 20 & 0x7ff; abstop >= math.Float32bits(88)>>20 {
		switch {
		case math.IsInf(xd, -1):
			return 0
		case abstop >= 0x7f8: // +Inf or NaN
			return x + x
		case x > 0x1.62e42ep6:
			return float32(math.Inf(1))
		case x < -0x1.9fe368p6:
			return 0
		}
	}
	z := float64(glibcExpfInvLn2N * xd)
	kd := z + glibcExpfShift
	ki := math.Float64bits(kd)
	kd -= glibcExpfShift
	r := z - kd
	s := math.Float64frombits(glibcExp2Tab[ki%32] + ki<<47)
	zz := math.FMA(glibcExpfC0, r, glibcExpfC1)
	r2 := float64(r * r)
	y := math.FMA(glibcExpfC2, r, 1)
	y = math.FMA(zz, r2, y)
	return float32(y * s)
}
