// Package resample owns the interpolation kernels that resize images and latents exactly as
// ComfyUI does: torch.nn.functional.interpolate (align_corners=False, no antialias) for
// nearest-exact, bilinear, bicubic and area, and Pillow's LANCZOS filter for lanczos.
//
// The kernels work on plain float32 planes (one H×W plane per image channel, plane-major like a
// contiguous NCHW tensor) so that both the CPU tensor backend and the image nodes can call them.
// Index and weight arithmetic is float32 where torch's CPU kernels use float32, so results match
// torch bit for bit in the common cases. The package must not know about nodes or models.
package resample

import (
	"fmt"
	"math"
)

// Method names an interpolation mode by its ComfyUI name.
type Method string

// The interpolation modes.
const (
	NearestExact Method = "nearest-exact"
	Bilinear     Method = "bilinear"
	Bicubic      Method = "bicubic"
	Area         Method = "area"
	Lanczos      Method = "lanczos"
)

// ParseMethod returns the Method for a ComfyUI name, or an error listing the valid names.
func ParseMethod(name string) (Method, error) {
	switch m := Method(name); m {
	case NearestExact, Bilinear, Bicubic, Area, Lanczos:
		return m, nil
	}
	return "", fmt.Errorf("unknown resize method %q (want nearest-exact, bilinear, bicubic, area or lanczos)", name)
}

// Planes resizes planes consecutive h×w float32 planes of src into outH×outW planes of dst.
// Lanczos follows ComfyUI: values are quantised to 8 bits (clip to [0,1], ×255, truncate), resized
// with Pillow's fixed-point LANCZOS filter, and returned divided by 255.
func Planes(dst, src []float32, planes, h, w, outH, outW int, method Method) error {
	if planes < 0 || h <= 0 || w <= 0 || outH <= 0 || outW <= 0 {
		return fmt.Errorf("resample: invalid sizes planes=%d %dx%d -> %dx%d", planes, h, w, outH, outW)
	}
	if len(src) < planes*h*w || len(dst) < planes*outH*outW {
		return fmt.Errorf("resample: buffers too small for %d planes %dx%d -> %dx%d", planes, h, w, outH, outW)
	}
	switch method {
	case NearestExact:
		nearestExact(dst, src, planes, h, w, outH, outW)
	case Bilinear:
		separable(dst, src, planes, h, w, outH, outW, linearTaps)
	case Bicubic:
		separable(dst, src, planes, h, w, outH, outW, cubicTaps)
	case Area:
		area(dst, src, planes, h, w, outH, outW)
	case Lanczos:
		lanczosPlanes(dst, src, planes, h, w, outH, outW)
	default:
		return fmt.Errorf("resample: unknown method %q", method)
	}
	return nil
}

// sourceIndex is torch's area_pixel_compute_source_index for align_corners=False in float32.
func sourceIndex(scale float32, dst int, cubic bool) float32 {
	src := scale*(float32(dst)+0.5) - 0.5
	if !cubic && src < 0 {
		return 0
	}
	return src
}

func nearestExact(dst, src []float32, planes, h, w, outH, outW int) {
	rows := make([]int, outH)
	cols := make([]int, outW)
	sh, sw := float32(h)/float32(outH), float32(w)/float32(outW)
	for i := range rows {
		rows[i] = min(int(math.Floor(float64((float32(i)+0.5)*sh))), h-1)
	}
	for j := range cols {
		cols[j] = min(int(math.Floor(float64((float32(j)+0.5)*sw))), w-1)
	}
	for p := 0; p < planes; p++ {
		in := src[p*h*w : (p+1)*h*w]
		out := dst[p*outH*outW : (p+1)*outH*outW]
		for i, r := range rows {
			row := in[r*w : (r+1)*w]
			o := out[i*outW : (i+1)*outW]
			for j, c := range cols {
				o[j] = row[c]
			}
		}
	}
}

// taps is a per-output-index list of input indices and weights along one axis.
type taps struct {
	n       int
	index   []int
	weights []float32
}

func linearTaps(in, out int) taps {
	t := taps{n: 2, index: make([]int, 2*out), weights: make([]float32, 2*out)}
	scale := float32(in) / float32(out)
	for i := 0; i < out; i++ {
		real := sourceIndex(scale, i, false)
		idx := min(int(math.Floor(float64(real))), in-1)
		lambda := min(max(real-float32(idx), 0), 1)
		next := idx
		if idx < in-1 {
			next = idx + 1
		}
		t.index[2*i], t.index[2*i+1] = idx, next
		t.weights[2*i], t.weights[2*i+1] = 1-lambda, lambda
	}
	return t
}

func cubicTaps(in, out int) taps {
	const a = float32(-0.75)
	conv1 := func(x float32) float32 { return ((a+2)*x-(a+3))*x*x + 1 }
	conv2 := func(x float32) float32 { return ((a*x-5*a)*x+8*a)*x - 4*a }
	t := taps{n: 4, index: make([]int, 4*out), weights: make([]float32, 4*out)}
	scale := float32(in) / float32(out)
	for i := 0; i < out; i++ {
		real := sourceIndex(scale, i, true)
		idx := min(int(math.Floor(float64(real))), in-1)
		lambda := min(max(real-float32(idx), 0), 1)
		x2 := 1 - lambda
		w := [4]float32{conv2(lambda + 1), conv1(lambda), conv1(x2), conv2(x2 + 1)}
		for k := 0; k < 4; k++ {
			t.index[4*i+k] = min(max(idx-1+k, 0), in-1)
			t.weights[4*i+k] = w[k]
		}
	}
	return t
}

// separable applies torch's generic upsample kernel: for each output pixel the result is
// Σ_y wy·(Σ_x wx·p[y][x]), accumulated in float32 in tap order, height outermost.
func separable(dst, src []float32, planes, h, w, outH, outW int, mk func(in, out int) taps) {
	ty, tx := mk(h, outH), mk(w, outW)
	for p := 0; p < planes; p++ {
		in := src[p*h*w : (p+1)*h*w]
		out := dst[p*outH*outW : (p+1)*outH*outW]
		for i := 0; i < outH; i++ {
			for j := 0; j < outW; j++ {
				var acc float32
				for ky := 0; ky < ty.n; ky++ {
					row := in[ty.index[i*ty.n+ky]*w:]
					var inner float32
					for kx := 0; kx < tx.n; kx++ {
						v := row[tx.index[j*tx.n+kx]] * tx.weights[j*tx.n+kx]
						if kx == 0 {
							inner = v
						} else {
							inner += v
						}
					}
					v := inner * ty.weights[i*ty.n+ky]
					if ky == 0 {
						acc = v
					} else {
						acc += v
					}
				}
				out[i*outW+j] = acc
			}
		}
	}
}

// area is adaptive average pooling: output cell i averages input [floor(i·in/out), ceil((i+1)·in/out)).
func area(dst, src []float32, planes, h, w, outH, outW int) {
	start := func(a, b, c int) int { return (a/b)*c + ((a%b)*c)/b }
	end := func(a, b, c int) int { return 1 + ((a+1)*c-1)/b }
	for p := 0; p < planes; p++ {
		in := src[p*h*w : (p+1)*h*w]
		out := dst[p*outH*outW : (p+1)*outH*outW]
		for i := 0; i < outH; i++ {
			y0, y1 := start(i, outH, h), end(i, outH, h)
			for j := 0; j < outW; j++ {
				x0, x1 := start(j, outW, w), end(j, outW, w)
				var sum float32
				for y := y0; y < y1; y++ {
					for x := x0; x < x1; x++ {
						sum += in[y*w+x]
					}
				}
				out[i*outW+j] = sum / float32(y1-y0) / float32(x1-x0)
			}
		}
	}
}
