package cpu

import (
	"sync"
	"sync/atomic"
)

// workers is a fixed set of goroutines that help callers of parallelFor. The caller always
// works on its own job too, so nested or concurrent parallelFor calls cannot deadlock: a job
// finishes even if no helper ever picks it up.
type workers struct {
	threads int // helpers + the calling goroutine
	jobs    chan *job
	quit    chan struct{}
	done    sync.WaitGroup
}

type job struct {
	fn      func(lo, hi int)
	n       int
	grain   int
	next    atomic.Int64
	tickets atomic.Int32 // helper slots not yet claimed
	helpers sync.WaitGroup
}

func newWorkers(threads int) *workers {
	w := &workers{threads: threads, jobs: make(chan *job, 4*threads), quit: make(chan struct{})}
	for range threads - 1 {
		w.done.Add(1)
		go w.loop()
	}
	return w
}

func (w *workers) loop() {
	defer w.done.Done()
	for {
		select {
		case j := <-w.jobs:
			if j.claim() {
				j.run()
				j.helpers.Done()
			}
		case <-w.quit:
			return
		}
	}
}

func (w *workers) close() {
	close(w.quit)
	w.done.Wait()
}

func (j *job) claim() bool {
	for {
		t := j.tickets.Load()
		if t <= 0 {
			return false
		}
		if j.tickets.CompareAndSwap(t, t-1) {
			return true
		}
	}
}

func (j *job) run() {
	for {
		lo := int(j.next.Add(int64(j.grain))) - j.grain
		if lo >= j.n {
			return
		}
		j.fn(lo, min(lo+j.grain, j.n))
	}
}

// parallelFor calls fn on consecutive ranges [lo, hi) covering [0, n), each at most grain long,
// spread over the workers, and returns when all are done.
func (w *workers) parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := (n + grain - 1) / grain
	helpers := min(w.threads-1, chunks-1)
	if helpers <= 0 {
		fn(0, n)
		return
	}
	j := &job{fn: fn, n: n, grain: grain}
	j.tickets.Store(int32(helpers))
	j.helpers.Add(helpers)
	for range helpers {
		select {
		case w.jobs <- j:
		default: // queue full: the ticket is reclaimed below
		}
	}
	j.run()
	for j.claim() { // tickets no helper took: nobody will run them
		j.helpers.Done()
	}
	j.helpers.Wait()
}

// grainFor picks a chunk size that gives each thread a few chunks for load balance but keeps
// every chunk at least minGrain long.
func (w *workers) grainFor(n, minGrain int) int {
	g := (n + 4*w.threads - 1) / (4 * w.threads)
	return max(g, minGrain, 1)
}
