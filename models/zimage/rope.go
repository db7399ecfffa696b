package zimage

import (
	"fmt"
	"math"
	"reflect"

	"github.com/dypegraph/dypegraph/dype"
)

// RopeProvider gives the RoPE frequencies of the current sampling step. *dype.Rope implements
// it: the sampler sets its σ (SetSigma) before each model call. A nil provider (or a nil
// *dype.Rope) means the plain Z-Image RoPE.
type RopeProvider interface {
	Step() (*dype.Step, error)
}

// ropeLayout is what a forward pass needs tables for.
type ropeLayout struct {
	capRows      int // caption rows, padded
	gridH, gridW int // image token grid
	imgRows      int // image rows, padded
}

// ropeTables are float32 cos/sin tables, rows = [caption rows; image rows], lanes columns.
type ropeTables struct {
	cos, sin []float32
	lanes    int
}

// isNil reports whether p is nil or a typed nil pointer.
func isNil(p RopeProvider) bool {
	if p == nil {
		return true
	}
	v := reflect.ValueOf(p)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// tables builds the tables of one forward pass: plain RoPE without a provider, else the
// provider's step.
func (m *Model) tables(p RopeProvider, l ropeLayout) (ropeTables, error) {
	if isNil(p) {
		return plainTables(m.cfg, l), nil
	}
	st, err := p.Step()
	if err != nil {
		return ropeTables{}, fmt.Errorf("zimage: rope step: %w", err)
	}
	lanes := m.cfg.HeadDim / 2
	if st.Lanes() != lanes {
		return ropeTables{}, fmt.Errorf("zimage: the DyPE rope has %d lanes, the model's heads need %d (axes %v)", st.Lanes(), lanes, m.cfg.AxesDims)
	}
	if h, w := st.TokenGrid(); h != l.gridH || w != l.gridW || st.ImageRows() != l.imgRows {
		return ropeTables{}, fmt.Errorf("zimage: the DyPE rope was built for a %d×%d token grid (%d rows), the latent gives %d×%d (%d rows)", h, w, st.ImageRows(), l.gridH, l.gridW, l.imgRows)
	}
	capIDs := st.CaptionIDs(l.capRows)
	imgIDs := st.ImageIDs(float64(l.capRows + 1))
	cc, cs := st.CaptionTable(capIDs)
	ic, is := st.ImageTable(imgIDs)
	return ropeTables{cos: append(cc, ic...), sin: append(cs, is...), lanes: lanes}, nil
}

// axisOmega is ComfyUI's rope() frequency vector of one axis (comfy/ldm/flux/math.py), in
// float64: ω_k = 1/θ^s_k with s = linspace(0, (d−2)/d, d/2) computed as torch's linspace does
// (from the start for the first half, from the end for the second).
func axisOmega(d int, theta float64) []float64 {
	n := d / 2
	omega := make([]float64, n)
	end := float64(d-2) / float64(d)
	step := 0.0
	if n > 1 {
		step = end / float64(n-1)
	}
	for k := range n {
		var s float64
		if k < n/2 {
			s = step * float64(k)
		} else {
			s = end - step*float64(n-1-k)
		}
		omega[k] = 1.0 / math.Pow(theta, s)
	}
	return omega
}

// axisRows returns cos/sin rows (len(omega) each) for positions; the angle and the cosine are
// taken in float64 and rounded to float32 at the end, as ComfyUI does.
type axisRows struct {
	omega []float64
	cache map[float32]int
	cos   []float32
	sin   []float32
}

func newAxisRows(d int, theta float64) *axisRows {
	return &axisRows{omega: axisOmega(d, theta), cache: map[float32]int{}}
}

// row returns the offset of the rows of position p (a float32 position id, as ComfyUI keeps
// them).
func (a *axisRows) row(p float32) int {
	if off, ok := a.cache[p]; ok {
		return off
	}
	off := len(a.cos)
	for _, w := range a.omega {
		ang := float64(p) * w
		a.cos = append(a.cos, float32(math.Cos(ang)))
		a.sin = append(a.sin, float32(math.Sin(ang)))
	}
	a.cache[p] = off
	return off
}

// plainTables are the tables of ComfyUI's EmbedND for the position ids of §4.3 step 4:
// caption row j → (1+j, 0, 0); image token (h, w) → (capRows+1, h, w); image padding → (0,0,0).
func plainTables(c Config, l ropeLayout) ropeTables {
	var axes [3]*axisRows
	lanes := 0
	for i := range axes {
		axes[i] = newAxisRows(c.AxesDims[i], c.RopeTheta)
		lanes += c.AxesDims[i] / 2
	}
	rows := l.capRows + l.imgRows
	t := ropeTables{cos: make([]float32, 0, rows*lanes), sin: make([]float32, 0, rows*lanes), lanes: lanes}
	put := func(id [3]float32) {
		for i, ax := range axes {
			off := ax.row(id[i])
			n := len(ax.omega)
			t.cos = append(t.cos, ax.cos[off:off+n]...)
			t.sin = append(t.sin, ax.sin[off:off+n]...)
		}
	}
	for j := range l.capRows {
		put([3]float32{float32(j) + 1, 0, 0})
	}
	n := l.gridH * l.gridW
	for i := range l.imgRows {
		if i >= n {
			put([3]float32{})
			continue
		}
		put([3]float32{float32(l.capRows + 1), float32(i / l.gridW), float32(i % l.gridW)})
	}
	return t
}
