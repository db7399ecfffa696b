package cuda

import (
	"context"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/cuda/internal/kernelbuild"
)

// TestPTXUpToDate fails when the embedded PTX was not regenerated after a kernel source
// changed (always checked, by the source hash in the PTX header) and, where clang-19 is
// installed, compiles every kernel afresh and compares with the committed PTX.
func TestPTXUpToDate(t *testing.T) {
	hash, err := kernelbuild.SourceHash("kernels")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ptxFlavors {
		info, err := kernelbuild.ParseHeader(f.src)
		if err != nil {
			t.Fatalf("%s: %v", f.arch, err)
		}
		if info.Arch != f.arch {
			t.Errorf("ptx for %s says arch %s", f.arch, info.Arch)
		}
		if info.Hash != hash {
			t.Fatalf("embedded %s PTX was built from sources %.12s, the kernels are now %.12s: run go run ./cuda/internal/genptx", f.arch, info.Hash, hash)
		}
	}
	if testing.Short() {
		t.Skip("source hash matches; -short skips the fresh compile")
	}
	clang, err := kernelbuild.FindClang()
	if err != nil {
		t.Fatalf("compile the kernels afresh (needs clang-19; .ci/run installs it): %v", err)
	}
	notes, err := kernelbuild.Check(context.Background(), clang, "kernels", "ptx")
	for _, n := range notes {
		t.Log(n)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestKernelSignatures checks, for every embedded PTX build, that each kernel the Go code
// launches exists with exactly the parameter sizes and alignments the Go side packs, and
// that the PTX has no kernel the Go code does not know.
func TestKernelSignatures(t *testing.T) {
	for _, f := range ptxFlavors {
		entries, err := parsePTX(f.src)
		if err != nil {
			t.Fatalf("%s: %v", f.arch, err)
		}
		known := map[string]bool{}
		for _, k := range allKernels {
			known[k.name] = true
			ps, ok := entries[k.name]
			if !ok {
				t.Errorf("%s: kernel %s is not in the PTX", f.arch, k.name)
				continue
			}
			if len(ps) != len(k.params) {
				t.Errorf("%s: kernel %s has %d parameters in the PTX, the Go side packs %d", f.arch, k.name, len(ps), len(k.params))
				continue
			}
			for i, p := range ps {
				if p.size != k.params[i].size || p.align != k.params[i].align {
					t.Errorf("%s: kernel %s parameter %d is %d bytes aligned %d in the PTX, the Go side packs %d aligned %d",
						f.arch, k.name, i, p.size, p.align, k.params[i].size, k.params[i].align)
				}
			}
		}
		for name := range entries {
			if !known[name] {
				t.Errorf("%s: PTX kernel %s is not declared in kernels.go", f.arch, name)
			}
		}
		src := string(f.src)
		for _, want := range []string{".target " + f.arch, ".address_size 64"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s: PTX lacks %q", f.arch, want)
			}
		}
	}
}

func TestParsePTX(t *testing.T) {
	src := []byte(`// x
.version 7.8
.target sm_90
.address_size 64
.visible .entry k1(
	.param .u64 k1_param_0,
	.param .align 8 .b8 k1_param_1[232],
	.param .f32 k1_param_2,
	.param .u64 .ptr .global .align 4 k1_param_3
)
{ ret; }
.visible .entry k2()
{ ret; }
`)
	e, err := parsePTX(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []ptxParam{{8, 8}, {232, 8}, {4, 4}, {8, 8}}
	if len(e["k1"]) != len(want) {
		t.Fatalf("k1 params %v", e["k1"])
	}
	for i := range want {
		if e["k1"][i] != want[i] {
			t.Errorf("param %d = %v, want %v", i, e["k1"][i], want[i])
		}
	}
	if ps, ok := e["k2"]; !ok || len(ps) != 0 {
		t.Errorf("k2 = %v, %v", ps, ok)
	}
	if _, err := parsePTX([]byte(".version 7.0\n")); err == nil {
		t.Error("PTX without entries accepted")
	}
	if _, err := parsePTX([]byte(".visible .entry bad(\n.param .weird x\n)\n")); err == nil {
		t.Error("unparsable parameter accepted")
	}
}

func TestSelectPTX(t *testing.T) {
	for _, c := range []struct {
		major, minor int
		want         string
	}{{8, 0, "sm_80"}, {8, 6, "sm_80"}, {8, 9, "sm_80"}, {9, 0, "sm_90"}, {10, 0, "sm_90"}, {12, 0, "sm_90"}} {
		f, err := selectPTX(c.major, c.minor)
		if err != nil || f.arch != c.want {
			t.Errorf("cc %d.%d: %v %v, want %s", c.major, c.minor, f.arch, err, c.want)
		}
	}
	if _, err := selectPTX(7, 5); err == nil || !strings.Contains(err.Error(), "7.5") {
		t.Errorf("cc 7.5: %v", err)
	}
}
