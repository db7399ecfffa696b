package cuda

import (
	"errors"
	"fmt"
	"testing"
)

// fakeRaw is a device allocator that records what it hands out.
type fakeRaw struct {
	next     devPtr
	live     map[devPtr]uint64
	capacity uint64
	used     uint64
	allocs   int
	frees    int
	failFree bool
}

func newFakeRaw(capacity uint64) *fakeRaw {
	return &fakeRaw{next: 0x1000, live: map[devPtr]uint64{}, capacity: capacity}
}

func (f *fakeRaw) alloc(n uint64) (devPtr, error) {
	if f.used+n > f.capacity {
		return 0, fmt.Errorf("fake: %w", errOutOfMemory)
	}
	p := f.next
	f.next += devPtr(n + 256)
	f.live[p] = n
	f.used += n
	f.allocs++
	return p, nil
}

func (f *fakeRaw) free(p devPtr) error {
	n, ok := f.live[p]
	if !ok {
		return errors.New("fake: free of unknown block")
	}
	if f.failFree {
		return errors.New("fake: free failed")
	}
	delete(f.live, p)
	f.used -= n
	f.frees++
	return nil
}

func isOOMTest(err error) bool { return errors.Is(err, errOutOfMemory) }

func TestSizeClass(t *testing.T) {
	for _, c := range []struct{ n, want uint64 }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {1 << 20, 1 << 20},
		{1<<20 + 1, 1<<20 + 1<<17}, {3 << 20, 3 << 20}, {(3 << 20) + 5, 3<<20 + 1<<18}, {1 << 30, 1 << 30},
	} {
		if got := sizeClass(c.n); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.n, got, c.want)
		}
		if got := sizeClass(c.n); got < c.n || (c.n > 1<<20 && float64(got) > 1.125*float64(c.n)+1) {
			t.Errorf("sizeClass(%d) = %d wastes too much", c.n, got)
		}
	}
}

func TestPoolReuseAndAccounting(t *testing.T) {
	raw := newFakeRaw(1 << 30)
	p := newMemPool(raw, 0)
	a, err := p.get(1000, isOOMTest)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.get(3000, isOOMTest)
	s := p.stats()
	if s.Live != 1024+3072 || s.Peak != s.Live || s.RawAllocs != 2 || s.Held != s.Live {
		t.Errorf("after two gets: %+v", s)
	}
	if err := p.put(a); err != nil {
		t.Fatal(err)
	}
	c, _ := p.get(700, isOOMTest) // same class as a: reused
	if c != a {
		t.Errorf("block not reused: %#x vs %#x", c, a)
	}
	if s := p.stats(); s.CacheHits != 1 || s.RawAllocs != 2 || s.Cached != 0 {
		t.Errorf("after reuse: %+v", s)
	}
	if err := p.put(c); err != nil {
		t.Fatal(err)
	}
	if err := p.put(c); err == nil {
		t.Error("double free not reported")
	}
	if err := p.put(0xdead); err == nil {
		t.Error("free of an unknown block not reported")
	}
	p.put(b)
	if s := p.stats(); s.Live != 0 || s.Cached != 1024+3072 || s.Peak != 1024+3072 {
		t.Errorf("after frees: %+v", s)
	}
	p.resetPeak()
	if s := p.stats(); s.Peak != 0 {
		t.Errorf("peak after reset: %+v", s)
	}
	if err := p.trim(); err != nil {
		t.Fatal(err)
	}
	if len(raw.live) != 0 || p.stats().Held != 0 {
		t.Errorf("trim left %d blocks, %+v", len(raw.live), p.stats())
	}
}

func TestPoolLimit(t *testing.T) {
	raw := newFakeRaw(1 << 30)
	p := newMemPool(raw, 4096)
	var ps []devPtr
	for range 4 {
		q, _ := p.get(2048, isOOMTest)
		ps = append(ps, q)
	}
	for _, q := range ps {
		if err := p.put(q); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.stats(); s.Cached != 4096 || raw.frees != 2 || len(raw.live) != 2 {
		t.Errorf("limit 4096: %+v, %d raw frees", s, raw.frees)
	}
}

func TestPoolOOMTrimsAndRetries(t *testing.T) {
	raw := newFakeRaw(8192)
	p := newMemPool(raw, 0)
	a, _ := p.get(4096, isOOMTest)
	b, _ := p.get(4096, isOOMTest)
	p.put(a)
	p.put(b) // 8192 cached, device full
	c, err := p.get(6000, isOOMTest)
	if err != nil {
		t.Fatalf("allocation after trim failed: %v", err)
	}
	if raw.frees != 2 || p.stats().Cached != 0 {
		t.Errorf("cache not released: %d frees, %+v", raw.frees, p.stats())
	}
	if _, err := p.get(4096, isOOMTest); !errors.Is(err, errOutOfMemory) {
		t.Errorf("over capacity: %v", err)
	}
	p.put(c)
	if err := p.release(); err != nil {
		t.Fatal(err)
	}
	if len(raw.live) != 0 {
		t.Errorf("release left %d blocks", len(raw.live))
	}
}

func TestPoolReleaseLive(t *testing.T) {
	raw := newFakeRaw(1 << 20)
	p := newMemPool(raw, 0)
	p.get(100, isOOMTest)
	q, _ := p.get(5000, isOOMTest)
	p.put(q)
	if err := p.release(); err != nil {
		t.Fatal(err)
	}
	if len(raw.live) != 0 || p.stats() != (poolStats{RawAllocs: 2, Peak: p.stats().Peak}) {
		t.Errorf("after release: %d live blocks, %+v", len(raw.live), p.stats())
	}
	raw.failFree = true
	q, _ = p.get(100, isOOMTest)
	p.put(q)
	if err := p.trim(); err == nil {
		t.Error("a failing free was not reported")
	}
}
