// emu.h: host definitions that let the kernels compile as C++ for the emulator (emu.cpp).
// Included by prelude.cuh when DYPE_EMU is defined; never part of the PTX build.
#pragma once
#include <cstddef>
#include <cstdint>

#define __global__
#define __device__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(n)

struct emu_uint3 {
  unsigned x, y, z;
};
extern emu_uint3 emu_block_idx, emu_block_dim, emu_grid_dim;
emu_uint3 emu_thread_idx();
#define threadIdx (emu_thread_idx())
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim

void emu_syncthreads(int line);
#define __syncthreads() emu_syncthreads(__LINE__)

// emu_warp_gather: every lane of the calling warp contributes `bytes` (at most 64) from mine;
// all receives the 32 contributions, lane-major. All live lanes of the warp must call it at
// the same source line (a full-mask warp operation), like the hardware's shuffles.
void emu_warp_gather(const void *mine, int bytes, void *all, int line);

static inline unsigned warp_xor_u32(unsigned v, int m) {
  unsigned all[32];
  emu_warp_gather(&v, 4, all, __LINE__);
  return all[(emu_thread_idx().x & 31u) ^ (unsigned)m];
}
static inline unsigned warp_idx_u32(unsigned v, int src) {
  unsigned all[32];
  emu_warp_gather(&v, 4, all, __LINE__);
  return all[src & 31];
}

extern unsigned char *emu_dyn_smem;
#define DYN_SMEM(T) ((T *)emu_dyn_smem)

// emu_mma_bf16: the warp-collective mma.m16n8k16 (bf16 in, f32 accumulate) with PTX's
// documented fragment layouts; every lane of the warp must call it.
void emu_mma_bf16(float *d, const unsigned *a, const unsigned *b, const float *c, int line);
#define mma_bf16_16816(d, a, b, c) emu_mma_bf16(d, a, b, c, __LINE__)
