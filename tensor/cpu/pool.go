package cpu

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dypegraph/dypegraph/tensor"
)

// buffer is a block of pooled host memory. It implements tensor.HostMemory.
type buffer struct {
	full  []byte // the whole allocation (class size), 8-byte aligned
	data  []byte // full[:requested]
	pool  *pool
	freed atomic.Bool
}

func (b *buffer) Device() tensor.Device { return tensor.CPU }
func (b *buffer) Size() int             { return len(b.data) }
func (b *buffer) Bytes() []byte         { return b.data }

// f32 returns the first n float32s of the buffer.
func (b *buffer) f32(n int) []float32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b.full[0])), n)
}

// pool recycles buffers by size class so that a forward pass reuses the memory of the previous
// op instead of allocating. Classes keep 3 significant bits (at most 12.5% waste).
type pool struct {
	mu     sync.Mutex
	free   map[int][]*buffer
	cached int64 // bytes held in free lists
	limit  int64 // free-list bytes kept at most; beyond that, buffers go to the GC
	allocs atomic.Int64
	inUse  atomic.Int64 // buffers handed out by get and not yet put back
}

func newPool(limit int64) *pool { return &pool{free: map[int][]*buffer{}, limit: limit} }

func sizeClass(n int) int {
	if n <= 4096 {
		return 4096
	}
	g := 1 << (bits.Len(uint(n-1)) - 3)
	return (n + g - 1) / g * g
}

// get returns a buffer of n bytes with unspecified contents.
func (p *pool) get(n int) *buffer {
	c := sizeClass(n)
	p.mu.Lock()
	if l := p.free[c]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		p.cached -= int64(c)
		p.mu.Unlock()
		b.data = b.full[:n]
		b.freed.Store(false)
		p.inUse.Add(1)
		return b
	}
	p.mu.Unlock()
	p.allocs.Add(1)
	p.inUse.Add(1)
	w := make([]uint64, c/8)
	full := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), c)
	return &buffer{full: full, data: full[:n], pool: p}
}

// getF32 returns a scratch slice of n float32s and its buffer (for put).
func (p *pool) getF32(n int) ([]float32, *buffer) {
	b := p.get(4 * max(n, 1))
	return b.f32(n), b
}

// put returns b to the pool; a second put of the same buffer is ignored.
func (p *pool) put(b *buffer) {
	if b == nil || b.pool != p || !b.freed.CompareAndSwap(false, true) {
		return
	}
	p.inUse.Add(-1)
	c := len(b.full)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cached+int64(c) > p.limit {
		return
	}
	p.free[c] = append(p.free[c], b)
	p.cached += int64(c)
}

// drain drops every cached buffer.
func (p *pool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = map[int][]*buffer{}
	p.cached = 0
}
