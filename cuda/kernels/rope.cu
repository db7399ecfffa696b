// rope.cu: rotary position embedding on x [B, S, H, D] with cos/sin tables [S, D/2] or
// [1|B, S, D/2]; one thread per rotated pair, so in-place use is safe.
#pragma once
#include "math.cuh"

struct RopeArgs {
  i64 xs[4], ys[4];
  i64 cs[3], ss[3];  // table strides over (b, s, i); the b stride is 0 when shared
  int B, S, H, half;
  int mode;  // 1 interleaved (2i, 2i+1), 2 half (i, i+D/2)
  int xdt, ydt, cdt, sdt, pad_;
};

KERNEL rope(RopeArgs a, const void *x, void *y, const void *cosv, const void *sinv) {
#pragma clang fp contract(off)
  i64 total = (i64)a.B * a.S * a.H * a.half;
  GRID_LOOP(e, total) {
    int i = (int)(e % a.half);
    i64 t = e / a.half;
    int h = (int)(t % a.H);
    t /= a.H;
    int s = (int)(t % a.S);
    int b = (int)(t / a.S);
    float c = ldf(cosv, a.cdt, b * a.cs[0] + s * a.cs[1] + i * a.cs[2]);
    float sn = ldf(sinv, a.sdt, b * a.ss[0] + s * a.ss[1] + i * a.ss[2]);
    i64 xb = b * a.xs[0] + s * a.xs[1] + h * a.xs[2];
    i64 yb = b * a.ys[0] + s * a.ys[1] + h * a.ys[2];
    int i0 = a.mode == 1 ? 2 * i : i;
    int i1 = a.mode == 1 ? 2 * i + 1 : i + a.half;
    float x0 = ldf(x, a.xdt, xb + i0 * a.xs[3]);
    float x1 = ldf(x, a.xdt, xb + i1 * a.xs[3]);
    float p = c * x0, q = sn * x1, u = sn * x0, v = c * x1;
    stf(y, a.ydt, yb + i0 * a.ys[3], p - q);
    stf(y, a.ydt, yb + i1 * a.ys[3], v + u);
  }
}
