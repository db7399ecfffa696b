package dype_test

import (
	"fmt"

	"github.com/dypegraph/dypegraph/dype"
)

// A sampler sets σ each step; the model asks for the caption and image tables.
func Example() {
	cfg := dype.DefaultConfig()
	cfg.Enabled = true // vision_yarn, llm_dit mode
	r, err := dype.New(cfg, dype.ZImageRope(), dype.Geometry{Width: 2048, Height: 2048})
	if err != nil {
		panic(err)
	}
	mu, _ := r.ShiftMu()
	fmt.Printf("scale %.1f, shift mu %.2f\n", r.Scale(), mu)
	for _, sigma := range []float64{1, 0.5, 0} {
		if err := r.SetSigma(sigma); err != nil {
			panic(err)
		}
		st, err := r.Step()
		if err != nil {
			panic(err)
		}
		capIDs := st.CaptionIDs(32)        // caption padded to 32 tokens
		imgIDs := st.ImageIDs(float64(33)) // 128×128 image tokens
		cos, _ := st.ImageTable(imgIDs)
		ccos, _ := st.CaptionTable(capIDs)
		fmt.Printf("σ=%.1f k_t=%.2f mscale=%.4f image rows %d caption rows %d lanes %d\n",
			sigma, st.KT, st.Image[1].MScale, len(cos)/st.Lanes(), len(ccos)/st.Lanes(), st.Lanes())
	}
	// Output:
	// scale 2.0, shift mu 1.15
	// σ=1.0 k_t=2.00 mscale=1.0693 image rows 16384 caption rows 32 lanes 64
	// σ=0.5 k_t=0.50 mscale=1.0173 image rows 16384 caption rows 32 lanes 64
	// σ=0.0 k_t=0.00 mscale=1.0000 image rows 16384 caption rows 32 lanes 64
}
