package cuda

import "testing"

// FuzzParsePTX: the PTX signature parser must not panic, and what it accepts must be sane.
func FuzzParsePTX(f *testing.F) {
	f.Add(ptxSM80[:min(len(ptxSM80), 6000)])
	f.Add([]byte(".visible .entry k(\n.param .align 8 .b8 k_param_0[232],\n.param .u64 k_param_1\n)\n{ ret; }\n"))
	f.Add([]byte(".visible .entry k(\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		entries, err := parsePTX(src)
		if err != nil {
			return
		}
		for name, ps := range entries {
			for _, p := range ps {
				if p.size <= 0 || p.align <= 0 {
					t.Fatalf("entry %s: parameter %+v", name, p)
				}
			}
		}
	})
}
