// attention_mma.cu: flash attention on tensor cores (mma.sync m16n8k16, bf16 operands, f32
// accumulation; sm_80 and later), for bf16 q, k, v with head dim 64 or 128 (value dim the
// same). A block of 4 warps owns 64 query rows of one (batch, head), each warp 16 of them,
// and walks the keys in tiles of 64: S = Q·Kᵀ (in registers, fragments of mma's C layout),
// online softmax on S, then O += P·V with P rounded to bf16 (as FlashAttention does) straight
// from S's fragments, which are A's layout. Q, K and Vᵀ tiles live in shared memory, rows
// padded by 8 elements against bank conflicts. The mask, if any, is float32.
#pragma once
#include "attention.cu"

#define MMA_BQ 64
#define MMA_BK 64
#define MMA_PAD 8

DEV u32 ld_u32(const u16 *p) { return *(const u32 *)p; }
DEV u32 pack_bf16(float lo, float hi) { return (u32)f32_to_bf16(lo) | ((u32)f32_to_bf16(hi) << 16); }

template <int D>
DEV void attn_mma(const AttnArgs &a, const void *q, const void *k, const void *v, void *o,
                  const void *mask) {
  const int LD = D + MMA_PAD, LDV = MMA_BK + MMA_PAD;
  u16 *qs = DYN_SMEM(u16);       // [64][LD]
  u16 *ks = qs + MMA_BQ * LD;    // [64][LD]
  u16 *vt = ks + MMA_BK * LD;    // [D][LDV]: V transposed
  const u16 *qg = (const u16 *)q, *kg = (const u16 *)k, *vg = (const u16 *)v;
  int bh = blockIdx.y, b = bh / a.Hq, h = bh % a.Hq;
  int kvh = h / (a.Hq / a.Hkv);
  int r0 = blockIdx.x * MMA_BQ;
  int tid = threadIdx.x, nthr = blockDim.x, lane = lane_id(), w = warp_id();
  int g = lane >> 2, t = lane & 3;

  for (int e = tid; e < MMA_BQ * D; e += nthr) {
    int rr = e / D, d = e % D, i = r0 + rr;
    qs[rr * LD + d] = i < a.Sq ? qg[b * a.qs[0] + i * a.qs[1] + h * a.qs[2] + d * a.qs[3]] : (u16)0;
  }
  float m_i[2] = {-F32_INF, -F32_INF}, l_i[2] = {0.0f, 0.0f};
  float acc[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[dt][e] = 0.0f;
  int kv_end = a.Skv;
  if (a.causal && r0 + MMA_BQ < kv_end) kv_end = r0 + MMA_BQ;
  i64 kb = b * a.ks[0] + kvh * a.ks[2], vb = b * a.vs[0] + kvh * a.vs[2];
  i64 mb = b * a.ms[0] + h * a.ms[1];
  int i0 = r0 + w * 16 + g, i1 = i0 + 8;
  const u16 *qw = qs + w * 16 * LD;

  for (int j0 = 0; j0 < kv_end; j0 += MMA_BK) {
    __syncthreads();  // the previous tiles are consumed
    for (int e = tid; e < MMA_BK * D; e += nthr) {
      int jj = e / D, d = e % D, j = j0 + jj;
      bool in = j < a.Skv;
      ks[jj * LD + d] = in ? kg[kb + j * a.ks[1] + d * a.ks[3]] : (u16)0;
      vt[d * LDV + jj] = in ? vg[vb + j * a.vs[1] + d * a.vs[3]] : (u16)0;
    }
    __syncthreads();
    float s[MMA_BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D; kk += 16) {
      u32 af[4] = {ld_u32(qw + g * LD + kk + 2 * t), ld_u32(qw + (g + 8) * LD + kk + 2 * t),
                   ld_u32(qw + g * LD + kk + 8 + 2 * t), ld_u32(qw + (g + 8) * LD + kk + 8 + 2 * t)};
#pragma unroll
      for (int nt = 0; nt < MMA_BK / 8; ++nt) {
        const u16 *kr = ks + (nt * 8 + g) * LD + kk;
        u32 bf[2] = {ld_u32(kr + 2 * t), ld_u32(kr + 8 + 2 * t)};
        mma_bf16_16816(s[nt], af, bf, s[nt]);
      }
    }
    // Scale, mask, and the running max of rows i0 (e = 0, 1) and i1 (e = 2, 3).
    float mx[2] = {-F32_INF, -F32_INF};
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int row = e < 2 ? i0 : i1, j = j0 + nt * 8 + 2 * t + (e & 1);
        float x = -F32_INF;
        if (j < a.Skv && row < a.Sq && !(a.causal && j > row)) {
          x = s[nt][e] * a.scale;
          if (a.has_mask) x += ((const float *)mask)[mb + row * a.ms[2] + j * a.ms[3]];
        }
        s[nt][e] = x;
        mx[e >> 1] = x > mx[e >> 1] ? x : mx[e >> 1];
      }
    }
    float alpha[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float o1 = warp_xor(mx[r], 1);
      mx[r] = o1 > mx[r] ? o1 : mx[r];
      float o2 = warp_xor(mx[r], 2);
      mx[r] = o2 > mx[r] ? o2 : mx[r];
      float mn = mx[r] > m_i[r] ? mx[r] : m_i[r];
      alpha[r] = mn == -F32_INF ? 1.0f : exp_f(m_i[r] - mn);
      m_i[r] = mn;
    }
#pragma unroll
    for (int nt = 0; nt < MMA_BK / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int r = e >> 1;
        float p = s[nt][e] == -F32_INF ? 0.0f : exp_f(s[nt][e] - m_i[r]);
        s[nt][e] = p;
        rs[r] += p;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rs[r] += warp_xor(rs[r], 1);
      rs[r] += warp_xor(rs[r], 2);
      l_i[r] = l_i[r] * alpha[r] + rs[r];
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      acc[dt][0] *= alpha[0];
      acc[dt][1] *= alpha[0];
      acc[dt][2] *= alpha[1];
      acc[dt][3] *= alpha[1];
    }
#pragma unroll
    for (int kc = 0; kc < MMA_BK / 16; ++kc) {
      u32 pf[4] = {pack_bf16(s[2 * kc][0], s[2 * kc][1]), pack_bf16(s[2 * kc][2], s[2 * kc][3]),
                   pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                   pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const u16 *vr = vt + (dt * 8 + g) * LDV + kc * 16;
        u32 bf[2] = {ld_u32(vr + 2 * t), ld_u32(vr + 8 + 2 * t)};
        mma_bf16_16816(acc[dt], pf, bf, acc[dt]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    int i = r ? i1 : i0;
    if (i >= a.Sq) continue;
    float inv = l_i[r] > 0.0f ? 1.0f / l_i[r] : 0.0f;
    i64 ob = b * a.os[0] + i * a.os[1] + h * a.os[2];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      int d = dt * 8 + 2 * t;
      stf_out(o, a.odt, ob + d * a.os[3], acc[dt][2 * r] * inv);
      stf_out(o, a.odt, ob + (d + 1) * a.os[3], acc[dt][2 * r + 1] * inv);
    }
  }
}

KERNEL __launch_bounds__(128) attn_mma_d64(AttnArgs a, const void *q, const void *k,
                                           const void *v, void *o, const void *mask) {
  attn_mma<64>(a, q, k, v, o, mask);
}
KERNEL __launch_bounds__(128) attn_mma_d128(AttnArgs a, const void *q, const void *k,
                                            const void *v, void *o, const void *mask) {
  attn_mma<128>(a, q, k, v, o, mask);
}
