package tensortest

import (
	"testing"

	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// The harness itself: the CPU backend with the portable micro-kernel and one thread must
// conform to the default CPU backend.
func TestConformancePortableCPU(t *testing.T) {
	be, err := cpu.New(cpu.Options{Threads: 1, Kernel: "go4x4"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	Conformance(t, be)
}
