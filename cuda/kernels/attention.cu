// attention.cu: flash attention (online softmax; the score matrix never leaves registers).
//
// attn_f32_*: the exact path in fp32 on the CUDA cores for any dtypes and strides. A block of
// 4 warps owns BQ = 4·R query rows of one (batch, head); K and V are staged through one shared
// tile of 32 keys (K rows padded to D+1 floats against bank conflicts). For scores each lane
// owns one key of the tile; for the output each lane owns the value columns lane, lane+32, ...
// (CH of them), so Dv ≤ 32·CH.
#pragma once
#include "math.cuh"

struct AttnArgs {
  i64 qs[4], ks[4], vs[4], os[4], ms[4];  // element strides over (b, s, h, d); mask (b, h, i, j)
  int B, Sq, Skv, Hq, Hkv, D, Dv;
  int qdt, kdt, vdt, odt, mdt;
  int causal, has_mask;
  float scale;
  int pad_;
};

#define ATTN_WARPS 4

template <int CH, int R>
DEV void attn_f32(const AttnArgs &a, const void *q, const void *k, const void *v, void *o,
                  const void *mask) {
  const int BQ = ATTN_WARPS * R;
  const int D = a.D, Dv = a.Dv;
  float *qsm = DYN_SMEM(float);  // [BQ][D]
  float *kv = qsm + BQ * D;      // K tile [32][D+1], then V tile [32][Dv]
  int bh = blockIdx.y, b = bh / a.Hq, h = bh % a.Hq;
  int kvh = h / (a.Hq / a.Hkv);
  int r0 = blockIdx.x * BQ;
  int tid = threadIdx.x, lane = lane_id(), w = warp_id();
  int nthr = blockDim.x;

  for (int e = tid; e < BQ * D; e += nthr) {
    int rr = e / D, d = e % D, i = r0 + rr;
    qsm[e] = i < a.Sq ? ldf(q, a.qdt, b * a.qs[0] + i * a.qs[1] + h * a.qs[2] + d * a.qs[3]) : 0.0f;
  }
  float m[R], l[R], acc[R][CH];
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    m[rr] = -F32_INF;
    l[rr] = 0.0f;
#pragma unroll
    for (int t = 0; t < CH; ++t) acc[rr][t] = 0.0f;
  }
  int kv_end = a.Skv;
  if (a.causal && r0 + BQ < kv_end) kv_end = r0 + BQ;
  i64 kb = b * a.ks[0] + kvh * a.ks[2], vb = b * a.vs[0] + kvh * a.vs[2];
  i64 mb = b * a.ms[0] + h * a.ms[1];

  for (int j0 = 0; j0 < kv_end; j0 += 32) {
    __syncthreads();  // Q is staged / the previous V tile is consumed
    for (int e = tid; e < 32 * D; e += nthr) {
      int jj = e / D, d = e % D, j = j0 + jj;
      kv[jj * (D + 1) + d] = j < a.Skv ? ldf(k, a.kdt, kb + j * a.ks[1] + d * a.ks[3]) : 0.0f;
    }
    __syncthreads();
    float sc[R];
    int j = j0 + lane;
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
      int i = r0 + w * R + rr;
      float s = -F32_INF;
      if (i < a.Sq && j < a.Skv && !(a.causal && j > i)) {
        const float *qr = qsm + (w * R + rr) * D;
        const float *kr = kv + lane * (D + 1);
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot = __builtin_fmaf(qr[d], kr[d], dot);
        s = dot * a.scale;
        if (a.has_mask) s += ldf(mask, a.mdt, mb + i * a.ms[2] + j * a.ms[3]);
      }
      sc[rr] = s;
    }
    __syncthreads();
    for (int e = tid; e < 32 * Dv; e += nthr) {
      int jj = e / Dv, d = e % Dv, jv = j0 + jj;
      kv[jj * Dv + d] = jv < a.Skv ? ldf(v, a.vdt, vb + jv * a.vs[1] + d * a.vs[3]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
      float mx = warp_max(sc[rr]);
      float mn = mx > m[rr] ? mx : m[rr];
      if (mn == -F32_INF) continue;  // everything masked so far (uniform over the warp)
      float alpha = exp_f(m[rr] - mn);
      float p = sc[rr] == -F32_INF ? 0.0f : exp_f(sc[rr] - mn);
      l[rr] = l[rr] * alpha + warp_sum(p);
      m[rr] = mn;
#pragma unroll
      for (int t = 0; t < CH; ++t) acc[rr][t] *= alpha;
      for (int jj = 0; jj < 32; ++jj) {
        float pj = warp_idx(p, jj);
        const float *vr = kv + jj * Dv;
#pragma unroll
        for (int t = 0; t < CH; ++t) {
          int c = lane + 32 * t;
          if (c < Dv) acc[rr][t] = __builtin_fmaf(pj, vr[c], acc[rr][t]);
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    int i = r0 + w * R + rr;
    if (i >= a.Sq) continue;
    float inv = l[rr] > 0.0f ? 1.0f / l[rr] : 0.0f;
    i64 ob = b * a.os[0] + i * a.os[1] + h * a.os[2];
#pragma unroll
    for (int t = 0; t < CH; ++t) {
      int c = lane + 32 * t;
      if (c < Dv) stf(o, a.odt, ob + c * a.os[3], acc[rr][t] * inv);
    }
  }
}

KERNEL attn_f32_c4(AttnArgs a, const void *q, const void *k, const void *v, void *o,
                   const void *mask) {
  attn_f32<4, 4>(a, q, k, v, o, mask);
}
KERNEL attn_f32_c8(AttnArgs a, const void *q, const void *k, const void *v, void *o,
                   const void *mask) {
  attn_f32<8, 2>(a, q, k, v, o, mask);
}
KERNEL attn_f32_c16(AttnArgs a, const void *q, const void *k, const void *v, void *o,
                    const void *mask) {
  attn_f32<16, 1>(a, q, k, v, o, mask);
}
