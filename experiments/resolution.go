package experiments

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/workflows/build"
)

// Resolution is one size of a test matrix with the label its files are named by.
type Resolution struct {
	Label         string
	Width, Height int
}

// DefaultResolutions is the original test matrix (1K to 4K square) and QuickResolutions its
// --quick subset.
const (
	DefaultResolutions = "1K,1.5K,2K,3K,4K"
	QuickResolutions   = "1K,2K"
)

// ParseResolutions reads a comma-separated list: "1K", "1.5K" ... (K = 1024 px, square, labelled
// "1K_square" as the original tool), "256" (square, "256_square") or "2048x1024" (labelled as
// written). Sizes must be multiples of 16 from 16 to 16384; duplicates are errors.
func ParseResolutions(s string) ([]Resolution, error) {
	var out []Resolution
	seen := map[string]bool{}
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return nil, fmt.Errorf("resolutions %q: empty entry", s)
		}
		r, err := parseResolution(tok)
		if err != nil {
			return nil, err
		}
		if seen[r.Label] {
			return nil, fmt.Errorf("resolution %s is listed twice", tok)
		}
		seen[r.Label] = true
		out = append(out, r)
	}
	return out, nil
}

func parseResolution(tok string) (Resolution, error) {
	lower := strings.ToLower(tok)
	var r Resolution
	switch {
	case strings.HasSuffix(lower, "k"):
		k, err := strconv.ParseFloat(strings.TrimSuffix(lower, "k"), 64)
		if err != nil || !(k > 0) || math.IsInf(k, 0) {
			return r, fmt.Errorf("resolution %q: want a size like 1K, 1.5K, 256 or 2048x1024", tok)
		}
		px := k * 1024
		if px != math.Trunc(px) || px > build.MaxSize {
			return r, fmt.Errorf("resolution %q is %v px: want a whole number of pixels up to %d", tok, px, build.MaxSize)
		}
		r = Resolution{Label: strings.ToUpper(strings.TrimSuffix(lower, "k")) + "K_square", Width: int(px), Height: int(px)}
	case strings.Contains(lower, "x"):
		ws, hs, _ := strings.Cut(lower, "x")
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if err1 != nil || err2 != nil {
			return r, fmt.Errorf("resolution %q: want WIDTHxHEIGHT such as 2048x1024", tok)
		}
		r = Resolution{Label: fmt.Sprintf("%dx%d", w, h), Width: w, Height: h}
	default:
		n, err := strconv.Atoi(lower)
		if err != nil {
			return r, fmt.Errorf("resolution %q: want a size like 1K, 1.5K, 256 or 2048x1024", tok)
		}
		r = Resolution{Label: fmt.Sprintf("%d_square", n), Width: n, Height: n}
	}
	for _, d := range []int{r.Width, r.Height} {
		if d < build.MinSize || d > build.MaxSize || d%build.SizeStep != 0 {
			return r, fmt.Errorf("resolution %q: sides must be multiples of %d from %d to %d pixels", tok, build.SizeStep, build.MinSize, build.MaxSize)
		}
	}
	return r, nil
}
