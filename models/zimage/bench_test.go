package zimage

import (
	"context"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// benchForward times one forward of a random model shaped like the golden tiny DiT (dim 256,
// 4 heads, 2 layers + 1/1 refiners, 64 image tokens, caption 7) or larger.
func benchForward(b *testing.B, dim, layers, refiners, heads, gh, gw, caption, capDim int) {
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	cfg, err := ShapeConfig(dim, layers, refiners, heads, capDim)
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewRandom(cfg, be, tensor.BF16, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	in := Input{X: randTensor(b, 1, 1, 16, 2*gh, 2*gw), Sigma: []float32{0.5}, Context: randTensor(b, 2, 1, caption, capDim)}
	b.SetBytes(0)
	b.ReportMetric(cfg.FLOPs(1, gh*gw, caption)/1e9, "GFLOP/op")
	b.ResetTimer()
	for b.Loop() {
		v, err := m.Forward(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		be.Free(v)
	}
}

func BenchmarkForwardTiny(b *testing.B) { benchForward(b, 256, 2, 1, 4, 8, 8, 7, 64) }

func BenchmarkForward1024(b *testing.B) { benchForward(b, 1024, 4, 2, 8, 32, 32, 100, 2560) }
