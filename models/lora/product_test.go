package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// scalarProduct is the definition product must reproduce: per element, the rank terms in
// order, each product and each sum rounded to float32, starting from the first product.
func scalarProduct(up, down []float32, rows, rank, in int) []float32 {
	out := make([]float32, rows*in)
	for i := range rows {
		for j := range in {
			var acc float32
			for k := range rank {
				p := float32(up[i*rank+k] * down[k*in+j])
				if k == 0 {
					acc = p
				} else {
					acc = float32(acc + p)
				}
			}
			out[i*in+j] = acc
		}
	}
	return out
}

// TestProductBitExact: the vector and scalar column paths of product give the definition's
// bits, including signed zeros, infinities, NaNs and subnormals, for widths around the
// 32-column vector blocks.
func TestProductBitExact(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 1e-40, -3e-39, math.MaxFloat32, 1}
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ rows, rank, in int }{
		{1, 1, 1}, {3, 1, 32}, {2, 4, 31}, {5, 8, 33}, {4, 16, 64}, {7, 32, 100}, {2, 3, 257},
	} {
		t.Run(fmt.Sprintf("%dx%dx%d", c.rows, c.rank, c.in), func(t *testing.T) {
			up := make([]float32, c.rows*c.rank)
			down := make([]float32, c.rank*c.in)
			for _, v := range [][]float32{up, down} {
				for i := range v {
					if r.IntN(10) == 0 {
						v[i] = special[r.IntN(len(special))]
					} else {
						v[i] = float32(r.NormFloat64())
					}
				}
			}
			got := product(up, down, c.rows, c.rank, c.in)
			want := scalarProduct(up, down, c.rows, c.rank, c.in)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
					t.Fatalf("element %d: %v (%#x), want %v (%#x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		})
	}
}
