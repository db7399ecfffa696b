//go:build race

package experiments

// raceEnabled shrinks the end-to-end runs under the race detector, which makes the CPU kernels
// an order of magnitude slower.
const raceEnabled = true
