package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// BenchmarkLinearDTypes compares weight dtypes on a mid-size shape, one and all threads.
func BenchmarkLinearDTypes(b *testing.B) {
	for _, th := range []int{1, 0} {
		for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16} {
			b.Run(fmt.Sprintf("threads=%d/%v", th, dt), func(b *testing.B) {
				be, _ := New(Options{Threads: th})
				defer be.Close()
				rng := rand.New(rand.NewPCG(1, 2))
				const m, k, n = 1024, 1536, 2048
				x := randT(b, rng, tensor.F32, m, k)
				w := randT(b, rng, dt, n, k)
				dst, _ := be.Alloc(tensor.F32, m, n)
				be.Linear(dst, x, w, nil)
				b.ResetTimer()
				cpu0 := cpuTime()
				for range b.N {
					be.Linear(dst, x, w, nil)
				}
				reportFlops(b, 2*m*k*n, cpu0)
			})
		}
	}
}
