package brownian

// numpy's SeedSequence (numpy.random.bit_generator, NEP 19 / Melissa O'Neill's seed_seq
// design), as far as torchsde uses it: the entropy and spawn key are 32-bit words, mixed into
// a pool of poolSize words, from which generate_state draws uint32 words.

const (
	ssInitA    = 0x43b0d7e5
	ssMultA    = 0x931e8875
	ssInitB    = 0x8b51f9dd
	ssMultB    = 0x58f38ded
	ssMixMultL = 0xca01f9dd
	ssMixMultR = 0x4973f715
	ssXShift   = 16
)

// uint64Words is numpy's _int_to_uint32_array for a non-negative integer below 2^64: its
// 32-bit words, least significant first, as few as hold it (one word for zero).
func uint64Words(v uint64) []uint32 {
	if v>>32 == 0 {
		return []uint32{uint32(v)}
	}
	return []uint32{uint32(v), uint32(v >> 32)}
}

type hashMixer struct{ c uint32 }

func (h *hashMixer) mix(v uint32) uint32 {
	v ^= h.c
	h.c *= ssMultA
	v *= h.c
	v ^= v >> ssXShift
	return v
}

func mixWords(x, y uint32) uint32 {
	r := ssMixMultL*x - ssMixMultR*y
	r ^= r >> ssXShift
	return r
}

// seedSequence is the mixed entropy pool of a SeedSequence.
type seedSequence struct{ pool []uint32 }

// newSeedSequence is SeedSequence(entropy=entropy, spawn_key=spawnKey, pool_size=poolSize),
// entropy and spawnKey already converted to their uint32 words (spawnKey being the
// concatenated words of each key element). When a spawn key is present the run entropy is
// zero-padded to the pool size first.
func newSeedSequence(entropy, spawnKey []uint32, poolSize int) seedSequence {
	assembled := make([]uint32, 0, max(len(entropy), poolSize)+len(spawnKey))
	assembled = append(assembled, entropy...)
	if len(spawnKey) > 0 {
		for len(assembled) < poolSize {
			assembled = append(assembled, 0)
		}
	}
	assembled = append(assembled, spawnKey...)

	pool := make([]uint32, poolSize)
	h := hashMixer{c: ssInitA}
	for i := range pool {
		var w uint32
		if i < len(assembled) {
			w = assembled[i]
		}
		pool[i] = h.mix(w)
	}
	for src := range pool {
		for dst := range pool {
			if src != dst {
				pool[dst] = mixWords(pool[dst], h.mix(pool[src]))
			}
		}
	}
	for src := poolSize; src < len(assembled); src++ {
		for dst := range pool {
			pool[dst] = mixWords(pool[dst], h.mix(assembled[src]))
		}
	}
	return seedSequence{pool: pool}
}

// generateState is generate_state(n) with dtype uint32.
func (s seedSequence) generateState(n int) []uint32 {
	out := make([]uint32, n)
	c := uint32(ssInitB)
	for i := range out {
		v := s.pool[i%len(s.pool)]
		v ^= c
		c *= ssMultB
		v *= c
		v ^= v >> ssXShift
		out[i] = v
	}
	return out
}
