// resize.cu: torch.nn.functional.interpolate (align_corners=False, no antialias) on
// contiguous float32 planes, with the same float32 index and weight arithmetic as
// tensor/resample (which matches torch's CPU kernels).
#pragma once
#include "math.cuh"

DEV float source_index(float scale, int dst, bool cubic) {
#pragma clang fp contract(off)
  float src = scale * ((float)dst + 0.5f) - 0.5f;
  if (!cubic && src < 0.0f) return 0.0f;
  return src;
}

// taps fills up to 4 input indices and weights for output index i of an axis in -> out.
DEV int taps(int in, int out, int i, bool cubic, int *idx, float *wt) {
#pragma clang fp contract(off)
  float scale = (float)in / (float)out;
  float real = source_index(scale, i, cubic);
  int id = (int)__builtin_floorf(real);
  if (id > in - 1) id = in - 1;
  float lambda = real - (float)id;
  lambda = lambda < 0.0f ? 0.0f : lambda;
  lambda = lambda > 1.0f ? 1.0f : lambda;
  if (!cubic) {
    idx[0] = id;
    idx[1] = id < in - 1 ? id + 1 : id;
    wt[0] = 1.0f - lambda;
    wt[1] = lambda;
    return 2;
  }
  const float A = -0.75f;
  float x2 = 1.0f - lambda;
  float l1 = lambda + 1.0f, x3 = x2 + 1.0f;
  // conv2(x) = ((A·x - 5A)·x + 8A)·x - 4A, conv1(x) = ((A+2)·x - (A+3))·x·x + 1
  wt[0] = ((A * l1 - 5.0f * A) * l1 + 8.0f * A) * l1 - 4.0f * A;
  wt[1] = ((A + 2.0f) * lambda - (A + 3.0f)) * lambda * lambda + 1.0f;
  wt[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
  wt[3] = ((A * x3 - 5.0f * A) * x3 + 8.0f * A) * x3 - 4.0f * A;
  for (int k = 0; k < 4; ++k) {
    int t = id - 1 + k;
    idx[k] = t < 0 ? 0 : (t > in - 1 ? in - 1 : t);
  }
  return 4;
}

KERNEL resize_nearest(const float *x, float *y, int planes, int h, int w, int oh, int ow) {
#pragma clang fp contract(off)
  float sh = (float)h / (float)oh, sw = (float)w / (float)ow;
  GRID_LOOP(e, (i64)planes * oh * ow) {
    int j = (int)(e % ow), i = (int)((e / ow) % oh);
    i64 p = e / ((i64)oh * ow);
    int r = (int)__builtin_floorf(((float)i + 0.5f) * sh);
    int c = (int)__builtin_floorf(((float)j + 0.5f) * sw);
    r = r < h - 1 ? r : h - 1;
    c = c < w - 1 ? c : w - 1;
    y[e] = x[p * h * w + (i64)r * w + c];
  }
}

// resize_sep: bilinear (cubic == 0) or bicubic; the sum runs over y taps outermost, each
// inner sum over x taps, in tap order, as torch's generic upsample kernel.
KERNEL resize_sep(const float *x, float *y, int planes, int h, int w, int oh, int ow, int cubic) {
#pragma clang fp contract(off)
  GRID_LOOP(e, (i64)planes * oh * ow) {
    int j = (int)(e % ow), i = (int)((e / ow) % oh);
    i64 p = e / ((i64)oh * ow);
    int iy[4], ix[4];
    float wy[4], wx[4];
    int ny = taps(h, oh, i, cubic != 0, iy, wy);
    int nx = taps(w, ow, j, cubic != 0, ix, wx);
    const float *in = x + p * h * w;
    float acc = 0.0f;
    for (int ky = 0; ky < ny; ++ky) {
      const float *row = in + (i64)iy[ky] * w;
      float inner = 0.0f;
      for (int kx = 0; kx < nx; ++kx) {
        float v = row[ix[kx]] * wx[kx];
        inner = kx == 0 ? v : inner + v;
      }
      float v = inner * wy[ky];
      acc = ky == 0 ? v : acc + v;
    }
    y[e] = acc;
  }
}

// resize_area: adaptive average pooling.
KERNEL resize_area(const float *x, float *y, int planes, int h, int w, int oh, int ow) {
#pragma clang fp contract(off)
  GRID_LOOP(e, (i64)planes * oh * ow) {
    int j = (int)(e % ow), i = (int)((e / ow) % oh);
    i64 p = e / ((i64)oh * ow);
    int y0 = (i / oh) * h + ((i % oh) * h) / oh, y1 = 1 + ((i + 1) * h - 1) / oh;
    int x0 = (j / ow) * w + ((j % ow) * w) / ow, x1 = 1 + ((j + 1) * w - 1) / ow;
    const float *in = x + p * h * w;
    float sum = 0.0f;
    for (int yy = y0; yy < y1; ++yy)
      for (int xx = x0; xx < x1; ++xx) sum += in[(i64)yy * w + xx];
    y[e] = sum / (float)(y1 - y0) / (float)(x1 - x0);
  }
}
