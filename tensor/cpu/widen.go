package cpu

import (
	"math"

	"github.com/dypegraph/dypegraph/tensor"
)

// Widening of 16-bit floats to float32 on the load and GEMM packing paths. Weights stored as
// bf16 or f16 are converted panel by panel while packing, so the conversion runs once per
// weight element per GEMM (per K×N panel) and dominates when M is small. Two shapes occur:
// contiguous runs (a row of activations, lanes of B side by side) and the transposing pack of
// a Linear weight [N, K], where each GEMM lane (column of B) is a contiguous row along K that
// the packed panel stores with stride NR.

// widenImpl is one implementation of the widening kernels; all implementations give
// bit-identical results (the conversions are exact).
type widenImpl struct {
	name string
	// bf16 widens contiguous values: dst[i] = float32(src[i]) for i < len(src).
	bf16 func(dst []float32, src []uint16)
	// bf16T and f16T widen and transpose 8 rows of length kc:
	// dst[kk*ldd+r] = float32(src[r*lds+kk]) for r < 8, kk < kc.
	bf16T, f16T func(dst []float32, ldd int, src []uint16, lds, kc int)
	// f32T is the float32 transpose of the same layout.
	f32T func(dst []float32, ldd int, src []float32, lds, kc int)
}

// widen is the implementation in use: the fastest available (benchmarks swap it to compare).
var widen = func() widenImpl {
	impls := widenImpls()
	return impls[len(impls)-1]
}()

var widenGo = widenImpl{name: "go", bf16: bf16ToF32Go, bf16T: bf16TGo, f16T: f16TGo, f32T: f32TGo}

func bf16ToF32Go(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

func bf16TGo(dst []float32, ldd int, src []uint16, lds, kc int) {
	for r := range 8 {
		s := src[r*lds : r*lds+kc]
		for kk, h := range s {
			dst[kk*ldd+r] = math.Float32frombits(uint32(h) << 16)
		}
	}
}

func f16TGo(dst []float32, ldd int, src []uint16, lds, kc int) {
	for r := range 8 {
		s := src[r*lds : r*lds+kc]
		for kk, h := range s {
			dst[kk*ldd+r] = tensor.F16ToF32(h)
		}
	}
}

func f32TGo(dst []float32, ldd int, src []float32, lds, kc int) {
	for r := range 8 {
		s := src[r*lds : r*lds+kc]
		for kk, f := range s {
			dst[kk*ldd+r] = f
		}
	}
}

// packRowsT packs lanes rows of v (float32 or 16-bit floats), each contiguous along K (row r at base + r*laneStride),
// into dst[kk*width + r] for kk < kc, 8 rows at a time with the transposing kernels; it
// returns how many rows it packed (a multiple of 8), leaving the rest to the caller.
func (v *view) packRowsT(dst []float32, width, base, laneStride, lanes, kc int) int {
	if laneStride < 0 || kc < 8 || lanes < 8 {
		return 0
	}
	var t func(dst []float32, ldd int, src []uint16, lds, kc int)
	switch v.dt {
	case tensor.F32:
		l := 0
		for ; l+8 <= lanes; l += 8 {
			off := base + l*laneStride
			widen.f32T(dst[l:], width, v.f32[off:off+7*laneStride+kc], laneStride, kc)
		}
		return l
	case tensor.BF16:
		t = widen.bf16T
	case tensor.F16:
		t = widen.f16T
	default:
		return 0
	}
	l := 0
	for ; l+8 <= lanes; l += 8 {
		off := base + l*laneStride
		t(dst[l:], width, v.u16[off:off+7*laneStride+kc], laneStride, kc)
	}
	return l
}
