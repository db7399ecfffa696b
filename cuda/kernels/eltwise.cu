// eltwise.cu: element-wise maps, binary ops with broadcasting, dtype conversion, the bf16
// splitting of f32 GEMM operands, and row gathers.
#pragma once
#include "layout.cuh"
#include "math.cuh"

// Map ops: 0 copies (converting the dtype); 1..12 are tensor.UnaryOp; 32 affine; 33 clamp.
enum {
  OP_COPY = 0, OP_NEG = 1, OP_ABS, OP_SQUARE, OP_SQRT, OP_RSQRT, OP_EXP, OP_TANH, OP_SIGMOID,
  OP_SILU, OP_RELU, OP_GELU_ERF, OP_GELU_TANH,
  OP_AFFINE = 32, OP_CLAMP = 33
};

DEV float apply_map(int op, float v, float p0, float p1) {
#pragma clang fp contract(off)
  double x = (double)v;
  switch (op) {
    case OP_COPY: return v;
    case OP_NEG: return -v;
    case OP_ABS: return fabs_f(v);
    case OP_SQUARE: return v * v;
    case OP_SQRT: return (float)__builtin_sqrt(x);
    case OP_RSQRT: return (float)(1.0 / __builtin_sqrt(x));
    case OP_EXP: return (float)exp_d(x);
    case OP_TANH: return (float)tanh_d(x);
    case OP_SIGMOID: return (float)(1.0 / (1.0 + exp_d(-x)));
    case OP_SILU: return (float)(x / (1.0 + exp_d(-x)));
    case OP_RELU: return v < 0.0f ? 0.0f : v;
    case OP_GELU_ERF: return (float)(0.5 * x * one_plus_erf(x * 0.7071067811865476));
    case OP_GELU_TANH:
      return (float)(0.5 * x * (1.0 + tanh_d(0.7978845608028654 * (x + 0.044715 * x * x * x))));
    case OP_AFFINE: {
      float m = v * p0;  // rounded, then added: as the CPU backend
      return m + p1;
    }
    case OP_CLAMP:
      if (v < p0) return p0;
      if (v > p1) return p1;
      return v;
  }
  return F32_NAN;
}

// ew_map: y = op(x), nd operands 0 = y, 1 = x.
KERNEL ew_map(ND nd, void *y, int ydt, const void *x, int xdt, int op, float p0, float p1) {
  GRID_LOOP(i, nd.n) {
    i64 off[2] = {0, 0};
    nd_offsets<2>(nd, i, off);
    stf(y, ydt, off[0], apply_map(op, ldf(x, xdt, off[1]), p0, p1));
  }
}

DEV float apply_bin(int op, float a, float b) {
  switch (op) {
    case 1: return a + b;
    case 2: return a - b;
    case 3: return a * b;
    case 4: return a / b;
    case 5: return go_max(a, b);
    case 6: return go_min(a, b);
  }
  return F32_NAN;
}

// ew_bin: y = a op b with broadcasting (op = tensor.BinaryOp), nd operands y, a, b.
KERNEL ew_bin(ND nd, void *y, int ydt, const void *a, int adt, const void *b, int bdt, int op) {
  GRID_LOOP(i, nd.n) {
    i64 off[3] = {0, 0, 0};
    nd_offsets<3>(nd, i, off);
    stf(y, ydt, off[0], apply_bin(op, ldf(a, adt, off[1]), ldf(b, bdt, off[2])));
  }
}

// split_bf16 writes x (nd operand 0, any layout) as 1 to 3 contiguous bf16 terms whose sum
// is x: with terms == 3 exactly (truncated high parts, then the exact remainder), with
// terms == 1 rounded to nearest. Used to run f32 × bf16 products on bf16 tensor cores.
KERNEL split_bf16(ND nd, const void *x, int xdt, u16 *o0, u16 *o1, u16 *o2, int terms) {
  GRID_LOOP(i, nd.n) {
    i64 off[1] = {0};
    nd_offsets<1>(nd, i, off);
    float v = ldf(x, xdt, off[0]);
    if (terms == 1) {
      o0[i] = f32_to_bf16(v);
      continue;
    }
    if (!is_finite(v)) {
      o0[i] = f32_to_bf16(v);
      o1[i] = 0;
      if (terms > 2) o2[i] = 0;
      continue;
    }
    u32 hi = f2u(v) & 0xffff0000u;
    float r = v - u2f(hi);  // exact
    if (terms == 2) {
      o0[i] = (u16)(hi >> 16);
      o1[i] = f32_to_bf16(r);
      continue;
    }
    u32 mid = f2u(r) & 0xffff0000u;
    float lo = r - u2f(mid);  // exact, at most 8 significant bits
    o0[i] = (u16)(hi >> 16);
    o1[i] = (u16)(mid >> 16);
    o2[i] = f32_to_bf16(lo);
  }
}

// gather_rows: y[i, :] = table[ids[i], :].
KERNEL gather_rows(const void *table, int tdt, i64 ts0, i64 ts1, const int *ids, int nids, int d,
                   void *y, int ydt, i64 ys0, i64 ys1) {
  GRID_LOOP(e, (i64)nids * d) {
    int i = (int)(e / d), c = (int)(e % d);
    stf(y, ydt, i * ys0 + c * ys1, ldf(table, tdt, (i64)ids[i] * ts0 + c * ts1));
  }
}
