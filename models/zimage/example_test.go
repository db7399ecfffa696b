package zimage_test

import (
	"context"
	"fmt"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/models/zimage"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// One sampling step as a sampler runs it: the DyPE patch gets the step's σ, the model returns
// the velocity, and x0 = x − σ·v. A real program loads weights with zimage.Load instead of
// making random ones.
func Example() {
	be, _ := cpu.New(cpu.Options{Threads: 1})
	defer be.Close()
	cfg, _ := zimage.ShapeConfig(64, 1, 1, 2, 32) // dim 64, 1 layer, 1+1 refiners, 2 heads, caption width 32
	m, err := zimage.NewRandom(cfg, be, tensor.BF16, 1)
	if err != nil {
		panic(err)
	}
	defer m.Close()

	x, _ := be.Zeros(tensor.F32, 1, 16, 8, 12)    // latent of a 96×64 image
	context_, _ := be.Zeros(tensor.F32, 1, 5, 32) // 5 caption rows
	dcfg := dype.ComfyNodeDefaults()
	dcfg.BaseResolution = 32
	rope, err := dype.New(dcfg, m.RopeSpec(), dype.Geometry{Width: 96, Height: 64})
	if err != nil {
		panic(err)
	}

	sigma := float32(0.8)
	if err := rope.SetSigma(dype.NormalizeSigma(float64(sigma), 1)); err != nil {
		panic(err)
	}
	v, err := m.Forward(context.Background(), zimage.Input{X: x, Sigma: []float32{sigma}, Context: context_, Rope: rope})
	if err != nil {
		panic(err)
	}
	x0, err := zimage.Denoised(be, x, v, []float32{sigma})
	if err != nil {
		panic(err)
	}
	fmt.Println(v.Shape(), x0.Shape())
	be.Free(v, x0, x, context_)
	// Output: [1 16 8 12] [1 16 8 12]
}
