package cpu

import "testing"

// BenchmarkKernel measures one micro-kernel call on cache-resident panels (the GEMM ceiling).
func BenchmarkKernel(b *testing.B) {
	for _, k := range kernels() {
		b.Run(k.name, func(b *testing.B) {
			const kc = 256
			a := make([]float32, kc*k.mr)
			bb := make([]float32, kc*k.nr)
			c := make([]float32, k.mr*k.nr)
			for i := range a {
				a[i] = float32(i%7) * 0.1
			}
			for i := range bb {
				bb[i] = float32(i%5) * 0.1
			}
			b.ResetTimer()
			for range b.N {
				k.fn(kc, a, bb, k.nr, c, k.nr, true)
			}
			b.ReportMetric(2*kc*float64(k.mr*k.nr)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
