"""PyTorch reference timings for BenchmarkLinearWeights (widen_bench_test.go).

Runs torch.nn.functional.linear on the same x[M×K]·Wᵀ shapes with torch.set_num_threads(2):
"bf16" rounds the activations to bf16 as well (PyTorch has no f32×bf16 GEMM; on AVX512-BF16
CPUs oneDNN uses VDPBF16PS), "f32" is the float32 GEMM (skipped above F32_MAX_FLOPS: a torch
built with BLAS_INFO=generic, like the Debian 1.13 one, runs it at a few GFLOP/s). Prints the
best of several runs in GFLOP/s. Run: python3 tensor/cpu/torch_linear_bench.py [shape-name ...]
"""
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [  # keep in sync with linearShapes in widen_bench_test.go
    ("qwen3-M33", 33, 2560, 9728),
    ("qwen3-M77", 77, 2560, 9728),
    ("qwen3-M256", 256, 2560, 9728),
    ("tinydit-qkv", 96, 256, 768),
    ("tinydit-ffn2", 96, 768, 256),
    ("zimage-qkv", 4096, 3840, 11520),
]

F32_MAX_FLOPS = 20e9


def best_seconds(fn, min_time=1.0, min_runs=3):
    fn()  # warm up (oneDNN primitive creation)
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def main():
    torch.set_num_threads(2)
    want = set(sys.argv[1:])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    gen = torch.Generator().manual_seed(1)
    for name, m, k, n in SHAPES:
        if want and name not in want:
            continue
        x = torch.rand(m, k, generator=gen) * 2 - 1
        w = torch.rand(n, k, generator=gen) * 2 - 1
        flops = 2.0 * m * k * n
        for dt in (torch.bfloat16, torch.float32):
            if dt == torch.float32 and flops > F32_MAX_FLOPS:
                continue
            xd, wd = x.to(dt), w.to(dt)
            with torch.no_grad():
                s = best_seconds(lambda: F.linear(xd, wd))
            print(f"{name:14s} {str(dt).removeprefix('torch.'):9s} {flops / s / 1e9:8.1f} GFLOP/s  {s * 1e3:9.3f} ms")


if __name__ == "__main__":
    main()
