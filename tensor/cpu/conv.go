package cpu

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// Conv2D is an implicit GEMM: per image, C[Cout × OH·OW] = W[Cout × Cin·KH·KW] · X̂ where X̂ is
// the im2col matrix, never built: its panels are gathered straight from the image by the B
// packer. Weights are read in their stored dtype by the A packer.
func (be *Backend) Conv2D(dst, x, w, bias *tensor.Tensor, p tensor.Conv2DParams) (*tensor.Tensor, error) {
	xv, err := resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cpu: conv2d: %w", err)
	}
	wv, err := resolve(w, "weight")
	if err != nil {
		return nil, fmt.Errorf("cpu: conv2d: %w", err)
	}
	if xv.Rank != 4 || wv.Rank != 4 {
		return nil, fmt.Errorf("cpu: conv2d: x %v must be [N, C, H, W] and weight %v [Cout, Cin, KH, KW]", x.Shape(), w.Shape())
	}
	n, cin, h, wd := xv.Shape[0], xv.Shape[1], xv.Shape[2], xv.Shape[3]
	cout, kh, kw := wv.Shape[0], wv.Shape[2], wv.Shape[3]
	if wv.Shape[1] != cin {
		return nil, fmt.Errorf("cpu: conv2d: x has %d channels, weight %v expects %d", cin, w.Shape(), wv.Shape[1])
	}
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	if p.StrideH < 0 || p.StrideW < 0 || p.PadTop < 0 || p.PadBottom < 0 || p.PadLeft < 0 || p.PadRight < 0 {
		return nil, fmt.Errorf("cpu: conv2d: negative stride or padding in %+v", p)
	}
	ph, pw := h+p.PadTop+p.PadBottom, wd+p.PadLeft+p.PadRight
	if kh == 0 || kw == 0 || kh > ph || kw > pw {
		return nil, fmt.Errorf("cpu: conv2d: kernel %dx%d does not fit the padded input %dx%d", kh, kw, ph, pw)
	}
	oh, ow := (ph-kh)/sh+1, (pw-kw)/sw+1
	var bf []float32
	if bias != nil {
		var hold *buffer
		bf, hold, err = be.loadParam(bias, cout, "bias")
		if err != nil {
			return nil, fmt.Errorf("cpu: conv2d: %w", err)
		}
		defer be.pool.put(hold)
	}
	out, dv, err := be.output(dst, resultDType(xv.dt), []int{n, cout, oh, ow})
	if err != nil {
		return nil, fmt.Errorf("cpu: conv2d: %w", err)
	}
	if dv.overlaps(&xv) || dv.overlaps(&wv) {
		return nil, fmt.Errorf("cpu: conv2d: dst overlaps an input")
	}
	// The image is read as contiguous float32; the weight as [Cout, Cin·KH·KW] rows.
	if xv.dt != tensor.F32 || !xv.Contiguous() {
		xc, err := be.Convert(x, tensor.F32)
		if err != nil {
			return nil, fmt.Errorf("cpu: conv2d: %w", err)
		}
		defer be.Free(xc)
		xv, _ = resolve(xc, "x")
	}
	if !wv.Contiguous() {
		wc, err := be.Copy(nil, w)
		if err != nil {
			return nil, fmt.Errorf("cpu: conv2d: %w", err)
		}
		defer be.Free(wc)
		wv, _ = resolve(wc, "weight")
	}
	var mt matTarget
	if dv.dt == tensor.F32 && dv.Contiguous() {
		mt = matTarget{f32: dv.f32, target: out}
	} else {
		tmp, err := be.Alloc(tensor.F32, n, cout, oh, ow)
		if err != nil {
			return nil, fmt.Errorf("cpu: conv2d: %w", err)
		}
		tv, _ := resolve(tmp, "tmp")
		mt = matTarget{f32: tv.f32, tmp: tmp, target: tmp}
	}
	cv, _ := resolve(mt.target, "dst")
	kdim := cin * kh * kw
	npix := oh * ow
	for img := range n {
		c := cv.f32[cv.Offset+img*cout*npix : cv.Offset+(img+1)*cout*npix]
		if bf != nil {
			be.w.parallelFor(cout, be.w.grainFor(cout, max(1, 8192/max(npix, 1))), func(lo, hi int) {
				for co := lo; co < hi; co++ {
					row := c[co*npix : (co+1)*npix]
					for i := range row {
						row[i] = bf[co]
					}
				}
			})
		}
		xoff := xv.Offset + img*cin*h*wd
		var packB panelFunc
		if kh == 1 && kw == 1 && sh == 1 && sw == 1 && p.PadTop == 0 && p.PadLeft == 0 && oh == h && ow == wd {
			packB = stridedPanel(&xv, xoff, 1, h*wd, be.kern.nr)
		} else {
			packB = im2colPanel(xv.f32[xoff:xoff+cin*h*wd], h, wd, kh, kw, sh, sw, p.PadTop, p.PadLeft, ow, be.kern.nr)
		}
		be.gemm(&gemmOp{m: cout, n: npix, k: kdim,
			packA: stridedPanel(&wv, wv.Offset, kdim, 1, be.kern.mr),
			packB: packB,
			c:     c, ldc: npix, acc: bf != nil})
	}
	return out, be.finishErr("conv2d", mt, out)
}

// im2colPanel gathers B panels of the im2col matrix: lane j is output pixel j (row-major),
// depth index kk is (channel, ky, kx). Out-of-image taps read as zero padding.
func im2colPanel(x []float32, h, w, kh, kw, sh, sw, pt, pl, ow, width int) panelFunc {
	return func(dst []float32, j0, lanes, k0, kc int) {
		// Group the lanes into runs that lie on one output row.
		type run struct{ lane, count, iy, ix int }
		var runs [maxNR]run
		nrun := 0
		for l := 0; l < lanes; {
			j := j0 + l
			oy, ox := j/ow, j%ow
			cnt := min(lanes-l, ow-ox)
			runs[nrun] = run{lane: l, count: cnt, iy: oy*sh - pt, ix: ox*sw - pl}
			nrun++
			l += cnt
		}
		ksz := kh * kw
		ci, r := k0/ksz, k0%ksz
		ky, kx := r/kw, r%kw
		for kk := range kc {
			row := dst[kk*width : (kk+1)*width]
			plane := x[ci*h*w : (ci+1)*h*w]
			for _, rn := range runs[:nrun] {
				seg := row[rn.lane : rn.lane+rn.count]
				iy := rn.iy + ky
				if iy < 0 || iy >= h {
					clear(seg)
					continue
				}
				src := plane[iy*w : (iy+1)*w]
				ix := rn.ix + kx
				if sw == 1 {
					// Lanes ix..ix+count-1: copy the in-image part, zero the rest.
					lo, hi := max(0, -ix), min(rn.count, w-ix)
					if hi <= lo {
						clear(seg)
						continue
					}
					clear(seg[:lo])
					copy(seg[lo:hi], src[ix+lo:ix+hi])
					clear(seg[hi:])
					continue
				}
				for i := range seg {
					if c := ix + i*sw; c >= 0 && c < w {
						seg[i] = src[c]
					} else {
						seg[i] = 0
					}
				}
			}
			clear(row[lanes:])
			if kx++; kx == kw {
				kx = 0
				if ky++; ky == kh {
					ky = 0
					ci++
				}
			}
		}
	}
}
