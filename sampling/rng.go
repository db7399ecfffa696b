package sampling

import "math"

// mt19937 is the 32-bit Mersenne Twister as torch's CPU generator runs it
// (ATen/core/MT19937RNGEngine.h: init_genrand seeding, standard twist and tempering).
type mt19937 struct {
	state [624]uint32
	next  int
}

func (m *mt19937) seed(s uint32) {
	m.state[0] = s
	for j := 1; j < 624; j++ {
		prev := m.state[j-1]
		m.state[j] = 1812433253*(prev^(prev>>30)) + uint32(j)
	}
	m.next = 624 // twist before the first output
}

func (m *mt19937) twist() {
	const (
		n, mm   = 624, 397
		matrixA = 0x9908b0df
		upper   = 0x80000000
		lower   = 0x7fffffff
	)
	// mix is one step of the recurrence: y's low bit (that of the next word) selects matrixA.
	mix := func(cur, next, far uint32) uint32 {
		y := cur&upper | next&lower
		return far ^ y>>1 ^ -(y&1)&matrixA
	}
	// The indices (k+1) mod n and (k+mm) mod n, in three runs without the modulo; the state is
	// updated in place in order, as the reference loop does.
	s := &m.state
	for k := 0; k < n-mm; k++ {
		s[k] = mix(s[k], s[k+1], s[k+mm])
	}
	for k := n - mm; k < n-1; k++ {
		s[k] = mix(s[k], s[k+1], s[k+mm-n])
	}
	s[n-1] = mix(s[n-1], s[0], s[mm-1])
	m.next = 0
}

// temper is MT19937's output transformation of a state word.
func temper(y uint32) uint32 {
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	return y ^ y>>18
}

func (m *mt19937) uint32() uint32 {
	if m.next >= 624 {
		m.twist()
	}
	y := m.state[m.next]
	m.next++
	return temper(y)
}

// fillUniform24 is uniform24 for every element of dst in turn, a state block at a time.
func (m *mt19937) fillUniform24(dst []float32) {
	for len(dst) > 0 {
		if m.next >= 624 {
			m.twist()
		}
		k := min(624-m.next, len(dst))
		temperUniform24(dst[:k], m.state[m.next:m.next+k])
		m.next += k
		dst = dst[k:]
	}
}

// temperUniform24Go is temperUniform24 in Go.
func temperUniform24Go(dst []float32, src []uint32) {
	src = src[:len(dst)]
	for i, y := range src {
		dst[i] = float32(temper(y)&0xffffff) * (1.0 / (1 << 24))
	}
}

// Generator reproduces torch's CPU generator (torch.manual_seed / torch.Generator("cpu")) for
// torch.randn with dtype float32. Its state carries over between calls exactly like torch's,
// including the cached second Box–Muller value of the scalar (fewer than 16 elements) path.
// A Generator is not safe for concurrent use.
type Generator struct {
	mt        mt19937
	cached    float64
	hasCached bool
}

// NewGenerator returns a generator seeded like torch.manual_seed(seed): MT19937 seeded with the
// low 32 bits of the seed.
func NewGenerator(seed uint64) *Generator {
	g := &Generator{}
	g.Seed(seed)
	return g
}

// Seed re-seeds the generator and drops any cached normal sample (torch's set_current_seed).
func (g *Generator) Seed(seed uint64) {
	g.mt.seed(uint32(seed))
	g.hasCached = false
}

// Uint32 returns the next raw 32-bit output (torch's generator->random()).
func (g *Generator) Uint32() uint32 { return g.mt.uint32() }

// uint64 is torch's random64(): two outputs, the first as the high word.
func (g *Generator) uint64() uint64 {
	hi := uint64(g.mt.uint32())
	return hi<<32 | uint64(g.mt.uint32())
}

// uniform24 is uniform_real_distribution<float>(0, 1): 24 random bits scaled by 2^-24.
func (g *Generator) uniform24() float32 {
	return float32(g.mt.uint32()&0xffffff) * (1.0 / (1 << 24))
}

// uniform53 is uniform_real_distribution<double>(0, 1): 53 bits of random64() scaled by 2^-53.
func (g *Generator) uniform53() float64 {
	return float64(g.uint64()&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal64 is at::normal_distribution<double>(0, 1) on the CPU generator: Box–Muller in double
// precision returning r·cos θ and caching r·sin θ for the next call.
func (g *Generator) normal64() float64 {
	if g.hasCached {
		g.hasCached = false
		return g.cached
	}
	u1 := g.uniform53()
	u2 := g.uniform53()
	r := math.Sqrt(-2.0 * math.Log(1.0-u2))
	theta := 2.0 * math.Pi * u1
	g.cached = r * math.Sin(theta)
	g.hasCached = true
	return r * math.Cos(theta)
}

// Randn fills dst like torch.randn(dst's size, dtype=float32, generator=g) on the CPU:
// with 16 or more elements, all uniforms first, then Box–Muller over blocks of 16 (values
// j and j+8 of a block share one pair), the last 16 values redrawn when the size is not a
// multiple of 16; with fewer, the scalar double-precision path. The block path reproduces
// torch's AVX2 kernel (Cephes-style float32 log and sincos of avx_mathfun.h), which is what
// torch runs on x86-64 CPUs with AVX2; on such CPUs it runs as AVX2 assembly in the same
// operations (boxmuller_amd64.s), elsewhere as Go, with identical results.
func (g *Generator) Randn(dst []float32) {
	n := len(dst)
	if n < 16 {
		for i := range dst {
			dst[i] = float32(g.normal64())
		}
		return
	}
	g.mt.fillUniform24(dst)
	boxMullerBlocks(dst)
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = g.uniform24()
		}
		boxMuller16(tail)
	}
}

// boxMullerBlocksGo is boxMullerBlocks in Go: boxMuller16 on every whole block of 16 in d.
func boxMullerBlocksGo(d []float32) {
	for i := 0; i+16 <= len(d); i += 16 {
		boxMuller16(d[i : i+16])
	}
}

// boxMuller16 is torch's normal_fill_16_AVX2 with mean 0 and std 1: u1 = 1 − d[j],
// u2 = d[j+8], radius = sqrt(−2·log(u1)), θ = 2π·u2 (float32), d[j] = radius·cos θ,
// d[j+8] = radius·sin θ.
func boxMuller16(d []float32) {
	const twoPi = float32(2 * math.Pi)
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(-2 * logf(u1))))
		theta := twoPi * u2
		s, c := sincosf(theta)
		d[j] = radius * c
		d[j+8] = radius * s
	}
}
