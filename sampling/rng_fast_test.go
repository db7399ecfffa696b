package sampling

import (
	"fmt"
	"math"
	"testing"

	"github.com/dypegraph/dypegraph/sampling/brownian"
)

// refGenerator is the straightforward form of Generator.Randn for 16 or more values (the
// implementation before the block-wise MT19937 fill and the AVX2 Box–Muller): one tempered
// MT19937 output per uniform, the twist with modulo indices, boxMuller16 in Go per block.
type refGenerator struct {
	state [624]uint32
	next  int
}

func newRefGenerator(seed uint64) *refGenerator {
	g := &refGenerator{}
	g.state[0] = uint32(seed)
	for j := 1; j < 624; j++ {
		prev := g.state[j-1]
		g.state[j] = 1812433253*(prev^(prev>>30)) + uint32(j)
	}
	g.next = 624
	return g
}

func (g *refGenerator) uint32() uint32 {
	if g.next >= 624 {
		s := &g.state
		for k := 0; k < 624; k++ {
			y := (s[k] & 0x80000000) | (s[(k+1)%624] & 0x7fffffff)
			v := s[(k+397)%624] ^ (y >> 1)
			if s[(k+1)%624]&1 != 0 {
				v ^= 0x9908b0df
			}
			s[k] = v
		}
		g.next = 0
	}
	y := g.state[g.next]
	g.next++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

func (g *refGenerator) randn(dst []float32) {
	u := func() float32 { return float32(g.uint32()&0xffffff) * (1.0 / (1 << 24)) }
	for i := range dst {
		dst[i] = u()
	}
	n := len(dst)
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(dst[i : i+16])
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = u()
		}
		boxMuller16(tail)
	}
}

// TestRandnMatchesReference checks Generator.Randn (block-wise uniforms, AVX2 Box–Muller where
// available) against refGenerator bit for bit, over call sequences that cross the MT19937
// twist at every offset class and end in partial blocks, with 32- and 64-bit seeds.
func TestRandnMatchesReference(t *testing.T) {
	for _, c := range []struct {
		seed  uint64
		sizes []int
	}{
		{0, []int{16, 17, 623, 624, 625, 1000, 31, 4096}},
		{42, []int{16*128*128 + 5, 16 * 64 * 64}},
		{1 << 40, []int{100, 1248, 1249, 33, 47, 65536}},
		{math.MaxUint64, []int{624 * 3, 20, 16 * 16 * 3 * 5}},
	} {
		t.Run(fmt.Sprintf("seed%d", c.seed), func(t *testing.T) {
			g, ref := NewGenerator(c.seed), newRefGenerator(c.seed)
			for j, n := range c.sizes {
				got, want := make([]float32, n), make([]float32, n)
				g.Randn(got)
				ref.randn(want)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("call %d (size %d), value %d: %v, reference %v", j, n, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// BenchmarkRandnBeforeAfter times torch.randn of one 1×16×128×128 latent with refGenerator
// (the former implementation) and with Generator in the same run.
func BenchmarkRandnBeforeAfter(b *testing.B) {
	buf := make([]float32, 16*128*128)
	b.Run("reference", func(b *testing.B) {
		g := newRefGenerator(1)
		b.SetBytes(int64(4 * len(buf)))
		for b.Loop() {
			g.randn(buf)
		}
	})
	b.Run("generator", func(b *testing.B) {
		g := NewGenerator(1)
		b.SetBytes(int64(4 * len(buf)))
		for b.Loop() {
			g.Randn(buf)
		}
	})
}

// BenchmarkTreeRunBeforeAfter times the noise of a 20-step SDE run on a 1×16×128×128 latent
// (ComfyUI's Brownian tree, about 600 randn calls of that size; uniform sigmas from 1 to 0.05)
// with refGenerator and with Generator as the tree's torch.randn, in the same run.
func BenchmarkTreeRunBeforeAfter(b *testing.B) {
	shape := []int{1, 16, 128, 128}
	const steps = 20
	sig := make([]float32, steps)
	for i := range sig {
		sig[i] = float32(1 - 0.95*float64(i)/(steps-1))
	}
	for _, c := range []struct {
		name  string
		randn brownian.RandnFunc
	}{
		{"reference", func(seed uint32, dst []float32) { newRefGenerator(uint64(seed)).randn(dst) }},
		{"generator", torchRandn},
	} {
		b.Run(c.name, func(b *testing.B) {
			draws := 0
			counted := func(seed uint32, dst []float32) { draws++; c.randn(seed, dst) }
			for b.Loop() {
				ns, err := brownian.NewTreeNoiseSampler(42, shape, sig[steps-1], sig[0], counted)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i+1 < steps; i++ {
					if _, err := ns.Sample(sig[i], sig[i+1]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(draws)/float64(b.N), "randn/op")
		})
	}
}
