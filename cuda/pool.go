package cuda

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// rawAllocator is the memory a pool draws from (the device; a fake in tests).
type rawAllocator interface {
	alloc(n uint64) (devPtr, error)
	free(p devPtr) error
}

// memPool caches freed device blocks by size class so that a forward pass does not call the
// driver per tensor. Blocks are reused only in stream order (every op runs on the backend's
// one stream), so a block freed while kernels that use it are queued is safe to hand out:
// later work on the same stream runs after them. On an out-of-memory error the cache is
// released and the allocation retried once.
type memPool struct {
	mu       sync.Mutex
	raw      rawAllocator
	limit    uint64 // bytes kept in the cache at most (0: no limit)
	free     map[uint64][]devPtr
	sizes    map[devPtr]uint64 // live blocks and their class
	cached   uint64
	live     uint64
	peak     uint64
	rawBytes uint64 // held from the raw allocator (live + cached)
	allocs   int64  // raw allocations
	hits     int64  // allocations served from the cache

	capturing bool     // a CUDA graph is being captured
	held      []devPtr // blocks freed during the capture: the graph still uses them
}

// errNeedWarmup is returned for a raw allocation during graph capture.
var errNeedWarmup = errors.New("the memory pool has no cached block of this size during CUDA graph capture; run the captured function once before capturing")

func newMemPool(raw rawAllocator, limit uint64) *memPool {
	return &memPool{raw: raw, limit: limit, free: map[uint64][]devPtr{}, sizes: map[devPtr]uint64{}}
}

// sizeClass rounds n up: to 512 bytes below 1 MiB, else to an eighth of its power of two
// (at most 12.5% waste), so that similar sizes share blocks.
func sizeClass(n uint64) uint64 {
	if n == 0 {
		n = 1
	}
	if n <= 1<<20 {
		return (n + 511) &^ 511
	}
	p := uint64(1) << (63 - bits.LeadingZeros64(n))
	step := p / 8
	return (n + step - 1) / step * step
}

// errOutOfMemory is matched by isOOM for raw allocators that report it.
var errOutOfMemory = errors.New("out of memory")

// get returns a block of at least n bytes.
func (p *memPool) get(n uint64, isOOM func(error) bool) (devPtr, error) {
	c := sizeClass(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.free[c]; len(l) > 0 {
		ptr := l[len(l)-1]
		p.free[c] = l[:len(l)-1]
		p.cached -= c
		p.hits++
		p.take(ptr, c)
		return ptr, nil
	}
	if p.capturing {
		return 0, errNeedWarmup
	}
	ptr, err := p.raw.alloc(c)
	if err != nil && isOOM(err) && p.cached > 0 {
		if terr := p.trimLocked(); terr != nil {
			return 0, fmt.Errorf("%w (and releasing the cache failed: %v)", err, terr)
		}
		ptr, err = p.raw.alloc(c)
	}
	if err != nil {
		return 0, err
	}
	p.allocs++
	p.rawBytes += c
	p.take(ptr, c)
	return ptr, nil
}

func (p *memPool) take(ptr devPtr, c uint64) {
	p.sizes[ptr] = c
	p.live += c
	if p.live > p.peak {
		p.peak = p.live
	}
}

// put hands a block from get back. Unknown blocks and double frees are errors.
func (p *memPool) put(ptr devPtr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.sizes[ptr]
	if !ok {
		return fmt.Errorf("cuda: free of device address %#x that the pool does not hold (double free?)", uint64(ptr))
	}
	if p.capturing {
		p.held = append(p.held, ptr) // still live: the graph's replays use it
		return nil
	}
	delete(p.sizes, ptr)
	p.live -= c
	if p.limit > 0 && p.cached+c > p.limit {
		p.rawBytes -= c
		return p.raw.free(ptr)
	}
	p.free[c] = append(p.free[c], ptr)
	p.cached += c
	return nil
}

// beginCapture starts holding freed blocks (CUDA graph capture).
func (p *memPool) beginCapture() {
	p.mu.Lock()
	p.capturing, p.held = true, nil
	p.mu.Unlock()
}

// endCapture stops holding and returns the blocks held for the graph.
func (p *memPool) endCapture() []devPtr {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.capturing = false
	held := p.held
	p.held = nil
	return held
}

// putAll returns held blocks (when their graph is destroyed).
func (p *memPool) putAll(ptrs []devPtr) error {
	var first error
	for _, q := range ptrs {
		if err := p.put(q); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// trim releases every cached block to the raw allocator.
func (p *memPool) trim() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trimLocked()
}

func (p *memPool) trimLocked() error {
	var first error
	for c, l := range p.free {
		for _, ptr := range l {
			if err := p.raw.free(ptr); err != nil && first == nil {
				first = err
			}
			p.rawBytes -= c
		}
		delete(p.free, c)
	}
	p.cached = 0
	return first
}

// release frees everything, live blocks included (Close).
func (p *memPool) release() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.trimLocked()
	for ptr, c := range p.sizes {
		if err := p.raw.free(ptr); err != nil && first == nil {
			first = err
		}
		p.rawBytes -= c
		delete(p.sizes, ptr)
	}
	p.live = 0
	return first
}

// poolStats is a snapshot of the pool's accounting.
type poolStats struct {
	Live, Peak, Cached, Held uint64
	RawAllocs, CacheHits     int64
}

func (p *memPool) stats() poolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return poolStats{Live: p.live, Peak: p.peak, Cached: p.cached, Held: p.rawBytes, RawAllocs: p.allocs, CacheHits: p.hits}
}

func (p *memPool) resetPeak() {
	p.mu.Lock()
	p.peak = p.live
	p.mu.Unlock()
}
