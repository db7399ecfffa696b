// prelude.cuh: the few definitions the kernels need instead of the CUDA SDK headers.
//
// Compiled two ways:
//   - for the GPU by clang-19 (-x cuda --cuda-device-only -nocudainc -nocudalib): the keywords
//     map to clang attributes, the built-in variables come from clang's own header, warp
//     shuffles and barriers are NVVM builtins;
//   - for the host with DYPE_EMU defined: the emulator in emu/ runs every CUDA thread of a
//     block as a fiber, so the same kernel source can be tested on a machine without a GPU.
// Kernels use only what is defined here: 1-D blocks whose size is a multiple of 32,
// __syncthreads(), warp_* exchanges by full warps, static and dynamic shared memory.
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#ifdef DYPE_EMU
#include "emu/emu.h"
#else
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __attribute__((always_inline))
#define __launch_bounds__(n) __attribute__((launch_bounds(n)))
#include <__clang_cuda_builtin_vars.h>

extern __shared__ __attribute__((aligned(16))) unsigned char dyn_smem_[];
#define DYN_SMEM(T) ((T *)dyn_smem_)

static __device__ __forceinline__ u32 warp_xor_u32(u32 v, int m) {
  return (u32)__nvvm_shfl_sync_bfly_i32(0xffffffffu, (int)v, m, 0x1f);
}
static __device__ __forceinline__ u32 warp_idx_u32(u32 v, int src) {
  return (u32)__nvvm_shfl_sync_idx_i32(0xffffffffu, (int)v, src, 0x1f);
}

// mma_bf16_16816: D = A·B + C for one warp, A 16×16 and B 16×8 bf16, C and D 16×8 f32, in
// the register fragments of PTX's mma.m16n8k16 (sm_80+). d may alias c.
static __device__ __forceinline__ void mma_bf16_16816(float *d, const u32 *a, const u32 *b,
                                                      const float *c) {
  float c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%11,%12,%13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c0), "f"(c1),
        "f"(c2), "f"(c3));
}
#endif

#define DEV static __device__ __forceinline__
#define KERNEL extern "C" __global__ void

DEV float warp_xor(float v, int m) {
  return __builtin_bit_cast(float, warp_xor_u32(__builtin_bit_cast(u32, v), m));
}
DEV float warp_idx(float v, int src) {
  return __builtin_bit_cast(float, warp_idx_u32(__builtin_bit_cast(u32, v), src));
}
DEV double warp_xor_d(double v, int m) {
  u64 b = __builtin_bit_cast(u64, v);
  u32 lo = warp_xor_u32((u32)b, m), hi = warp_xor_u32((u32)(b >> 32), m);
  return __builtin_bit_cast(double, ((u64)hi << 32) | lo);
}

// Warp-wide reductions (every lane gets the result).
DEV double warp_sum_d(double v) {
  for (int m = 16; m > 0; m >>= 1) v += warp_xor_d(v, m);
  return v;
}
DEV float warp_sum(float v) {
  for (int m = 16; m > 0; m >>= 1) v += warp_xor(v, m);
  return v;
}
DEV float warp_max(float v) {
  for (int m = 16; m > 0; m >>= 1) {
    float o = warp_xor(v, m);
    v = o > v ? o : v;
  }
  return v;
}

DEV int lane_id() { return (int)(threadIdx.x & 31u); }
DEV int warp_id() { return (int)(threadIdx.x >> 5); }

// Grid-stride loop over [0, n).
#define GRID_LOOP(i, n)                                                         \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n);        \
       i += (i64)gridDim.x * blockDim.x)
