package tensortest

import (
	"fmt"
	"testing"

	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// The harness itself: the CPU backend with the portable micro-kernel on one thread, and with
// the default kernel oversubscribed on 7 threads (other work splits), must conform to the
// default CPU backend.
func TestConformanceCPUVariants(t *testing.T) {
	for _, opt := range []cpu.Options{{Threads: 1, Kernel: "go4x4"}, {Threads: 7}} {
		t.Run(fmt.Sprintf("threads=%d,kernel=%q", opt.Threads, opt.Kernel), func(t *testing.T) {
			be, err := cpu.New(opt)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			Conformance(t, be)
		})
	}
}
