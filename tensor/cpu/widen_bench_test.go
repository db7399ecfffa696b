package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// linearShapes are the x[M×K]·Wᵀ (W [N×K]) shapes of the weight-dtype benchmarks: the
// Qwen3-4B text encoder MLP (hidden 2560, intermediate 9728) at prompt lengths 33, 77 and 256,
// the tiny DiT of the goldens (dim 256, FFN 768, ~96 tokens) and a Z-Image qkv projection at
// 1024² (4096 tokens). torch_linear_bench.py measures PyTorch on the same shapes.
var linearShapes = []struct {
	name    string
	m, k, n int
}{
	{"qwen3-M33", 33, 2560, 9728},
	{"qwen3-M77", 77, 2560, 9728},
	{"qwen3-M256", 256, 2560, 9728},
	{"tinydit-qkv", 96, 256, 768},
	{"tinydit-ffn2", 96, 768, 256},
	{"zimage-qkv", 4096, 3840, 11520},
}

// BenchmarkLinearWeights runs Linear with f32 activations and bf16 (and, for reference, f32)
// weights, with each widening implementation in the same run: "go" is the scalar packing the
// vector kernels replace.
func BenchmarkLinearWeights(b *testing.B) {
	defer func(w widenImpl) { widen = w }(widen)
	for _, s := range linearShapes {
		for _, dt := range []tensor.DType{tensor.BF16, tensor.F32} {
			impls := widenImpls()
			if dt == tensor.F32 {
				impls = impls[len(impls)-1:]
			}
			for _, im := range impls {
				b.Run(fmt.Sprintf("%s/%v/%s", s.name, dt, im.name), func(b *testing.B) {
					widen = im
					be := newBackend(b)
					be.w.close()
					be.w = newWorkers(defaultThreads())
					rng := rand.New(rand.NewPCG(1, 2))
					x := randT(b, rng, tensor.F32, s.m, s.k)
					w := randT(b, rng, dt, s.n, s.k)
					dst, _ := be.Alloc(tensor.F32, s.m, s.n)
					if _, err := be.Linear(dst, x, w, nil); err != nil { // warm the pool
						b.Fatal(err)
					}
					b.ResetTimer()
					cpu0 := cpuTime()
					for range b.N {
						if _, err := be.Linear(dst, x, w, nil); err != nil {
							b.Fatal(err)
						}
					}
					reportFlops(b, 2*float64(s.m)*float64(s.k)*float64(s.n), cpu0)
				})
			}
		}
	}
}
