package brownian_test

import (
	"fmt"

	"github.com/dypegraph/dypegraph/sampling"
	"github.com/dypegraph/dypegraph/sampling/brownian"
)

// The noise dpmpp_2m_sde adds on its steps, as ComfyUI draws it for KSampler seed 42: the
// tree spans the schedule's smallest non-zero and largest sigma, and each step asks for the
// interval it covers.
func ExampleNewTreeNoiseSampler() {
	randn := func(seed uint32, dst []float32) { sampling.NewGenerator(uint64(seed)).Randn(dst) }
	sigmas := []float32{1, 0.9, 0.75, 0.5, 0}
	ns, err := brownian.NewTreeNoiseSampler(42, []int{1, 16, 8, 8}, 0.5, 1, randn)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; sigmas[i+1] > 0; i++ {
		noise, err := ns.Sample(sigmas[i], sigmas[i+1])
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("step %d: %d values\n", i, len(noise))
	}
	// Output:
	// step 0: 1024 values
	// step 1: 1024 values
	// step 2: 1024 values
}
