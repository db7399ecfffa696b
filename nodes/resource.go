package nodes

import (
	"sync"
)

// Releaser is implemented by node values that hold loaded models (MODEL, CLIP, VAE handles).
// The executor retains a value when it caches it and releases it when the cache drops it; the
// model's memory (its file mapping and backend buffers) is freed when the last holder lets go.
// Handles that share one loaded model (a patched MODEL and its source) share the count.
type Releaser interface {
	Retain()
	Release()
}

// sharedModel counts the holders of one loaded model and closes it at zero.
type sharedModel struct {
	mu     sync.Mutex
	refs   int
	closed bool
	close  func() error
}

func newSharedModel(close func() error) *sharedModel { return &sharedModel{close: close} }

func (s *sharedModel) retain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs++
}

func (s *sharedModel) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs > 0 {
		s.refs--
	}
	if s.refs == 0 && !s.closed && s.close != nil {
		s.closed = true
		_ = s.close()
	}
}
