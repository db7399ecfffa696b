package vae

import (
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/tensor/resample"
)

// Bislerp resizes latents src [n, c, h, w] (float32, row-major) to [n, c, outH, outW] with
// ComfyUI's "bislerp" upscale method (comfy.utils.bislerp): a bilinear resize along the width
// and then along the height in which each pair of neighbouring C-channel vectors is blended by
// spherical interpolation of their directions and linear interpolation of their norms. Source
// positions and ratios come from torch's bilinear interpolation of the index ramp (as ComfyUI
// derives them); vectors whose directions nearly coincide keep the first one, nearly opposite
// ones are blended linearly. Arithmetic is float32 per element with float64 reductions.
func Bislerp(src []float32, n, c, h, w, outH, outW int) ([]float32, error) {
	if n < 0 || c <= 0 || h <= 0 || w <= 0 || outH <= 0 || outW <= 0 {
		return nil, fmt.Errorf("vae: bislerp: invalid sizes [%d %d %d %d] -> %dx%d", n, c, h, w, outH, outW)
	}
	if len(src) != n*c*h*w {
		return nil, fmt.Errorf("vae: bislerp: %d values for [%d %d %d %d]", len(src), n, c, h, w)
	}
	rw, c1w, c2w, err := bilinearData(w, outW)
	if err != nil {
		return nil, err
	}
	rh, c1h, c2h, err := bilinearData(h, outH)
	if err != nil {
		return nil, err
	}
	// Along the width: [n, c, h, w] -> [n, c, h, outW].
	mid := make([]float32, n*c*h*outW)
	a, b, o := make([]float32, c), make([]float32, c), make([]float32, c)
	for bi := range n {
		img := src[bi*c*h*w:]
		dst := mid[bi*c*h*outW:]
		for y := range h {
			for x := range outW {
				for k := range c {
					a[k] = img[(k*h+y)*w+c1w[x]]
					b[k] = img[(k*h+y)*w+c2w[x]]
				}
				slerp(o, a, b, rw[x])
				for k := range c {
					dst[(k*h+y)*outW+x] = o[k]
				}
			}
		}
	}
	// Along the height: [n, c, h, outW] -> [n, c, outH, outW].
	out := make([]float32, n*c*outH*outW)
	for bi := range n {
		img := mid[bi*c*h*outW:]
		dst := out[bi*c*outH*outW:]
		for y := range outH {
			for x := range outW {
				for k := range c {
					a[k] = img[(k*h+c1h[y])*outW+x]
					b[k] = img[(k*h+c2h[y])*outW+x]
				}
				slerp(o, a, b, rh[y])
				for k := range c {
					dst[(k*outH+y)*outW+x] = o[k]
				}
			}
		}
	}
	return out, nil
}

// bilinearData is generate_bilinear_data: the torch-bilinear resize (align_corners=False) of the
// ramp 0..n-1 to m values gives the fractional source positions; ratios are their fractional
// parts, first indices their truncation, second indices the truncation of the resized ramp
// 1..n with its last value lowered to n-1.
func bilinearData(n, m int) (ratios []float32, first, second []int, err error) {
	ramp := make([]float32, n)
	for i := range ramp {
		ramp[i] = float32(i)
	}
	c1 := make([]float32, m)
	if err := resample.Planes(c1, ramp, 1, 1, n, 1, m, resample.Bilinear); err != nil {
		return nil, nil, nil, fmt.Errorf("vae: bislerp: %w", err)
	}
	for i := range ramp {
		ramp[i] = float32(i + 1)
	}
	ramp[n-1]--
	c2 := make([]float32, m)
	if err := resample.Planes(c2, ramp, 1, 1, n, 1, m, resample.Bilinear); err != nil {
		return nil, nil, nil, fmt.Errorf("vae: bislerp: %w", err)
	}
	ratios, first, second = make([]float32, m), make([]int, m), make([]int, m)
	for i := range m {
		ratios[i] = c1[i] - float32(math.Floor(float64(c1[i])))
		first[i] = int(c1[i])
		second[i] = int(c2[i])
	}
	return ratios, first, second, nil
}

// slerp blends the vectors a and b by ratio r into o as comfy.utils.bislerp's slerp does:
// directions interpolated spherically, the result scaled by the linearly interpolated norm; a
// zero vector has a zero direction; dot > 1-1e-5 keeps a, dot < 1e-5-1 interpolates linearly.
func slerp(o, a, b []float32, r float32) {
	var na2, nb2 float64
	for k := range a {
		na2 += float64(a[k]) * float64(a[k])
		nb2 += float64(b[k]) * float64(b[k])
	}
	na, nb := float32(math.Sqrt(na2)), float32(math.Sqrt(nb2))
	var dot64 float64
	for k := range a {
		dot64 += float64(unit(a[k], na)) * float64(unit(b[k], nb))
	}
	dot := float32(dot64)
	const hi, lo = float32(1 - 1e-5), float32(1e-5 - 1)
	switch {
	case dot > hi:
		copy(o, a)
		return
	case dot < lo:
		for k := range o {
			o[k] = float32(a[k]*(1-r)) + float32(b[k]*r)
		}
		return
	}
	omega := float32(math.Acos(float64(dot)))
	so := float32(math.Sin(float64(omega)))
	wa := float32(math.Sin(float64((1-r)*omega))) / so
	wb := float32(math.Sin(float64(r*omega))) / so
	scale := float32(na*(1-r)) + float32(nb*r)
	for k := range o {
		v := float32(wa*unit(a[k], na)) + float32(wb*unit(b[k], nb))
		o[k] = v * scale
	}
}

// unit is x/norm, or 0 when the norm is 0 (as bislerp zeroes normalised zero vectors).
func unit(x, norm float32) float32 {
	if norm == 0 {
		return 0
	}
	return x / norm
}
