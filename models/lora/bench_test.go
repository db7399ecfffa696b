package lora

import (
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// Real Z-Image sizes: attention.qkv [11520, 3840] and feed_forward.w2 [3840, 10240].
var benchSizes = []struct {
	name           string
	rows, rank, in int
}{{"qkv_3840_r32", 11520, 32, 3840}, {"w2_r16", 3840, 16, 10240}}

func benchMatrices(rows, rank, in int) (up, down []float32) {
	r := rand.New(rand.NewPCG(1, 2))
	up = make([]float32, rows*rank)
	down = make([]float32, rank*in)
	for i := range up {
		up[i] = r.Float32()
	}
	for i := range down {
		down[i] = r.Float32()
	}
	return up, down
}

// BenchmarkProduct is the up·down product of one LoRA module (bytes = the f32 result).
func BenchmarkProduct(b *testing.B) {
	for _, c := range benchSizes {
		b.Run(c.name, func(b *testing.B) {
			up, down := benchMatrices(c.rows, c.rank, c.in)
			b.SetBytes(int64(4 * c.rows * c.in))
			for b.Loop() {
				product(up, down, c.rows, c.rank, c.in)
			}
		})
	}
}

// BenchmarkApply patches one bf16 weight of real size: widen, product, scale, add, round.
func BenchmarkApply(b *testing.B) {
	be := testBackend(b)
	for _, c := range benchSizes {
		b.Run(c.name, func(b *testing.B) {
			upV, downV := benchMatrices(c.rows, c.rank, c.in)
			up, _ := tensor.FromFloat32As(tensor.BF16, upV, c.rows, c.rank)
			down, _ := tensor.FromFloat32As(tensor.BF16, downV, c.rank, c.in)
			base, _ := tensor.Zeros(tensor.BF16, c.rows, c.in)
			ps := []Patch{{Target: Target{Param: "w"}, Kind: KindLoRA, Up: up, Down: down, Strength: 1, File: "b", Module: "m"}}
			b.SetBytes(int64(2 * c.rows * c.in))
			for b.Loop() {
				out, err := Apply(be, base, 0, []int{c.rows, c.in}, ps)
				if err != nil {
					b.Fatal(err)
				}
				be.Free(out)
			}
		})
	}
}
