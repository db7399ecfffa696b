package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// allPatterns returns the 65536 16-bit patterns in a shuffled order (so that every vector
// position of the kernels sees specials such as NaNs, infinities and subnormals).
func allPatterns() []uint16 {
	p := make([]uint16, 1<<16)
	for i := range p {
		p[i] = uint16(i)
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// sameWidened reports whether got is the exact widening want, allowing a signalling NaN to come
// back quiet (F16C's VCVTPH2PS quiets NaNs; the bf16 kernels must be exact for every pattern).
func sameWidened(got, want float32, quietOK bool) bool {
	g, w := math.Float32bits(got), math.Float32bits(want)
	return g == w || quietOK && w&0x7fffffff > 0x7f800000 && g == w|0x00400000
}

func TestWidenBF16AllPatterns(t *testing.T) {
	src := allPatterns()
	for _, im := range widenImpls() {
		// Offsets and lengths that leave vector tails of every size.
		for _, c := range []struct{ lo, hi int }{{0, len(src)}, {1, len(src) - 3}, {5, 36}, {7, 7}, {0, 15}} {
			dst := make([]float32, c.hi-c.lo+1)
			dst[len(dst)-1] = 42 // must not be written
			im.bf16(dst[:c.hi-c.lo], src[c.lo:c.hi])
			for i, h := range src[c.lo:c.hi] {
				if want := tensor.BF16ToF32(h); !sameWidened(dst[i], want, false) {
					t.Fatalf("%s [%d:%d]: bf16 %#04x widened to %#08x, want %#08x", im.name, c.lo, c.hi, h, math.Float32bits(dst[i]), math.Float32bits(want))
				}
			}
			if dst[len(dst)-1] != 42 {
				t.Fatalf("%s [%d:%d]: wrote past the end", im.name, c.lo, c.hi)
			}
		}
	}
}

func TestWidenTransposed(t *testing.T) {
	pat := allPatterns()
	tests := []struct {
		name       string
		kc, lds    int
		ldd        int
		all        bool // the 8 rows hold all 65536 patterns
		dtype      tensor.DType
		conv       func(uint16) float32
		transposeF func(widenImpl) func([]float32, int, []uint16, int, int)
	}{
		{"bf16 all patterns", 8192, 8192, 8, true, tensor.BF16, tensor.BF16ToF32, func(w widenImpl) func([]float32, int, []uint16, int, int) { return w.bf16T }},
		{"f16 all patterns", 8192, 8200, 12, true, tensor.F16, tensor.F16ToF32, func(w widenImpl) func([]float32, int, []uint16, int, int) { return w.f16T }},
		{"bf16 k tail", 29, 31, 32, false, tensor.BF16, tensor.BF16ToF32, func(w widenImpl) func([]float32, int, []uint16, int, int) { return w.bf16T }},
		{"f16 k tail", 13, 40, 16, false, tensor.F16, tensor.F16ToF32, func(w widenImpl) func([]float32, int, []uint16, int, int) { return w.f16T }},
		{"bf16 short", 5, 5, 8, false, tensor.BF16, tensor.BF16ToF32, func(w widenImpl) func([]float32, int, []uint16, int, int) { return w.bf16T }},
		{"bf16 overlapping rows", 24, 3, 9, false, tensor.BF16, tensor.BF16ToF32, func(w widenImpl) func([]float32, int, []uint16, int, int) { return w.bf16T }},
	}
	for _, tc := range tests {
		src := make([]uint16, 7*tc.lds+tc.kc)
		for i := range src {
			src[i] = pat[i%len(pat)]
		}
		if tc.all {
			for r := range 8 {
				copy(src[r*tc.lds:r*tc.lds+tc.kc], pat[r*tc.kc:(r+1)*tc.kc])
			}
		}
		for _, im := range widenImpls() {
			t.Run(name(tc.name, "/", im.name), func(t *testing.T) {
				dst := make([]float32, (tc.kc-1)*tc.ldd+8+tc.ldd)
				for i := range dst {
					dst[i] = 42 // lanes outside the 8 rows must keep this
				}
				tc.transposeF(im)(dst, tc.ldd, src, tc.lds, tc.kc)
				for i, got := range dst {
					kk, r := i/tc.ldd, i%tc.ldd
					if kk >= tc.kc || r >= 8 {
						if got != 42 {
							t.Fatalf("wrote dst[%d] outside the block", i)
						}
						continue
					}
					h := src[r*tc.lds+kk]
					if want := tc.conv(h); !sameWidened(got, want, tc.dtype == tensor.F16) {
						t.Fatalf("row %d k %d: %v %#04x widened to %#08x, want %#08x", r, kk, tc.dtype, h, math.Float32bits(got), math.Float32bits(want))
					}
				}
			})
		}
	}
}

func TestTransposeF32(t *testing.T) {
	tests := []struct {
		name         string
		kc, lds, ldd int
	}{
		{"aligned", 64, 64, 8},
		{"k tail", 31, 33, 12},
		{"short", 3, 3, 32},
		{"overlapping rows", 20, 2, 9},
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range tests {
		src := make([]float32, 7*tc.lds+tc.kc)
		for i := range src {
			src[i] = math.Float32frombits(rng.Uint32()) // every bit pattern must survive, NaNs included
		}
		for _, im := range widenImpls() {
			t.Run(name(tc.name, "/", im.name), func(t *testing.T) {
				dst := make([]float32, (tc.kc-1)*tc.ldd+8+tc.ldd)
				for i := range dst {
					dst[i] = 42
				}
				im.f32T(dst, tc.ldd, src, tc.lds, tc.kc)
				for i, got := range dst {
					kk, r := i/tc.ldd, i%tc.ldd
					want := float32(42)
					if kk < tc.kc && r < 8 {
						want = src[r*tc.lds+kk]
					}
					if math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("dst[%d] (k %d, row %d) = %#08x, want %#08x", i, kk, r, math.Float32bits(got), math.Float32bits(want))
					}
				}
			})
		}
	}
}

// TestLinearWidenImplsIdentical checks that the vector packing gives bit-identical GEMM results
// to the scalar one for every weight layout that reaches it (Linear's [N, K] and MatMul's
// transposed B) and for float32 activations (packed by the float32 transpose), tails in N and
// K included.
func TestLinearWidenImplsIdentical(t *testing.T) {
	impls := widenImpls()
	defer func(w widenImpl) { widen = w }(widen)
	tests := []struct {
		name    string
		m, k, n int
		dt      tensor.DType
	}{
		{"bf16 tails", 13, 77, 45, tensor.BF16},
		{"bf16 two K blocks", 30, 600, 70, tensor.BF16},
		{"f16 tails", 7, 300, 33, tensor.F16},
		{"bf16 one row", 1, 64, 8, tensor.BF16},
		{"f32 tails", 29, 130, 41, tensor.F32},
	}
	for _, be := range backends(t) {
		for _, tc := range tests {
			t.Run(name(be.KernelName(), "/", tc.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(5, 6))
				x := randT(t, rng, tensor.F32, tc.m, tc.k)
				w := randT(t, rng, tc.dt, tc.n, tc.k)
				wt := randT(t, rng, tc.dt, tc.k, tc.n)
				var ref [2][]float32
				for i, im := range impls {
					widen = im
					y, err := be.Linear(nil, x, w, nil)
					if err != nil {
						t.Fatal(err)
					}
					z, err := be.MatMul(nil, x, wt, false)
					if err != nil {
						t.Fatal(err)
					}
					for j, r := range []*tensor.Tensor{y, z} {
						got, err := r.ToFloat32()
						if err != nil {
							t.Fatal(err)
						}
						if i == 0 {
							ref[j] = got
							continue
						}
						for e := range got {
							if math.Float32bits(got[e]) != math.Float32bits(ref[j][e]) {
								t.Fatalf("%s: output %d element %d = %v, scalar packing gives %v", im.name, j, e, got[e], ref[j][e])
							}
						}
					}
				}
			})
		}
	}
}

// TestLinearFusedPackingIdentical checks that packing B sliver by sliver inside the compute
// tiles (used when all of M fits one tile) gives the same bits as packing whole panels first:
// the first rows of a tall product (several M tiles) must equal the product of those rows alone.
func TestLinearFusedPackingIdentical(t *testing.T) {
	tests := []struct {
		name       string
		tall, rows int
		k, n       int
		dt         tensor.DType
	}{
		{"bf16 two K blocks", 400, 21, 600, 70, tensor.BF16},
		{"f16 tails", 300, 5, 77, 45, tensor.F16},
		{"f32 two N blocks", 250, 13, 40, 4100, tensor.F32},
	}
	for _, be := range backends(t) {
		for _, tc := range tests {
			t.Run(name(be.KernelName(), "/", tc.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(9, 10))
				x := randT(t, rng, tensor.F32, tc.tall, tc.k)
				w := randT(t, rng, tc.dt, tc.n, tc.k)
				top, err := x.Slice(0, 0, tc.rows)
				if err != nil {
					t.Fatal(err)
				}
				if ceilDiv(ceilDiv(tc.tall, be.kern.mr), gemmMCPanels) < 2 || ceilDiv(tc.rows, be.kern.mr) > gemmMCPanels {
					t.Fatalf("shapes do not exercise both packing paths for %s", be.KernelName())
				}
				full, err := be.Linear(nil, x, w, nil)
				if err != nil {
					t.Fatal(err)
				}
				part, err := be.Linear(nil, top, w, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := part.ToFloat32()
				want, _ := full.ToFloat32()
				for i, g := range got {
					if math.Float32bits(g) != math.Float32bits(want[i]) {
						t.Fatalf("element %d: %v alone, %v as part of %d rows", i, g, want[i], tc.tall)
					}
				}
			})
		}
	}
}
