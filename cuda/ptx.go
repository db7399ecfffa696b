package cuda

//go:generate go run ./internal/genptx -root ..

import (
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The kernels, compiled by clang-19 from kernels/all.cu (see internal/genptx). Shipping PTX
// instead of compiling CUDA C with NVRTC at first use spares users the CUDA toolkit (NVRTC is
// not part of the driver) and a first-run compile; the driver JIT-compiles PTX for the GPU in
// use and caches the machine code in its compute cache (~/.nv/ComputeCache), keyed by PTX,
// GPU and driver. CI compiles every kernel and fails on stale PTX, so what is embedded is
// exactly what the sources say.

//go:embed ptx/kernels_sm_80.ptx
var ptxSM80 []byte

//go:embed ptx/kernels_sm_90.ptx
var ptxSM90 []byte

// ptxFlavor is one embedded PTX build.
type ptxFlavor struct {
	arch         string
	major, minor int
	src          []byte
}

// ptxFlavors lists the builds, newest first.
var ptxFlavors = []ptxFlavor{{"sm_90", 9, 0, ptxSM90}, {"sm_80", 8, 0, ptxSM80}}

// selectPTX picks the newest build a GPU of compute capability major.minor can run.
func selectPTX(major, minor int) (ptxFlavor, error) {
	for _, f := range ptxFlavors {
		if major > f.major || (major == f.major && minor >= f.minor) {
			return f, nil
		}
	}
	return ptxFlavor{}, fmt.Errorf("cuda: GPU compute capability %d.%d is below 8.0, the oldest the embedded kernels target (Ampere)", major, minor)
}

// ptxParam is the size and alignment of one kernel parameter in the PTX.
type ptxParam struct{ size, align int }

var (
	entryRe = regexp.MustCompile(`(?m)^\.(?:visible|weak)\s+\.entry\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(`)
	paramRe = regexp.MustCompile(`^\.param\s+(?:\.align\s+(\d+)\s+)?\.(u|s|f|b)(8|16|32|64)(?:\s+\.ptr(?:\s+\.\w+)*(?:\s+\.align\s+\d+)?)?\s+[A-Za-z_][A-Za-z0-9_]*(?:\[(\d+)\])?$`)
)

// parsePTX returns the parameter layout of every .entry in src.
func parsePTX(src []byte) (map[string][]ptxParam, error) {
	s := string(src)
	out := map[string][]ptxParam{}
	for _, m := range entryRe.FindAllStringSubmatchIndex(s, -1) {
		name := s[m[2]:m[3]]
		end := strings.IndexByte(s[m[1]:], ')')
		if end < 0 {
			return nil, fmt.Errorf("cuda: PTX entry %s has no closing parenthesis", name)
		}
		var params []ptxParam
		for _, raw := range strings.Split(s[m[1]:m[1]+end], ",") {
			p := strings.Join(strings.Fields(raw), " ")
			if p == "" {
				continue
			}
			pm := paramRe.FindStringSubmatch(p)
			if pm == nil {
				return nil, fmt.Errorf("cuda: PTX entry %s: cannot parse parameter %q", name, p)
			}
			bitsz, _ := strconv.Atoi(pm[3])
			size, align := bitsz/8, bitsz/8
			if pm[1] != "" {
				align, _ = strconv.Atoi(pm[1])
			}
			if pm[4] != "" {
				n, _ := strconv.Atoi(pm[4])
				size *= n
			}
			if align <= 0 || align&(align-1) != 0 || align > 256 || size <= 0 || size > 1<<20 {
				return nil, fmt.Errorf("cuda: PTX entry %s: parameter %q has size %d, alignment %d", name, p, size, align)
			}
			params = append(params, ptxParam{size: size, align: align})
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("cuda: PTX defines entry %s twice", name)
		}
		out[name] = params
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cuda: PTX has no kernel entries")
	}
	return out, nil
}
