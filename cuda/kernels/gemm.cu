// gemm.cu: the built-in matrix product (used when cuBLASLt is absent, for operand layouts it
// cannot take, and by the emulator) and im2col for convolutions.
//
// gemm_simt: C[M, N] = A[M, K]·B[K, N] (+ bias[N]) (+ C when accumulate), float accumulation,
// any element strides and dtypes, batched over blockIdx.z with up to 6 broadcast batch
// dimensions. 64×64 tiles, 16-deep k steps, 256 threads with 4×4 outputs each.
#pragma once
#include "math.cuh"

#define GEMM_BRANK 6

struct GemmArgs {
  i64 a_rs, a_cs, b_ks, b_ns, c_rs, c_cs, bias_s;
  i64 bstr[3][GEMM_BRANK];  // batch strides of A, B, C
  int bshape[GEMM_BRANK];
  int brank, M, N, K;
  int adt, bdt, cdt, biasdt;
  int accumulate, has_bias;
};

KERNEL __launch_bounds__(256) gemm_simt(GemmArgs g, const void *A, const void *B, void *C,
                                        const void *bias) {
  __shared__ float As[16][64 + 4];
  __shared__ float Bs[16][64 + 4];
  i64 ao = 0, bo = 0, co = 0;
  u32 z = blockIdx.z;
#pragma unroll
  for (int d = GEMM_BRANK - 1; d >= 0; --d) {
    if (d < g.brank) {
      u32 s = (u32)g.bshape[d], c = z % s;
      z /= s;
      ao += (i64)c * g.bstr[0][d];
      bo += (i64)c * g.bstr[1][d];
      co += (i64)c * g.bstr[2][d];
    }
  }
  int m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
  int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  bool bk_fast = g.b_ks == 1;
  for (int k0 = 0; k0 < g.K; k0 += 16) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      int e = tid + 256 * q;
      int mm = e / 16, kk = e % 16;
      int m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < g.M && k < g.K) ? ldf(A, g.adt, ao + m * g.a_rs + k * g.a_cs) : 0.0f;
      int nn, kb;
      if (bk_fast) {
        nn = e / 16;
        kb = e % 16;
      } else {
        kb = e / 64;
        nn = e % 64;
      }
      int n = n0 + nn, k2 = k0 + kb;
      Bs[kb][nn] = (n < g.N && k2 < g.K) ? ldf(B, g.bdt, bo + k2 * g.b_ks + n * g.b_ns) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = __builtin_fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int m = m0 + ty + 16 * i;
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int n = n0 + tx + 16 * j;
      if (n >= g.N) continue;
      float v = acc[i][j];
      if (g.has_bias) v += ldf(bias, g.biasdt, n * g.bias_s);
      i64 ci = co + m * g.c_rs + n * g.c_cs;
      if (g.accumulate) v += ldf(C, g.cdt, ci);
      stf(C, g.cdt, ci, v);
    }
  }
}

struct Im2col {
  i64 xs[4];  // strides of x over (n, c, h, w)
  int C, H, W, KH, KW, sh, sw, pt, pl, OW;
  int p0, P, n, xdt, cdt, pad_;
};

// im2col writes col[p][kk] (row-major [P, C·KH·KW]) for the output pixels p0..p0+P-1 of image
// n: kk = (channel, ky, kx); taps outside the image read as zero padding.
KERNEL im2col(Im2col a, const void *x, void *col) {
  int khw = a.KH * a.KW;
  i64 K = (i64)a.C * khw;
  GRID_LOOP(e, (i64)a.P * K) {
    int p = (int)(e / K), kk = (int)(e % K);
    int ci = kk / khw, r = kk % khw, ky = r / a.KW, kx = r % a.KW;
    int pix = a.p0 + p, oy = pix / a.OW, ox = pix % a.OW;
    int iy = oy * a.sh - a.pt + ky, ix = ox * a.sw - a.pl + kx;
    float v = 0.0f;
    if (iy >= 0 && iy < a.H && ix >= 0 && ix < a.W)
      v = ldf(x, a.xdt, a.n * a.xs[0] + ci * a.xs[1] + iy * a.xs[2] + ix * a.xs[3]);
    stf(col, a.cdt, e, v);
  }
}
