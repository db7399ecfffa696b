// norm.cu: RMSNorm, LayerNorm and softmax over the last dimension (one warp per row, sums in
// double like the CPU backend), and GroupNorm as a two-pass reduction over partial sums.
#pragma once
#include "layout.cuh"
#include "math.cuh"

#define ROW_WARPS 4  // rows per block; blockDim.x == 32 * ROW_WARPS

KERNEL row_rmsnorm(Rows r, const void *x, int xdt, void *y, int ydt, const void *w, int wdt,
                   i64 ws, float eps) {
#pragma clang fp contract(off)
  int row = blockIdx.x * ROW_WARPS + warp_id();
  if (row >= r.rows) return;  // whole warps leave together
  int lane = lane_id();
  i64 xo, yo;
  row_offsets(r, row, &xo, &yo);
  double ss = 0;
  for (int c = lane; c < r.d; c += 32) {
    double v = (double)ldf(x, xdt, xo + c * r.xlast);
    ss += v * v;
  }
  ss = warp_sum_d(ss);
  float inv = (float)(1.0 / __builtin_sqrt(ss / (double)r.d + (double)eps));
  for (int c = lane; c < r.d; c += 32) {
    float v = ldf(x, xdt, xo + c * r.xlast) * inv;
    if (w) v = v * ldf(w, wdt, c * ws);
    stf(y, ydt, yo + c * r.ylast, v);
  }
}

KERNEL row_layernorm(Rows r, const void *x, int xdt, void *y, int ydt, const void *w, int wdt,
                     i64 ws, const void *b, int bdt, i64 bs, float eps) {
#pragma clang fp contract(off)
  int row = blockIdx.x * ROW_WARPS + warp_id();
  if (row >= r.rows) return;
  int lane = lane_id();
  i64 xo, yo;
  row_offsets(r, row, &xo, &yo);
  double s = 0;
  for (int c = lane; c < r.d; c += 32) s += (double)ldf(x, xdt, xo + c * r.xlast);
  double mean = warp_sum_d(s) / (double)r.d;
  double ss = 0;
  for (int c = lane; c < r.d; c += 32) {
    double dv = (double)ldf(x, xdt, xo + c * r.xlast) - mean;
    ss += dv * dv;
  }
  double rstd = 1.0 / __builtin_sqrt(warp_sum_d(ss) / (double)r.d + (double)eps);
  for (int c = lane; c < r.d; c += 32) {
    float v = (float)(((double)ldf(x, xdt, xo + c * r.xlast) - mean) * rstd);
    if (w) v = v * ldf(w, wdt, c * ws);
    if (b) v = v + ldf(b, bdt, c * bs);
    stf(y, ydt, yo + c * r.ylast, v);
  }
}

KERNEL row_softmax(Rows r, const void *x, int xdt, void *y, int ydt) {
#pragma clang fp contract(off)
  int row = blockIdx.x * ROW_WARPS + warp_id();
  if (row >= r.rows) return;
  int lane = lane_id();
  i64 xo, yo;
  row_offsets(r, row, &xo, &yo);
  float m = -F32_INF;
  for (int c = lane; c < r.d; c += 32) {
    float v = ldf(x, xdt, xo + c * r.xlast);
    m = v > m ? v : m;  // NaN propagates through the sum below, as on the CPU
  }
  m = warp_max(m);
  if (m == -F32_INF) {  // every entry -Inf: NaN, as torch
    for (int c = lane; c < r.d; c += 32) stf(y, ydt, yo + c * r.ylast, F32_NAN);
    return;
  }
  double s = 0;
  for (int c = lane; c < r.d; c += 32) s += exp_d((double)(ldf(x, xdt, xo + c * r.xlast) - m));
  double inv = 1.0 / warp_sum_d(s);
  for (int c = lane; c < r.d; c += 32) {
    float e = (float)exp_d((double)(ldf(x, xdt, xo + c * r.xlast) - m));
    stf(y, ydt, yo + c * r.ylast, (float)((double)e * inv));
  }
}

// ---- GroupNorm on x viewed as [N, C, S] ----

#define GN_THREADS 256

DEV double block_sum_d(double v) {
  __shared__ double part[GN_THREADS / 32];
  v = warp_sum_d(v);
  if (lane_id() == 0) part[warp_id()] = v;
  __syncthreads();
  double t = 0;
  for (int i = 0; i < (int)(blockDim.x >> 5); ++i) t += part[i];
  __syncthreads();
  return t;
}

// gn_reduce: block (ng, split) sums its share of group ng = n*groups+g: x (mode 0) or
// (x - mean)² (mode 1, mean = stats[2*ng]) into part[ng*splits + split].
KERNEL gn_reduce(const void *x, int xdt, i64 s0, i64 s1, i64 s2, int C, int S, int groups,
                 int splits, int mode, const double *stats, double *part) {
  int ng = blockIdx.x, split = blockIdx.y;
  int n = ng / groups, g = ng % groups, cg = C / groups;
  i64 count = (i64)cg * S;
  i64 per = (count + splits - 1) / splits;
  i64 lo = (i64)split * per, hi = lo + per < count ? lo + per : count;
  double mean = mode ? stats[2 * ng] : 0.0;
  double acc = 0;
  for (i64 e = lo + threadIdx.x; e < hi; e += blockDim.x) {
    int ch = g * cg + (int)(e / S);
    i64 p = e % S;
    double v = (double)ldf(x, xdt, n * s0 + ch * s1 + p * s2);
    if (mode) {
      v -= mean;
      v *= v;
    }
    acc += v;
  }
  acc = block_sum_d(acc);
  if (threadIdx.x == 0) part[ng * splits + split] = acc;
}

// gn_finalize: stats[2*ng] = mean (mode 0) or stats[2*ng+1] = 1/sqrt(var + eps) (mode 1).
KERNEL gn_finalize(const double *part, int splits, int ngroups, double count, int mode, float eps,
                   double *stats) {
  GRID_LOOP(ng, ngroups) {
    double s = 0;
    for (int i = 0; i < splits; ++i) s += part[ng * splits + i];
    if (mode == 0)
      stats[2 * ng] = s / count;
    else
      stats[2 * ng + 1] = 1.0 / __builtin_sqrt(s / count + (double)eps);
  }
}

struct GNApply {
  i64 xs[3], ys[3];
  i64 ws, bs;
  int N, C, S, groups;
  int xdt, ydt, wdt, bdt;
};

KERNEL gn_apply(GNApply a, const void *x, void *y, const double *stats, const void *w,
                const void *b) {
#pragma clang fp contract(off)
  i64 total = (i64)a.N * a.C * a.S;
  int cg = a.C / a.groups;
  GRID_LOOP(e, total) {
    i64 p = e % a.S;
    int ch = (int)((e / a.S) % a.C);
    int n = (int)(e / ((i64)a.S * a.C));
    int ng = n * a.groups + ch / cg;
    double v = (double)ldf(x, a.xdt, n * a.xs[0] + ch * a.xs[1] + p * a.xs[2]);
    float o = (float)((v - stats[2 * ng]) * stats[2 * ng + 1]);
    if (w) o = o * ldf(w, a.wdt, ch * a.ws);
    if (b) o = o + ldf(b, a.bdt, ch * a.bs);
    stf(y, a.ydt, n * a.ys[0] + ch * a.ys[1] + p * a.ys[2], o);
  }
}
