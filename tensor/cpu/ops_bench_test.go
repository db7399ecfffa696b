package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// BenchmarkOps times the non-GEMM ops of one Z-Image block / VAE level at real sizes
// (reported as GB/s of tensor data read+written, a rough measure for memory-bound ops).
func BenchmarkOps(b *testing.B) {
	be := newBackend(b)
	be.w.close()
	be.w = newWorkers(defaultThreads())
	rng := rand.New(rand.NewPCG(1, 2))
	x := randT(b, rng, tensor.F32, 1, 4224, 3840)
	g := randT(b, rng, tensor.BF16, 3840)
	ff := randT(b, rng, tensor.F32, 1, 4224, 10240)
	ff2 := randT(b, rng, tensor.F32, 1, 4224, 10240)
	qkv := randT(b, rng, tensor.F32, 1, 4224, 3*3840)
	q, _ := qkv.Slice(2, 0, 3840)
	q4, _ := q.Reshape(1, 4224, 30, 128)
	cs := randT(b, rng, tensor.F32, 4224, 64)
	img := randT(b, rng, tensor.F32, 1, 512, 128, 128)
	gw := randT(b, rng, tensor.F32, 512)
	mod := randT(b, rng, tensor.F32, 1, 1, 3840)
	cases := []struct {
		name  string
		bytes float64
		run   func() error
	}{
		{"rmsnorm_4224x3840", 2 * 4 * 4224 * 3840, func() error { _, err := be.RMSNorm(x, x, g, 1e-5); return err }},
		{"silu_4224x10240", 2 * 4 * 4224 * 10240, func() error { _, err := be.Unary(ff, ff, tensor.SiLU); return err }},
		{"mul_4224x10240", 3 * 4 * 4224 * 10240, func() error { _, err := be.Binary(ff, ff, ff2, tensor.Mul); return err }},
		{"modulate_bcast_4224x3840", 2 * 4 * 4224 * 3840, func() error { _, err := be.Binary(x, x, mod, tensor.Mul); return err }},
		{"rope_q_4224x30x128", 2 * 4 * 4224 * 3840, func() error { _, err := be.RoPE(q4, q4, cs, cs, tensor.RoPEInterleaved); return err }},
		{"qknorm_4224x30x128", 2 * 4 * 4224 * 3840, func() error { _, err := be.RMSNorm(q4, q4, nil, 1e-5); return err }},
		{"groupnorm_512x128x128", 2 * 4 * 512 * 128 * 128, func() error { _, err := be.GroupNorm(img, img, gw, gw, 32, 1e-6); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(c.bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
