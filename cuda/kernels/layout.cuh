// layout.cuh: strided N-d iteration shared by the element-wise and row kernels. The Go side
// (cuda/layout.go) packs these structs byte for byte; TestKernelSignatures checks their
// sizes against the PTX.
#pragma once
#include "prelude.cuh"

#define MAXR 8

// ND describes an iteration over a shape shared by up to three operands, each with its own
// element strides (0 where it broadcasts). Dimensions are coalesced on the host, so rank is
// small; n is the element count (< 2^31).
struct ND {
  i64 str[3][MAXR];
  int shape[MAXR];
  int rank;
  int n;
};

// nd_offsets adds to off[0..nops) the offsets of linear element i.
template <int NOPS>
DEV void nd_offsets(const ND &nd, i64 i, i64 *off) {
  u32 r = (u32)i;
#pragma unroll
  for (int d = MAXR - 1; d >= 0; --d) {
    if (d < nd.rank) {
      u32 s = (u32)nd.shape[d];
      u32 c = r % s;
      r /= s;
#pragma unroll
      for (int k = 0; k < NOPS; ++k) off[k] += (i64)c * nd.str[k][d];
    }
  }
}

// Rows describes the rows (all dimensions but the last) of an input x and output y of the
// same shape; the last dimension has length d and strides xlast, ylast.
struct Rows {
  i64 xs[MAXR];
  i64 ys[MAXR];
  i64 xlast, ylast;
  int shape[MAXR];
  int rank;  // number of outer dimensions
  int rows;
  int d;
  int pad_;
};

DEV void row_offsets(const Rows &r, int row, i64 *xo, i64 *yo) {
  u32 q = (u32)row;
  i64 a = 0, b = 0;
#pragma unroll
  for (int k = MAXR - 1; k >= 0; --k) {
    if (k < r.rank) {
      u32 s = (u32)r.shape[k];
      u32 c = q % s;
      q /= s;
      a += (i64)c * r.xs[k];
      b += (i64)c * r.ys[k];
    }
  }
  *xo = a;
  *yo = b;
}
