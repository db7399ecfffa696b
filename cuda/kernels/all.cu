// all.cu: the one translation unit compiled to PTX (cuda/ptx/kernels_sm*.ptx) and, with
// DYPE_EMU, into the host emulator used by the GPU-free tests.
#include "eltwise.cu"
#include "norm.cu"
#include "rope.cu"
#include "attention.cu"
#include "attention_mma.cu"
#include "gemm.cu"
#include "resize.cu"
