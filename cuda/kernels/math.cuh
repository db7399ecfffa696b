// math.cuh: element types and the math library of the kernels (no libdevice is linked, so
// everything here is written out). Conversions are bit-exact ports of tensor/convert.go;
// exp/tanh/erf work in double precision so that element-wise results round like the CPU
// backend's float64 arithmetic, and exp_f is an accurate single-precision exp for the hot
// loops (attention).
#pragma once
#include "prelude.cuh"

// Element types: the values of tensor.DType.
enum { DT_F32 = 1, DT_F16 = 2, DT_BF16 = 3, DT_E4M3 = 4, DT_E5M2 = 5 };

DEV u32 f2u(float f) { return __builtin_bit_cast(u32, f); }
DEV float u2f(u32 u) { return __builtin_bit_cast(float, u); }
DEV u64 d2u(double f) { return __builtin_bit_cast(u64, f); }
DEV double u2d(u64 u) { return __builtin_bit_cast(double, u); }

#define F32_INF u2f(0x7f800000u)
#define F32_NAN u2f(0x7fc00000u)
#define F64_INF u2d(0x7ff0000000000000ull)

DEV bool is_nan(float f) { return (f2u(f) & 0x7fffffffu) > 0x7f800000u; }
DEV bool is_finite(float f) { return (f2u(f) & 0x7f800000u) != 0x7f800000u; }
DEV float fabs_f(float f) { return u2f(f2u(f) & 0x7fffffffu); }
DEV double fabs_d(double f) { return u2d(d2u(f) & 0x7fffffffffffffffull); }

// ---- conversions (tensor/convert.go) ----

DEV float bf16_to_f32(u16 h) { return u2f((u32)h << 16); }

DEV u16 f32_to_bf16(float f) {
  u32 b = f2u(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (u16)((b >> 16) | 0x0040u);
  b += 0x7fffu + ((b >> 16) & 1u);
  return (u16)(b >> 16);
}

DEV float f16_to_f32(u16 h) {
  u32 sign = (u32)(h & 0x8000u) << 16;
  u32 e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (e == 0x1f) return u2f(sign | 0x7f800000u | (man << 13));
  if (e == 0) return u2f(sign | f2u((float)man * (1.0f / 16777216.0f)));
  return u2f(sign | ((e + 112u) << 23) | (man << 13));
}

// encode_narrow rounds f to a narrow binary format (round to nearest even), handling
// subnormals and overflow like tensor.encodeNarrow.
DEV u32 encode_narrow(float f, u32 nbits, u32 man_bits, int bias, u32 max_mag, u32 inf,
                      u32 nan) {
  u32 b = f2u(f);
  u32 sign = (b >> 31) << (nbits - 1);
  u32 a = b & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | nan;
  if (a == 0x7f800000u) return sign | (inf != 0 ? inf : nan);
  int e = (int)(a >> 23);
  u64 man = a & 0x7fffffu;
  if (e == 0)
    e = 1;
  else
    man |= 1u << 23;
  int te = e - 127 + bias;
  int shift = 23 - (int)man_bits;
  u32 base = 0;
  if (te < 1)
    shift += 1 - te;
  else
    base = (u32)(te - 1) << man_bits;
  if (shift > 40) shift = 40;
  u64 q = man >> shift;
  u64 rem = man & ((1ull << shift) - 1);
  u64 half = 1ull << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) q++;
  u32 mag = base + (u32)q;
  if (mag > max_mag) return sign | (inf != 0 ? inf : nan);
  return sign | mag;
}

DEV u16 f32_to_f16(float f) { return (u16)encode_narrow(f, 16, 10, 15, 0x7bff, 0x7c00, 0x7e00); }
DEV u8 f32_to_e4m3(float f) { return (u8)encode_narrow(f, 8, 3, 7, 0x7e, 0, 0x7f); }
DEV u8 f32_to_e5m2(float f) { return (u8)encode_narrow(f, 8, 2, 15, 0x7b, 0x7c, 0x7f); }

// decode8 widens an 8-bit float (exact).
DEV float decode8(u32 v, u32 man_bits, int bias, u32 max_mag, u32 inf) {
  u32 mag = v & 0x7fu;
  float f;
  if (inf != 0 && mag == inf) {
    f = F32_INF;
  } else if ((inf != 0 && mag > inf) || (inf == 0 && mag > max_mag)) {
    f = F32_NAN;
  } else {
    u32 e = mag >> man_bits, m = mag & ((1u << man_bits) - 1);
    if (e == 0)  // subnormal: m · 2^(1-bias-man_bits), exact
      f = (float)m * u2f((u32)(127 + 1 - bias - (int)man_bits) << 23);
    else
      f = u2f(((u32)((int)e - bias + 127) << 23) | (m << (23 - man_bits)));
  }
  return (v & 0x80u) ? -f : f;
}
DEV float e4m3_to_f32(u8 v) { return decode8(v, 3, 7, 0x7e, 0); }
DEV float e5m2_to_f32(u8 v) { return decode8(v, 2, 15, 0x7b, 0x7c); }

// ldf reads element i (in elements) of an array of dtype dt, widened to float.
DEV float ldf(const void *p, int dt, i64 i) {
  switch (dt) {
    case DT_F32: return ((const float *)p)[i];
    case DT_BF16: return bf16_to_f32(((const u16 *)p)[i]);
    case DT_F16: return f16_to_f32(((const u16 *)p)[i]);
    case DT_E4M3: return e4m3_to_f32(((const u8 *)p)[i]);
    default: return e5m2_to_f32(((const u8 *)p)[i]);
  }
}

// stf writes element i of an array of dtype dt, rounding to nearest even.
DEV void stf(void *p, int dt, i64 i, float v) {
  switch (dt) {
    case DT_F32: ((float *)p)[i] = v; break;
    case DT_BF16: ((u16 *)p)[i] = f32_to_bf16(v); break;
    case DT_F16: ((u16 *)p)[i] = f32_to_f16(v); break;
    case DT_E4M3: ((u8 *)p)[i] = f32_to_e4m3(v); break;
    default: ((u8 *)p)[i] = f32_to_e5m2(v); break;
  }
}

// stf_out is stf as a call, for epilogues that would otherwise inline one switch per element.
static __device__ __attribute__((noinline)) void stf_out(void *p, int dt, i64 i, float v) {
  stf(p, dt, i, v);
}

// ---- double-precision functions ----

DEV double pow2_d(int e) { return u2d((u64)(e + 1023) << 52); }  // e in [-1022, 1023]

// exp_d: Cody-Waite reduction by ln 2 and a degree-13 Taylor polynomial on |r| <= ln2/2
// (truncation error below 2^-57); about 1 ulp.
DEV double exp_d(double x) {
  if (x != x) return x;
  if (x > 709.782712893384) return F64_INF;
  if (x < -745.1332191019412) return 0.0;
  double k = __builtin_rint(x * 1.4426950408889634);
  double r = __builtin_fma(k, -6.93147180369123816490e-01, x);
  r = __builtin_fma(k, -1.90821492927058770002e-10, r);
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = __builtin_fma(p, r, 1.0 / 479001600.0);
  p = __builtin_fma(p, r, 1.0 / 39916800.0);
  p = __builtin_fma(p, r, 1.0 / 3628800.0);
  p = __builtin_fma(p, r, 1.0 / 362880.0);
  p = __builtin_fma(p, r, 1.0 / 40320.0);
  p = __builtin_fma(p, r, 1.0 / 5040.0);
  p = __builtin_fma(p, r, 1.0 / 720.0);
  p = __builtin_fma(p, r, 1.0 / 120.0);
  p = __builtin_fma(p, r, 1.0 / 24.0);
  p = __builtin_fma(p, r, 1.0 / 6.0);
  p = __builtin_fma(p, r, 0.5);
  p = __builtin_fma(p, r, 1.0);
  p = __builtin_fma(p, r, 1.0);
  int ki = (int)k;
  int k1 = ki / 2;
  return p * pow2_d(k1) * pow2_d(ki - k1);
}

// expm1_d: exp(x)-1 without cancellation near 0.
DEV double expm1_d(double x) {
  if (fabs_d(x) >= 0.34) return exp_d(x) - 1.0;
  double p = 1.0 / 6227020800.0;  // Taylor to x^14/14!, error below 2^-60 here
  p = __builtin_fma(p, x, 1.0 / 479001600.0);
  p = __builtin_fma(p, x, 1.0 / 39916800.0);
  p = __builtin_fma(p, x, 1.0 / 3628800.0);
  p = __builtin_fma(p, x, 1.0 / 362880.0);
  p = __builtin_fma(p, x, 1.0 / 40320.0);
  p = __builtin_fma(p, x, 1.0 / 5040.0);
  p = __builtin_fma(p, x, 1.0 / 720.0);
  p = __builtin_fma(p, x, 1.0 / 120.0);
  p = __builtin_fma(p, x, 1.0 / 24.0);
  p = __builtin_fma(p, x, 1.0 / 6.0);
  p = __builtin_fma(p, x, 0.5);
  p = __builtin_fma(p, x, 1.0);
  return p * x;
}

DEV double tanh_d(double x) {
  if (x != x) return x;
  double a = fabs_d(x);
  double t;
  if (a > 22.0) {
    t = 1.0;
  } else {
    double e = expm1_d(2.0 * a);
    t = e / (e + 2.0);
  }
  return x < 0 ? -t : t;
}

// erf by its Maclaurin series (|x| < 2.5, where it loses at most a few bits to
// cancellation) and erfc by its continued fraction (x >= 2.5).
DEV double erf_series(double x) {
  double x2 = x * x, term = x, sum = x;
  for (int n = 1; n < 100; ++n) {
    term *= -x2 / (double)n;
    double t = term / (double)(2 * n + 1);
    sum += t;
    if (fabs_d(t) < 1e-17 * fabs_d(sum)) break;
  }
  return sum * 1.1283791670955126;  // 2/sqrt(pi)
}
DEV double erfc_cf(double x) {  // x >= 2.5
  double t = x;
  for (int n = 60; n >= 1; --n) t = x + (0.5 * (double)n) / t;
  return exp_d(-x * x) / (t * 1.7724538509055160);  // sqrt(pi)
}
// erfc_pos: erfc(y) for y >= 0.
DEV double erfc_pos(double y) { return y < 2.5 ? 1.0 - erf_series(y) : erfc_cf(y); }
DEV double erf_d(double x) {
  if (x != x) return x;
  double a = fabs_d(x);
  double r = a < 2.5 ? erf_series(a) : 1.0 - erfc_cf(a);
  return x < 0 ? -r : r;
}
// one_plus_erf computes 1 + erf(z) without cancellation for negative z.
DEV double one_plus_erf(double z) {
  if (z != z) return z;
  return z >= 0 ? 1.0 + erf_d(z) : erfc_pos(-z);
}

// ---- single precision ----

// exp_f: Cody-Waite reduction and a degree-7 polynomial; within 2 ulp of exp.
DEV float exp_f(float x) {
  if (x != x) return x;
  if (x > 88.72283905f) return F32_INF;
  if (x < -103.9720840f) return 0.0f;
  float k = __builtin_rintf(x * 1.44269504089f);
  float r = __builtin_fmaf(k, -0.693145751953125f, x);
  r = __builtin_fmaf(k, -1.428606820309417e-06f, r);
  float p = 1.0f / 5040.0f;
  p = __builtin_fmaf(p, r, 1.0f / 720.0f);
  p = __builtin_fmaf(p, r, 1.0f / 120.0f);
  p = __builtin_fmaf(p, r, 1.0f / 24.0f);
  p = __builtin_fmaf(p, r, 1.0f / 6.0f);
  p = __builtin_fmaf(p, r, 0.5f);
  p = __builtin_fmaf(p, r, 1.0f);
  p = __builtin_fmaf(p, r, 1.0f);
  int ki = (int)k;
  int k1 = ki / 2;
  return p * u2f((u32)(k1 + 127) << 23) * u2f((u32)(ki - k1 + 127) << 23);
}

// Go's max and min: NaN if either is NaN; max(-0, +0) = +0, min(-0, +0) = -0.
DEV float go_max(float a, float b) {
  if (is_nan(a) || is_nan(b)) return F32_NAN;
  if (a == b) return (f2u(a) >> 31) ? b : a;
  return a > b ? a : b;
}
DEV float go_min(float a, float b) {
  if (is_nan(a) || is_nan(b)) return F32_NAN;
  if (a == b) return (f2u(a) >> 31) ? a : b;
  return a < b ? a : b;
}
