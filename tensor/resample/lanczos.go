package resample

import "math"

// Pillow's 8-bit resampling works in fixed point with this many fractional bits.
const pilPrecisionBits = 32 - 8 - 2

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

func lanczosFilter(x float64) float64 {
	if -3 <= x && x < 3 {
		return sinc(x) * sinc(x/3)
	}
	return 0
}

// pilCoefficients computes Pillow's normalised fixed-point LANCZOS coefficients for resizing
// inSize samples to outSize: for each output index, the first input index and the weights.
func pilCoefficients(inSize, outSize int) (first []int, count []int, ksize int, coeffs []int32) {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := 3 * filterScale
	ksize = int(math.Ceil(support))*2 + 1
	first = make([]int, outSize)
	count = make([]int, outSize)
	coeffs = make([]int32, outSize*ksize)
	k := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		var total float64
		for x := 0; x < xmax; x++ {
			k[x] = lanczosFilter((float64(x+xmin) - center + 0.5) / filterScale)
			total += k[x]
		}
		for x := 0; x < xmax; x++ {
			v := k[x]
			if total != 0 {
				v /= total
			}
			if v < 0 {
				coeffs[xx*ksize+x] = int32(-0.5 + v*(1<<pilPrecisionBits))
			} else {
				coeffs[xx*ksize+x] = int32(0.5 + v*(1<<pilPrecisionBits))
			}
		}
		first[xx], count[xx] = xmin, xmax
	}
	return first, count, ksize, coeffs
}

func clip8(v int64) uint8 {
	v >>= pilPrecisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// LanczosU8 resizes planes consecutive h×w 8-bit planes like Pillow's Image.resize with
// Resampling.LANCZOS: a horizontal pass (when the width changes) then a vertical pass (when the
// height changes), each rounding to 8 bits.
func LanczosU8(dst, src []uint8, planes, h, w, outH, outW int) {
	tmp := src
	if outW != w {
		first, count, ksize, coeffs := pilCoefficients(w, outW)
		tmp = make([]uint8, planes*h*outW)
		for p := 0; p < planes*h; p++ {
			row := src[p*w : (p+1)*w]
			o := tmp[p*outW : (p+1)*outW]
			for xx := 0; xx < outW; xx++ {
				acc := int64(1) << (pilPrecisionBits - 1)
				k := coeffs[xx*ksize:]
				for x := 0; x < count[xx]; x++ {
					acc += int64(row[first[xx]+x]) * int64(k[x])
				}
				o[xx] = clip8(acc)
			}
		}
	}
	if outH == h {
		copy(dst, tmp[:planes*h*outW])
		return
	}
	first, count, ksize, coeffs := pilCoefficients(h, outH)
	for p := 0; p < planes; p++ {
		in := tmp[p*h*outW : (p+1)*h*outW]
		out := dst[p*outH*outW : (p+1)*outH*outW]
		for yy := 0; yy < outH; yy++ {
			k := coeffs[yy*ksize:]
			for xx := 0; xx < outW; xx++ {
				acc := int64(1) << (pilPrecisionBits - 1)
				for y := 0; y < count[yy]; y++ {
					acc += int64(in[(first[yy]+y)*outW+xx]) * int64(k[y])
				}
				out[yy*outW+xx] = clip8(acc)
			}
		}
	}
}

// ToU8 converts a float in [0,1] to 8 bits the way ComfyUI does before handing images to
// Pillow and when saving: clip(255·v, 0, 255) then truncate toward zero.
func ToU8(v float32) uint8 {
	x := float32(255) * v // float32 like numpy on a float32 array
	if !(x > 0) {         // also maps NaN to 0, as numpy's clip+astype does in practice
		return 0
	}
	if x >= 255 {
		return 255
	}
	return uint8(x)
}

func lanczosPlanes(dst, src []float32, planes, h, w, outH, outW int) {
	in := make([]uint8, planes*h*w)
	for i, v := range src[:planes*h*w] {
		in[i] = ToU8(v)
	}
	out := make([]uint8, planes*outH*outW)
	LanczosU8(out, in, planes, h, w, outH, outW)
	for i, v := range out {
		dst[i] = float32(v) / 255
	}
}
