package sampling

import (
	"math"
	"testing"
)

// TestBoxMullerAVX2MatchesGo checks the dispatched Box–Muller (the assembly on CPUs with AVX2
// and FMA, which every amd64 CI machine has) against boxMuller16 bit for bit:
// on 2^20 uniforms of the generator and on edge inputs (0, the largest uniform below 1, tiny
// and halfway values, for both the radius and the angle lane).
func TestBoxMullerAVX2MatchesGo(t *testing.T) {
	t.Logf("AVX2 Box–Muller in use: %v", hasBoxMullerAVX2)
	const n = 1 << 20
	in := make([]float32, n)
	g := NewGenerator(12345)
	for i := range in {
		in[i] = g.uniform24()
	}
	edges := []float32{0, 1 - 0x1p-24, 0x1p-24, 0.5, 0.25, 0.75, 0.125, 1 - 0x1p-23, 0x1p-23, 0.999, 1e-7}
	for i, v := range edges {
		in[16*i+i%8] = v   // radius lane
		in[16*i+8+i%8] = v // angle lane
	}
	want := append([]float32(nil), in...)
	boxMullerBlocksGo(want)
	got := append([]float32(nil), in...)
	boxMullerBlocks(got) // the assembly where the CPU has AVX2 and FMA
	bad := 0
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad++; bad <= 5 {
				t.Errorf("value %d (input %v, %v): AVX2 %v, Go %v", i, in[i&^15+i%8], in[i&^15+8+i%8], got[i], want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d values differ", bad, n)
	}
}
