package cuda

import (
	"errors"
	"fmt"
	"sync"
)

// Graph is a captured sequence of the backend's work (a CUDA graph) that Launch replays with
// one driver call. The tensors the captured function used, its inputs and outputs, must stay
// allocated while the graph exists; temporaries it freed stay reserved for the graph until
// Close.
type Graph struct {
	be     *Backend
	h      graphHandle
	held   []devPtr
	closed bool
	mu     sync.Mutex
}

// errCapture is what a device reports for work that cannot be captured into a graph.
var errCapture = errors.New("not allowed while a CUDA graph is being captured")

var captureMu sync.Mutex // one capture at a time per process: the stream is shared state

// CaptureGraph records fn's work on the backend into a graph instead of running it. While
// it runs, fn may only queue ops on tensors of this backend (no Read, Write, ToDevice, ToHost
// or Synchronize), no other goroutine may use the backend, and every allocation must be
// served from memory freed earlier: run fn once before capturing so that the pool holds
// blocks of the sizes it needs.
func (be *Backend) CaptureGraph(fn func() error) (*Graph, error) {
	captureMu.Lock()
	defer captureMu.Unlock()
	if err := be.dev.sync(); err != nil {
		return nil, fmt.Errorf("cuda: capture graph: %w", err)
	}
	be.pool.beginCapture()
	if err := be.dev.beginCapture(); err != nil {
		be.pool.putAll(be.pool.endCapture())
		return nil, fmt.Errorf("cuda: capture graph: %w", err)
	}
	ferr := fn()
	h, err := be.dev.endCapture()
	held := be.pool.endCapture()
	if ferr != nil || err != nil {
		if err == nil {
			be.dev.destroyGraph(h)
		}
		be.pool.putAll(held)
		if ferr != nil {
			return nil, fmt.Errorf("cuda: capture graph: %w", ferr)
		}
		return nil, fmt.Errorf("cuda: capture graph: %w", err)
	}
	return &Graph{be: be, h: h, held: held}, nil
}

// Launch runs the captured work (queued on the backend's stream like any op).
func (g *Graph) Launch() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("cuda: launch of a closed graph")
	}
	if err := g.be.dev.launchGraph(g.h); err != nil {
		return fmt.Errorf("cuda: launch graph: %w", err)
	}
	return nil
}

// Close destroys the graph and hands the temporaries it held back to the pool.
func (g *Graph) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	err := g.be.dev.sync()
	if derr := g.be.dev.destroyGraph(g.h); err == nil {
		err = derr
	}
	if perr := g.be.pool.putAll(g.held); err == nil {
		err = perr
	}
	return err
}
