package cpu

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/tensor"
)

// The benchmarks run the real Z-Image / Flux-VAE shapes; they are skipped by plain `go test`
// (they only run with -bench). Each reports GFLOP/s (2 flops per multiply-add).

// reportFlops reports wall-clock GFLOP/s and, because the machines these run on are often
// shared, GFLOP per second of process CPU time (user+system over all threads since start).
func reportFlops(b *testing.B, flops float64, cpu0 time.Duration) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if used := cpuTime() - cpu0; used > 0 {
		b.ReportMetric(flops*float64(b.N)/used.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchLinear(b *testing.B, m, k, n int, wdt tensor.DType) {
	be := newBackend(b)
	be.w.close()
	be.w = newWorkers(defaultThreads())
	rng := rand.New(rand.NewPCG(1, 2))
	x := randT(b, rng, tensor.F32, m, k)
	w := randT(b, rng, wdt, n, k)
	dst, _ := be.Alloc(tensor.F32, m, n)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := be.Linear(dst, x, w, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportFlops(b, 2*float64(m)*float64(k)*float64(n), cpu0)
}

// x[4096×3840] · Wᵀ with W the bf16 qkv weight [11520×3840].
func BenchmarkMatMulBF16_4096x3840x11520(b *testing.B) {
	benchLinear(b, 4096, 3840, 11520, tensor.BF16)
}

// x[4096×3840] · W[3840×10240] in float32 (FFN w1 shape).
func BenchmarkMatMulF32_4096x3840x10240(b *testing.B) {
	be := newBackend(b)
	be.w.close()
	be.w = newWorkers(defaultThreads())
	rng := rand.New(rand.NewPCG(1, 2))
	x := randT(b, rng, tensor.F32, 4096, 3840)
	w := randT(b, rng, tensor.F32, 3840, 10240)
	dst, _ := be.Alloc(tensor.F32, 4096, 10240)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := be.MatMul(dst, x, w, false); err != nil {
			b.Fatal(err)
		}
	}
	reportFlops(b, 2*4096*3840*10240, cpu0)
}

// The same FFN shape with bf16 weights as stored in the checkpoint.
func BenchmarkMatMulBF16_4096x3840x10240(b *testing.B) {
	benchLinear(b, 4096, 3840, 10240, tensor.BF16)
}

// 4096 tokens × 30 heads × 128, no mask (a Z-Image joint block at 1024²).
func BenchmarkAttention_4096x30x128(b *testing.B) {
	be := newBackend(b)
	be.w.close()
	be.w = newWorkers(defaultThreads())
	rng := rand.New(rand.NewPCG(1, 2))
	const s, h, d = 4096, 30, 128
	q := randT(b, rng, tensor.F32, 1, s, h, d)
	k := randT(b, rng, tensor.F32, 1, s, h, d)
	v := randT(b, rng, tensor.F32, 1, s, h, d)
	dst, _ := be.Alloc(tensor.F32, 1, s, h, d)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := be.Attention(dst, q, k, v, tensor.AttentionOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportFlops(b, 4*float64(s)*s*d*h, cpu0)
}

// 3×3 convolution, 512 → 512 channels at 128×128, batch 1 (Flux VAE decoder mid/up blocks).
func BenchmarkConv2D3x3_512x128x128(b *testing.B) {
	be := newBackend(b)
	be.w.close()
	be.w = newWorkers(defaultThreads())
	rng := rand.New(rand.NewPCG(1, 2))
	x := randT(b, rng, tensor.F32, 1, 512, 128, 128)
	w := randT(b, rng, tensor.F32, 512, 512, 3, 3)
	bias := randT(b, rng, tensor.F32, 512)
	dst, _ := be.Alloc(tensor.F32, 1, 512, 128, 128)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, err := be.Conv2D(dst, x, w, bias, tensor.Pad(1, 1)); err != nil {
			b.Fatal(err)
		}
	}
	reportFlops(b, 2*512*512*9*128*128, cpu0)
}
