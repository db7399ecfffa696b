//go:build linux && (amd64 || arm64)

package cuda

import (
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/tensor/tensortest"
)

// TestEmuConformance runs the whole Backend, kernels included, on the emulator against the
// CPU reference: once with the built-in GEMM kernel and once through the cuBLASLt code path
// (with a fake cuBLASLt that executes its documented semantics) for the ops that multiply
// matrices.
func TestEmuConformance(t *testing.T) {
	for _, gemm := range []string{"builtin", "lt"} {
		t.Run(gemm, func(t *testing.T) {
			be, _ := newEmuBackend(t, gemm, PrecisionExact)
			all := append(tensortest.Cases(), extraCases()...)
			if gemm == "lt" {
				all = gemmCases(all)
			}
			runCases(t, be, all)
		})
	}
}

// gemmCases keeps the cases of ops that run matrix products.
func gemmCases(cs []tensortest.Case) []tensortest.Case {
	var out []tensortest.Case
	for _, c := range cs {
		for _, p := range []string{"matmul", "linear", "conv2d"} {
			if strings.HasPrefix(c.Name, p) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}
