#include "textflag.h"

// Constants of boxMullerAVX2 (float32 bit patterns of mathfun.go's values, and integer masks).
DATA bm_sqrthf<>+0(SB)/4, $0x3f3504f3
GLOBL bm_sqrthf<>(SB), RODATA|NOPTR, $4
DATA bm_logp0<>+0(SB)/4, $0x3d9021bb
GLOBL bm_logp0<>(SB), RODATA|NOPTR, $4
DATA bm_logp1<>+0(SB)/4, $0xbdebd1b8
GLOBL bm_logp1<>(SB), RODATA|NOPTR, $4
DATA bm_logp2<>+0(SB)/4, $0x3def251a
GLOBL bm_logp2<>(SB), RODATA|NOPTR, $4
DATA bm_logp3<>+0(SB)/4, $0xbdfe5d4f
GLOBL bm_logp3<>(SB), RODATA|NOPTR, $4
DATA bm_logp4<>+0(SB)/4, $0x3e11e9bf
GLOBL bm_logp4<>(SB), RODATA|NOPTR, $4
DATA bm_logp5<>+0(SB)/4, $0xbe2aae50
GLOBL bm_logp5<>(SB), RODATA|NOPTR, $4
DATA bm_logp6<>+0(SB)/4, $0x3e4cceac
GLOBL bm_logp6<>(SB), RODATA|NOPTR, $4
DATA bm_logp7<>+0(SB)/4, $0xbe7ffffc
GLOBL bm_logp7<>(SB), RODATA|NOPTR, $4
DATA bm_logp8<>+0(SB)/4, $0x3eaaaaaa
GLOBL bm_logp8<>(SB), RODATA|NOPTR, $4
DATA bm_logq1<>+0(SB)/4, $0xb95e8083
GLOBL bm_logq1<>(SB), RODATA|NOPTR, $4
DATA bm_logq2<>+0(SB)/4, $0x3f318000
GLOBL bm_logq2<>(SB), RODATA|NOPTR, $4
DATA bm_dp1<>+0(SB)/4, $0xbf490000
GLOBL bm_dp1<>(SB), RODATA|NOPTR, $4
DATA bm_dp2<>+0(SB)/4, $0xb97da000
GLOBL bm_dp2<>(SB), RODATA|NOPTR, $4
DATA bm_dp3<>+0(SB)/4, $0xb3222169
GLOBL bm_dp3<>(SB), RODATA|NOPTR, $4
DATA bm_sinp0<>+0(SB)/4, $0xb94ca1f9
GLOBL bm_sinp0<>(SB), RODATA|NOPTR, $4
DATA bm_sinp1<>+0(SB)/4, $0x3c08839e
GLOBL bm_sinp1<>(SB), RODATA|NOPTR, $4
DATA bm_sinp2<>+0(SB)/4, $0xbe2aaaa3
GLOBL bm_sinp2<>(SB), RODATA|NOPTR, $4
DATA bm_cosp0<>+0(SB)/4, $0x37ccf5ce
GLOBL bm_cosp0<>(SB), RODATA|NOPTR, $4
DATA bm_cosp1<>+0(SB)/4, $0xbab6061a
GLOBL bm_cosp1<>(SB), RODATA|NOPTR, $4
DATA bm_cosp2<>+0(SB)/4, $0x3d2aaaa5
GLOBL bm_cosp2<>(SB), RODATA|NOPTR, $4
DATA bm_fouropi<>+0(SB)/4, $0x3fa2f983
GLOBL bm_fouropi<>(SB), RODATA|NOPTR, $4
DATA bm_twopi<>+0(SB)/4, $0x40c90fdb
GLOBL bm_twopi<>(SB), RODATA|NOPTR, $4
DATA bm_one<>+0(SB)/4, $0x3f800000
GLOBL bm_one<>(SB), RODATA|NOPTR, $4
DATA bm_half<>+0(SB)/4, $0x3f000000
GLOBL bm_half<>(SB), RODATA|NOPTR, $4
DATA bm_minus2<>+0(SB)/4, $0xc0000000
GLOBL bm_minus2<>(SB), RODATA|NOPTR, $4
DATA bm_minnorm<>+0(SB)/4, $0x00800000
GLOBL bm_minnorm<>(SB), RODATA|NOPTR, $4
DATA bm_invmant<>+0(SB)/4, $0x807fffff
GLOBL bm_invmant<>(SB), RODATA|NOPTR, $4
DATA bm_i7f<>+0(SB)/4, $0x0000007f
GLOBL bm_i7f<>(SB), RODATA|NOPTR, $4
DATA bm_sign<>+0(SB)/4, $0x80000000
GLOBL bm_sign<>(SB), RODATA|NOPTR, $4
DATA bm_i1<>+0(SB)/4, $1
GLOBL bm_i1<>(SB), RODATA|NOPTR, $4
DATA bm_inv1<>+0(SB)/4, $0xfffffffe
GLOBL bm_inv1<>(SB), RODATA|NOPTR, $4
DATA bm_i2<>+0(SB)/4, $2
GLOBL bm_i2<>(SB), RODATA|NOPTR, $4
DATA bm_i4<>+0(SB)/4, $4
GLOBL bm_i4<>(SB), RODATA|NOPTR, $4

#define BC(c, r) VBROADCASTSS c<>(SB), r

// func boxMullerAVX2(d *float32, blocks int)
// Per block of 16 floats: the eight lanes of boxMuller16 (log256_ps, sincos256_ps) in the
// same operations as mathfun.go's logf and sincosf, which follow torch's AVX2 kernel. Go's
// operand order is reversed from Intel's: VSUBPS b, a, dst is dst = a − b;
// VFMADD213PS c, a, dst is dst = a·dst + c; VFMADD231PS b, a, dst is dst = a·b + dst.
TEXT ·boxMullerAVX2(SB), NOSPLIT, $0-16
	MOVQ d+0(FP), DI
	MOVQ blocks+8(FP), CX
	TESTQ CX, CX
	JLE done

loop:
	// u1 = 1 − d[0:8]
	BC(bm_one, Y15)
	VMOVUPS (DI), Y1
	VSUBPS Y1, Y15, Y0

	// ---- logf(Y0) -> Y0 ----
	VXORPS Y7, Y7, Y7
	VCMPPS $2, Y7, Y0, Y6          // invalid = x <= 0
	BC(bm_minnorm, Y15)
	VMAXPS Y15, Y0, Y0             // max(x, min_norm_pos)
	VPSRLD $23, Y0, Y1             // imm0
	BC(bm_invmant, Y15)
	VANDPS Y15, Y0, Y0
	BC(bm_half, Y15)
	VORPS Y15, Y0, Y0
	BC(bm_i7f, Y15)
	VPSUBD Y15, Y1, Y1             // imm0 − 0x7f
	VCVTDQ2PS Y1, Y1               // e
	BC(bm_one, Y14)
	VADDPS Y14, Y1, Y1             // e + 1
	BC(bm_sqrthf, Y15)
	VCMPPS $1, Y15, Y0, Y2         // mask = x < sqrthf
	VANDPS Y2, Y0, Y3              // tmp
	VSUBPS Y14, Y0, Y0             // x − 1
	VANDPS Y14, Y2, Y4
	VSUBPS Y4, Y1, Y1              // e − (1 & mask)
	VADDPS Y3, Y0, Y0              // x + tmp
	VMULPS Y0, Y0, Y5              // z = x·x
	BC(bm_logp0, Y3)
	BC(bm_logp1, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp2, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp3, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp4, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp5, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp6, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp7, Y15)
	VFMADD213PS Y15, Y0, Y3
	BC(bm_logp8, Y15)
	VFMADD213PS Y15, Y0, Y3
	VMULPS Y0, Y3, Y3              // y·x
	BC(bm_logq1, Y15)
	VMULPS Y15, Y1, Y4             // e·Q1
	VFMADD231PS Y5, Y3, Y4         // y·z + e·Q1
	BC(bm_half, Y15)
	VFNMADD231PS Y15, Y5, Y4       // y − z·0.5
	VADDPS Y4, Y0, Y0              // x + y
	BC(bm_logq2, Y15)
	VFMADD231PS Y15, Y1, Y0        // e·Q2 + x
	VORPS Y6, Y0, Y0               // NaN where invalid

	// radius = sqrt(−2·log u1)
	BC(bm_minus2, Y15)
	VMULPS Y15, Y0, Y0
	VSQRTPS Y0, Y14

	// theta = 2π·d[8:16]
	BC(bm_twopi, Y15)
	VMOVUPS 32(DI), Y1
	VMULPS Y1, Y15, Y0

	// ---- sincosf(Y0) -> sin Y0, cos Y1 ----
	BC(bm_sign, Y15)
	VANDPS Y15, Y0, Y2             // sign of sin
	VANDNPS Y0, Y15, Y0            // |x|
	BC(bm_fouropi, Y15)
	VMULPS Y15, Y0, Y3             // y = x·4/π
	VCVTTPS2DQ Y3, Y4              // j
	BC(bm_i1, Y15)
	VPADDD Y15, Y4, Y4
	BC(bm_inv1, Y15)
	VPAND Y15, Y4, Y4              // j = (j + 1) &^ 1
	VCVTDQ2PS Y4, Y3               // y = float(j)
	BC(bm_i4, Y15)
	VPAND Y15, Y4, Y5
	VPSLLD $29, Y5, Y5             // swap sign
	BC(bm_i2, Y15)
	VPAND Y15, Y4, Y6
	VPXOR Y7, Y7, Y7
	VPCMPEQD Y7, Y6, Y6            // poly mask: j & 2 == 0
	BC(bm_dp1, Y15)
	VFMADD231PS Y15, Y3, Y0
	BC(bm_dp2, Y15)
	VFMADD231PS Y15, Y3, Y0
	BC(bm_dp3, Y15)
	VFMADD231PS Y15, Y3, Y0
	BC(bm_i2, Y15)
	VPSUBD Y15, Y4, Y4             // j − 2
	BC(bm_i4, Y15)
	VPANDN Y15, Y4, Y4
	VPSLLD $29, Y4, Y4             // sign of cos
	VPXOR Y5, Y2, Y2               // sign of sin ^= swap
	VMULPS Y0, Y0, Y7              // z = x·x
	BC(bm_cosp0, Y8)
	BC(bm_cosp1, Y15)
	VFMADD213PS Y15, Y7, Y8
	BC(bm_cosp2, Y15)
	VFMADD213PS Y15, Y7, Y8
	VMULPS Y7, Y8, Y8              // yc·z
	BC(bm_half, Y15)
	VMULPS Y15, Y7, Y9             // z·0.5
	VFMSUB231PS Y7, Y8, Y9         // yc·z − z·0.5
	BC(bm_one, Y15)
	VADDPS Y15, Y9, Y8             // + 1
	BC(bm_sinp0, Y10)
	BC(bm_sinp1, Y15)
	VFMADD213PS Y15, Y7, Y10
	BC(bm_sinp2, Y15)
	VFMADD213PS Y15, Y7, Y10
	VMULPS Y7, Y10, Y10            // ys·z
	VFMADD213PS Y0, Y0, Y10        // ys·x + x
	VANDPS Y6, Y10, Y11            // ysin2
	VANDNPS Y8, Y6, Y12            // ysin1
	VSUBPS Y11, Y10, Y10           // ys − ysin2
	VSUBPS Y12, Y8, Y8             // yc − ysin1
	VADDPS Y11, Y12, Y13           // s = ysin1 + ysin2
	VADDPS Y10, Y8, Y1             // c = yc + ys
	VXORPS Y2, Y13, Y0             // sin
	VXORPS Y4, Y1, Y1              // cos

	VMULPS Y1, Y14, Y1
	VMOVUPS Y1, (DI)               // radius·cos
	VMULPS Y0, Y14, Y0
	VMOVUPS Y0, 32(DI)             // radius·sin
	ADDQ $64, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

DATA bm_tmask1<>+0(SB)/4, $0x9d2c5680
GLOBL bm_tmask1<>(SB), RODATA|NOPTR, $4
DATA bm_tmask2<>+0(SB)/4, $0xefc60000
GLOBL bm_tmask2<>(SB), RODATA|NOPTR, $4
DATA bm_low24<>+0(SB)/4, $0x00ffffff
GLOBL bm_low24<>(SB), RODATA|NOPTR, $4
DATA bm_inv24<>+0(SB)/4, $0x33800000
GLOBL bm_inv24<>(SB), RODATA|NOPTR, $4

// func uniform24AVX2(dst *float32, src *uint32, blocks int)
// dst[i] = float32(temper(src[i]) & 0xffffff) · 2^−24 for 8·blocks values (mt19937.fillUniform24).
TEXT ·uniform24AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JLE udone
	BC(bm_tmask1, Y10)
	BC(bm_tmask2, Y11)
	BC(bm_low24, Y12)
	BC(bm_inv24, Y13)

uloop:
	VMOVDQU (SI), Y0
	VPSRLD $11, Y0, Y1
	VPXOR Y1, Y0, Y0               // y ^= y >> 11
	VPSLLD $7, Y0, Y1
	VPAND Y10, Y1, Y1
	VPXOR Y1, Y0, Y0               // y ^= (y << 7) & 0x9d2c5680
	VPSLLD $15, Y0, Y1
	VPAND Y11, Y1, Y1
	VPXOR Y1, Y0, Y0               // y ^= (y << 15) & 0xefc60000
	VPSRLD $18, Y0, Y1
	VPXOR Y1, Y0, Y0               // y ^= y >> 18
	VPAND Y12, Y0, Y0
	VCVTDQ2PS Y0, Y0               // exact: below 2^24
	VMULPS Y13, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ uloop

udone:
	VZEROUPPER
	RET
