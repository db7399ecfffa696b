package cuda

import (
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
	"github.com/dypegraph/dypegraph/tensor/tensortest"
)

// runCases runs cases on be and on the CPU reference and compares, like
// tensortest.Conformance but with inputs generated afresh (same seed) for each backend:
// Conformance uploads the host inputs after the reference ran, so an in-place case
// (rmsnorm/in-place-strided) hands the device the reference's already-normalised values.
func runCases(t *testing.T, be tensor.Backend, cases []tensortest.Case) {
	t.Helper()
	ref, err := cpu.New(cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, c := range cases {
		if c.ATol == 0 && c.RTol == 0 {
			c.ATol, c.RTol = 1e-5, 1e-5
		}
		t.Run(c.Name, func(t *testing.T) {
			want, err := c.Run(ref, c.Inputs(rand.New(rand.NewPCG(42, uint64(len(c.Name))))))
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			host := c.Inputs(rand.New(rand.NewPCG(42, uint64(len(c.Name)))))
			dev := make([]*tensor.Tensor, len(host))
			for i, h := range host {
				if dev[i], err = be.ToDevice(h); err != nil {
					t.Fatalf("upload input %d: %v", i, err)
				}
			}
			got, err := c.Run(be, dev)
			if err != nil {
				t.Fatalf("%s: %v", be.Name(), err)
			}
			tensortest.Compare(t, be, got, ref, want, c.ATol, c.RTol)
		})
	}
}
