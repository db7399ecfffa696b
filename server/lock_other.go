//go:build !unix

package server

// dirLock is a no-op where flock is not available: do not run two servers on one data dir.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() {}
