package dype

import (
	"math"
	"slices"
)

// AxisTokenSpan is axis_token_span over all values of one axis, in float32 as upstream:
// ≤ 1 value → 1; span = max − min ≤ 0 → 1; step = smallest gap between distinct values;
// step ≤ 1e-6 → the number of values; else span/step + 1 (float32 division and addition, so a
// stride-2/3 grid of 10 gives 10.000001907…). Gaps count as missing positions ({0,1,3} → 4).
// NaN values give 1.
func AxisTokenSpan(values []float32) float64 {
	if len(values) <= 1 {
		return 1.0
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		if v != v {
			return 1.0
		}
		lo = min(lo, v)
		hi = max(hi, v)
	}
	span := hi - lo
	if !(span > 0) {
		return 1.0
	}
	u := uniqueSorted(values)
	if len(u) <= 1 {
		return 1.0
	}
	step := u[1] - u[0]
	for i := 2; i < len(u); i++ {
		step = min(step, u[i]-u[i-1])
	}
	if float64(step) <= 1e-6 {
		return float64(len(values))
	}
	q := span / step
	return float64(q + 1.0)
}

// uniqueSorted returns the distinct values ascending (a new slice).
func uniqueSorted(values []float32) []float32 {
	u := slices.Clone(values)
	slices.Sort(u)
	return slices.Compact(u)
}

// gridAxis holds the parameters of the PI→integer blend of one axis.
type gridAxis struct {
	apply       bool
	step, start float32
}

// Thresholds of torch.isclose(step, 1, atol=1e-3) and torch.isclose(step, 0) in float32.
var (
	iscloseOne  = float32(1e-3) + float32(1e-5)*float32(1.0)
	iscloseZero = float32(1e-8)
)

// newGridAxis derives the blend parameters from the distinct image coordinates of an axis
// (ascending) and the number of image rows they came from: step = lower median of the gaps,
// start = the smallest coordinate; skipped when the step is ≈ 1 or ≈ 0.
func newGridAxis(unique []float32, numel int) gridAxis {
	if numel <= 1 || len(unique) <= 1 {
		return gridAxis{}
	}
	deltas := make([]float32, len(unique)-1)
	for i := range deltas {
		deltas[i] = unique[i+1] - unique[i]
	}
	slices.Sort(deltas)
	step := deltas[(len(deltas)-1)/2]
	if step == 1 || float32(math.Abs(float64(step-1))) <= iscloseOne {
		return gridAxis{}
	}
	if step == 0 || float32(math.Abs(float64(step))) <= iscloseZero {
		return gridAxis{}
	}
	return gridAxis{apply: true, step: step, start: unique[0]}
}

// at blends one coordinate: p + ((p − start)/step + start − p)·b, every operation in float32.
func (g gridAxis) at(p, blend float32) float32 {
	if !g.apply {
		return p
	}
	full := (p-g.start)/g.step + g.start
	return p + float32((full-p)*blend) // conversion forbids FMA fusion
}

// BlendThreshold: a blend factor ≤ 0.001 leaves the positions unchanged (upstream).
const BlendThreshold = 0.001

// ResizeRopeGrid is _resize_rope_grid (LD and CD): it blends the spatial axes (1 and 2) of the
// image rows (rows with a non-zero spatial coordinate) from a stretched grid towards integer
// steps, p' = p + ((p − start)/step + start − p)·blend, applied to every row, in float32. The
// blend is 1 − t_norm^λt (BlendToFullScale); ≤ 0.001 returns the ids unchanged. The input is
// not modified.
func ResizeRopeGrid(ids [][3]float32, blend float64) [][3]float32 {
	out := slices.Clone(ids)
	var rows []int
	for i, id := range ids {
		if id[1] != 0 || id[2] != 0 {
			rows = append(rows, i)
		}
	}
	if len(rows) == 0 || blend <= BlendThreshold {
		return out
	}
	b := float32(blend)
	for axis := 1; axis <= 2; axis++ {
		coords := make([]float32, len(rows))
		for j, r := range rows {
			coords[j] = ids[r][axis]
		}
		g := newGridAxis(uniqueSorted(coords), len(coords))
		if !g.apply {
			continue
		}
		for i := range out {
			out[i][axis] = g.at(ids[i][axis], b)
		}
	}
	return out
}
