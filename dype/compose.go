package dype

import (
	"fmt"
	"math"
)

// Axis is what the model needs for one RoPE axis: lane k of a token at position p is
// MScale·exp(i·p'·Omega[k]) with p' = Position(p).
type Axis struct {
	// Axis is the index (0 = caption/time, 1 = image rows, 2 = image columns).
	Axis int
	// Dims is the head dimensions of this axis; there are Dims/2 lanes.
	Dims int
	// Omega is the per-lane angular frequency actually used (Dims/2 values).
	Omega []float64
	// MScale is the amplitude (attention temperature) multiplying cos and sin.
	MScale float64
	// Positions are the distinct image-token positions along the axis, ascending (rows for
	// axis 1, columns for axis 2); nil for axis 0 and for caption axes.
	Positions []float64
	// lookup, when set, maps positions to rows of a shared integer table (LD isotropic yarn).
	lookup *rowLookup
}

// rowLookup is LD's isotropic-yarn table lookup: row = min(trunc(p) − minTrunc, last).
type rowLookup struct {
	minTrunc int64
	last     int64
}

// Lanes is Dims/2.
func (a *Axis) Lanes() int { return len(a.Omega) }

// Position maps a token coordinate to the position its lanes rotate by: the coordinate itself,
// except for LD's isotropic yarn, which looks rows up by truncated offset.
func (a *Axis) Position(p float64) float64 {
	if a.lookup == nil {
		return p
	}
	t := truncInt64(p) - a.lookup.minTrunc
	if t > a.lookup.last {
		t = a.lookup.last
	}
	return float64(t)
}

// Table returns the float32 cos and sin (mscale included) of the given coordinates:
// len(positions)·Lanes values each, row-major.
func (a *Axis) Table(positions []float64) (cos, sin []float32) {
	ps := positions
	if a.lookup != nil {
		ps = make([]float64, len(positions))
		for i, p := range positions {
			ps[i] = a.Position(p)
		}
	}
	return Table(a.Omega, a.MScale, ps)
}

// truncInt64 is tensor.long(): truncation toward zero, saturating.
func truncInt64(p float64) int64 {
	t := math.Trunc(p)
	switch {
	case t != t:
		return 0
	case t >= math.MaxInt64:
		return math.MaxInt64
	case t <= math.MinInt64:
		return math.MinInt64
	}
	return int64(t)
}

// vanillaAxis is NTK factor 1, no mscale.
func vanillaAxis(i, dims int, theta float64) Axis {
	return Axis{Axis: i, Dims: dims, Omega: VanillaFreqs(dims, theta), MScale: 1}
}

// PosEmbed is LD's DyPEPosEmbed (identical to CD's generic DyPEBasePosEmbed): θ, the three axis
// dims, the config, the base token grid and the current σ.
type PosEmbed struct {
	Theta    float64
	AxesDims [3]int
	Config   Config
	// BaseGrid is (g_h, g_w); NewPosEmbed sets ((R/8)/2, (R/8)/2).
	BaseGrid [2]int
	// Sigma is the current σ (1 = pure noise); upstream starts at 1.0.
	Sigma float64
}

// NewPosEmbed returns a PosEmbed with the base grid from cfg.BaseResolution and σ = 1.
func NewPosEmbed(theta float64, axesDims [3]int, cfg Config) PosEmbed {
	g := cfg.BasePatchGrid()
	return PosEmbed{Theta: theta, AxesDims: axesDims, Config: cfg, BaseGrid: [2]int{g, g}, Sigma: 1.0}
}

// SetSigma sets the current σ (set_timestep).
func (e *PosEmbed) SetSigma(sigma float64) { e.Sigma = sigma }

// basePatches is max(BaseGrid).
func (e *PosEmbed) basePatches() int { return max(e.BaseGrid[0], e.BaseGrid[1]) }

// methodUsed is LD's choice: config.method when enabled, else static NTK. MethodBase is static
// NTK too.
func (e *PosEmbed) methodUsed() (m Method, dynamic bool) {
	if !e.Config.Enabled {
		return MethodNTK, false
	}
	if e.Config.Method == MethodBase {
		return MethodNTK, false
	}
	return e.Config.Method, true
}

// Spans are the float32 axis_token_span of the two spatial axes and the global scale s_g.
type Spans struct {
	H, W  float64
	Scale float64 // s_g = max(1, H/g_h, W/g_w)
}

// spans computes the spatial spans of a call.
func (e *PosEmbed) spans(axes [3][]float32) Spans {
	h := AxisTokenSpan(axes[1])
	w := AxisTokenSpan(axes[2])
	return Spans{H: h, W: w, Scale: math.Max(1.0, math.Max(h/float64(e.BaseGrid[0]), w/float64(e.BaseGrid[1])))}
}

// ComponentsOfIDs is Components over token ids (N×3), as get_components(ids).
func (e *PosEmbed) ComponentsOfIDs(ids [][3]float32) ([3]Axis, error) {
	var axes [3][]float32
	for a := range axes {
		axes[a] = make([]float32, len(ids))
		for i, id := range ids {
			axes[a][i] = id[a]
		}
	}
	return e.Components(axes)
}

// Components is LD's get_components: per axis the frequencies and amplitude for a call whose
// axis a takes the values axes[a] (all values, duplicates included: the spans and the yarn
// lookup are computed from them). Axis 0 is always vanilla; axes 1 and 2 follow the method
// (vision_yarn, yarn isotropic/anisotropic, ntk), or static NTK when disabled. The Axis
// Positions are left nil.
func (e *PosEmbed) Components(axes [3][]float32) ([3]Axis, error) {
	var out [3]Axis
	for a := range 3 {
		if e.AxesDims[a] <= 0 || e.AxesDims[a]%2 != 0 {
			return out, fmt.Errorf("dype components: axis %d dims must be positive and even, got %d", a, e.AxesDims[a])
		}
		for _, v := range axes[a] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return out, fmt.Errorf("dype components: axis %d: position %v is not finite", a, v)
			}
		}
	}
	if e.BaseGrid[0] <= 0 || e.BaseGrid[1] <= 0 {
		return out, fmt.Errorf("dype components: base grid %v must be positive", e.BaseGrid)
	}
	method, dynamic := e.methodUsed()
	cfg := e.Config
	out[0] = vanillaAxis(0, e.AxesDims[0], e.Theta)
	switch method {
	case MethodVisionYarn:
		sp := e.spans(axes)
		m := MScale(sp.Scale, e.Sigma, cfg)
		for a := 1; a <= 2; a++ {
			if !(sp.Scale > 1.0) {
				out[a] = vanillaAxis(a, e.AxesDims[a], e.Theta)
				continue
			}
			g := float64(e.BaseGrid[a-1])
			local := math.Max(1.0, AxisTokenSpan(axes[a])/g)
			mo := m
			omega, ms, err := VisionYarnFreqs(VisionYarnParams{
				Dim: e.AxesDims[a], Theta: e.Theta, LinearScale: local, NTKScale: sp.Scale,
				OriMaxPELen: g, DyPE: dynamic, Sigma: e.Sigma, DypeScale: cfg.DypeScale,
				DypeExponent: cfg.DypeExponent, MScaleOverride: &mo,
			})
			if err != nil {
				return out, fmt.Errorf("dype components: axis %d: %w", a, err)
			}
			out[a] = Axis{Axis: a, Dims: e.AxesDims[a], Omega: omega, MScale: ms}
		}
	case MethodYarn:
		h, w := AxisTokenSpan(axes[1]), AxisTokenSpan(axes[2])
		sMax := math.Max(h, w)
		extrapolate := sMax > float64(e.basePatches())
		switch {
		case !extrapolate:
			for a := 1; a <= 2; a++ {
				out[a] = vanillaAxis(a, e.AxesDims[a], e.Theta)
			}
		case cfg.Anisotropic:
			for a := 1; a <= 2; a++ {
				span := AxisTokenSpan(axes[a])
				g := float64(e.BaseGrid[a-1])
				if !(span > g) {
					out[a] = vanillaAxis(a, e.AxesDims[a], e.Theta)
					continue
				}
				omega, ms, err := YarnFreqs(YarnParams{
					Dim: e.AxesDims[a], Theta: e.Theta, MaxPELen: span, OriMaxPELen: g,
					DyPE: dynamic, Sigma: e.Sigma, DypeScale: cfg.DypeScale,
					DypeExponent: cfg.DypeExponent, Aggressive: true,
				})
				if err != nil {
					return out, fmt.Errorf("dype components: axis %d: %w", a, err)
				}
				out[a] = Axis{Axis: a, Dims: e.AxesDims[a], Omega: omega, MScale: ms}
			}
		default:
			// One table over arange(0, S_max) with axis 1's dims, shared by both spatial axes.
			if e.AxesDims[1] != e.AxesDims[2] {
				return out, fmt.Errorf("dype components: isotropic yarn needs equal spatial dims, got %d and %d", e.AxesDims[1], e.AxesDims[2])
			}
			omega, ms, err := YarnFreqs(YarnParams{
				Dim: e.AxesDims[1], Theta: e.Theta, MaxPELen: sMax, OriMaxPELen: float64(e.basePatches()),
				DyPE: dynamic, Sigma: e.Sigma, DypeScale: cfg.DypeScale,
				DypeExponent: cfg.DypeExponent, Aggressive: false,
			})
			if err != nil {
				return out, fmt.Errorf("dype components: isotropic yarn: %w", err)
			}
			rows := int64(math.Ceil(sMax)) // len(arange(0, S_max))
			for a := 1; a <= 2; a++ {
				minT := int64(math.MaxInt64)
				for _, v := range axes[a] {
					minT = min(minT, truncInt64(float64(v)))
				}
				if len(axes[a]) == 0 {
					minT = 0
				}
				out[a] = Axis{Axis: a, Dims: e.AxesDims[a], Omega: omega, MScale: ms,
					lookup: &rowLookup{minTrunc: minT, last: rows - 1}}
			}
		}
	default: // MethodNTK (dynamic or static)
		sp := e.spans(axes)
		for a := 1; a <= 2; a++ {
			f := 1.0
			if sp.Scale > 1.0 {
				d := float64(e.AxesDims[a])
				f0 := math.Pow(sp.Scale, d/(d-2))
				if dynamic {
					f = math.Pow(f0, cfg.KT(e.Sigma))
				} else {
					f = f0
				}
				f = math.Max(1.0, f)
			}
			if f == 1.0 {
				out[a] = vanillaAxis(a, e.AxesDims[a], e.Theta)
				continue
			}
			out[a] = Axis{Axis: a, Dims: e.AxesDims[a], Omega: NTKFreqs(e.AxesDims[a], e.Theta, f), MScale: 1}
		}
	}
	return out, nil
}

// Scale returns the global scale s_g = max(1, S1/g_h, S2/g_w) of a call (the s of vision_yarn
// and ntk; yarn extrapolates iff max(S1, S2) exceeds max(g)).
func (e *PosEmbed) Scale(axes [3][]float32) float64 { return e.spans(axes).Scale }
