package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// im2colBudget bounds the bytes of one im2col chunk (a variable for the tests).
var im2colBudget = 256 << 20

// Conv2D is im2col + GEMM per image: out[n] (Cout × pixels) = W (Cout × Cin·KH·KW) · col, where
// col is built in chunks of output pixels (1×1 stride-1 convolutions use x directly). The
// bias is written first and the products accumulate onto it.
func (be *Backend) Conv2D(dst, x, w, bias *tensor.Tensor, p tensor.Conv2DParams) (*tensor.Tensor, error) {
	xv, err := be.resolve(x, "x")
	if err != nil {
		return nil, fmt.Errorf("cuda: conv2d: %w", err)
	}
	wv, err := be.resolve(w, "weight")
	if err != nil {
		return nil, fmt.Errorf("cuda: conv2d: %w", err)
	}
	if xv.Rank != 4 || wv.Rank != 4 {
		return nil, fmt.Errorf("cuda: conv2d: x %v must be [N, C, H, W] and weight %v [Cout, Cin, KH, KW]", x.Shape(), w.Shape())
	}
	n, cin, h, wd := xv.Shape[0], xv.Shape[1], xv.Shape[2], xv.Shape[3]
	cout, kh, kw := wv.Shape[0], wv.Shape[2], wv.Shape[3]
	if wv.Shape[1] != cin {
		return nil, fmt.Errorf("cuda: conv2d: x has %d channels, weight %v expects %d", cin, w.Shape(), wv.Shape[1])
	}
	if p.StrideH < 0 || p.StrideW < 0 || p.PadTop < 0 || p.PadBottom < 0 || p.PadLeft < 0 || p.PadRight < 0 {
		return nil, fmt.Errorf("cuda: conv2d: negative stride or padding in %+v", p)
	}
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	ph, pw := h+p.PadTop+p.PadBottom, wd+p.PadLeft+p.PadRight
	if kh == 0 || kw == 0 || kh > ph || kw > pw {
		return nil, fmt.Errorf("cuda: conv2d: kernel %dx%d does not fit the padded input %dx%d", kh, kw, ph, pw)
	}
	oh, ow := (ph-kh)/sh+1, (pw-kw)/sw+1
	var bp devPtr
	var bdt tensor.DType
	var bs int
	if bias != nil {
		if bp, bdt, bs, err = be.param1D(bias, cout, "bias"); err != nil {
			return nil, fmt.Errorf("cuda: conv2d: %w", err)
		}
	}
	out, dv, err := be.output(dst, resultDType(xv.dt), []int{n, cout, oh, ow})
	if err != nil {
		return nil, fmt.Errorf("cuda: conv2d: %w", err)
	}
	if dv.overlaps(&xv) || dv.overlaps(&wv) {
		return nil, fmt.Errorf("cuda: conv2d: dst overlaps an input")
	}
	npix := oh * ow
	if n*cout*npix == 0 {
		return out, nil
	}
	kdim := cin * kh * kw
	fail := func(err error) (*tensor.Tensor, error) { return nil, fmt.Errorf("cuda: conv2d: %w", err) }

	// Weight as [Cout, K].
	w2, err := w.Reshape(cout, kdim)
	if err != nil {
		wc, cerr := be.Copy(nil, w)
		if cerr != nil {
			return fail(cerr)
		}
		defer be.Free(wc)
		w2, _ = wc.Reshape(cout, kdim)
	}
	w2v, _ := be.resolve(w2, "weight")
	// Output as [N, Cout, pixels], directly or through an F32 temporary.
	// The bias is written first and the products accumulate onto it: in F32, so that a
	// 16-bit result is rounded once, as on the CPU.
	target := out
	c3, err := out.Reshape(n, cout, npix)
	if err != nil || (bias != nil && dv.dt != tensor.F32) {
		tmp, aerr := be.Alloc(tensor.F32, n, cout, npix)
		if aerr != nil {
			return fail(aerr)
		}
		defer be.Free(tmp)
		c3, target = tmp, tmp
	}
	cv, _ := be.resolve(c3, "dst")
	if bias != nil { // write the bias broadcast over pixels, then accumulate onto it
		bv := dview{Layout: tensor.Layout{Rank: 3}, buf: &buffer{ptr: bp}, dt: bdt}
		bv.Shape = [tensor.MaxRank]int{1, cout, 1}
		bv.Strides = [tensor.MaxRank]int{0, bs, 0}
		if err := be.copyView(&cv, &bv); err != nil {
			return fail(err)
		}
	}
	direct1x1 := kh == 1 && kw == 1 && sh == 1 && sw == 1 && p.PadTop == 0 && p.PadLeft == 0 && oh == h && ow == wd
	var xflat dview
	if direct1x1 {
		if r, err := x.Reshape(n, cin, h*wd); err == nil {
			xflat, _ = be.resolve(r, "x")
		} else {
			direct1x1 = false
		}
	}
	colDT := xv.dt
	if !colDT.IsComputeType() {
		colDT = tensor.F32
	}
	chunk := npix
	var col *tensor.Tensor
	if !direct1x1 {
		chunk = max(1, min(npix, im2colBudget/max(kdim*colDT.Size(), 1)))
		if col, err = be.Alloc(colDT, chunk, kdim); err != nil {
			return fail(err)
		}
		defer be.Free(col)
	}
	for img := range n {
		for p0 := 0; p0 < npix; p0 += chunk {
			np := min(chunk, npix-p0)
			var bop matOp
			if direct1x1 {
				bop = matOp{ptr: xflat.addr() + devPtr((img*xflat.Strides[0]+p0*xflat.Strides[2])*xflat.dt.Size()), dt: xflat.dt,
					rs: xflat.Strides[1], cs: xflat.Strides[2]}
			} else {
				colv, _ := be.resolve(col, "col")
				st := &sbuf{}
				for i := range 4 {
					st.i64(xv.Strides[i])
				}
				st.i32(cin).i32(h).i32(wd).i32(kh).i32(kw).i32(sh).i32(sw).i32(p.PadTop).i32(p.PadLeft).i32(ow)
				st.i32(p0).i32(np).i32(img).i32(int(xv.dt)).i32(int(colDT)).i32(0)
				if np*kdim > maxLaunchElems {
					return fail(fmt.Errorf("im2col chunk of %d×%d is too large", np, kdim))
				}
				a := (&args{}).structure(st.end()).ptr(xv.addr()).ptr(colv.addr())
				if err := be.launch(kIm2col, gridFor(np*kdim, eltBlock), eltBlock, 0, a); err != nil {
					return fail(err)
				}
				bop = matOp{ptr: colv.addr(), dt: colDT, rs: 1, cs: kdim} // col[p][k] read as [K, P]
			}
			g := &gemmCall{m: cout, n: np, k: kdim,
				a:          matOp{ptr: w2v.addr(), dt: w2v.dt, rs: w2v.Strides[0], cs: w2v.Strides[1]},
				b:          bop,
				c:          matOp{ptr: cv.addr() + devPtr((img*cv.Strides[0]+p0*cv.Strides[2])*cv.dt.Size()), dt: cv.dt, rs: cv.Strides[1], cs: cv.Strides[2]},
				accumulate: bias != nil}
			if err := be.gemm(g); err != nil {
				return fail(err)
			}
		}
	}
	if target != out {
		src, _ := target.Reshape(out.Shape()...)
		if _, err := be.Copy(out, src); err != nil {
			return fail(err)
		}
	}
	return out, nil
}
