package cpu

import (
	"fmt"
	"math"

	"github.com/dypegraph/dypegraph/tensor"
)

const (
	attnQRows     = 64       // query rows per task (rounded to the micro-kernel's MR)
	attnKVCols    = 128      // keys per online-softmax step (a multiple of every NR)
	attnPackBytes = 32 << 20 // packed K/V bytes per group of heads processed together
)

// Attention computes softmax(q·kᵀ·scale + mask)·v with grouped KV heads, one query block
// against one key block at a time (online softmax): per task it holds at most
// attnQRows × attnKVCols scores.
func (be *Backend) Attention(dst, q, k, v *tensor.Tensor, opt tensor.AttentionOptions) (*tensor.Tensor, error) {
	qv, err := resolve(q, "q")
	if err != nil {
		return nil, fmt.Errorf("cpu: attention: %w", err)
	}
	kv, err := resolve(k, "k")
	if err != nil {
		return nil, fmt.Errorf("cpu: attention: %w", err)
	}
	vv, err := resolve(v, "v")
	if err != nil {
		return nil, fmt.Errorf("cpu: attention: %w", err)
	}
	ad, err := tensor.AttentionShape(q, k, v)
	if err != nil {
		return nil, fmt.Errorf("cpu: attention: %w", err)
	}
	bsz, sq, hq, d := ad.Batch, ad.QLen, ad.QHeads, ad.HeadDim
	skv, hkv, dv := ad.KVLen, ad.KVHeads, ad.ValueDim
	scale := ad.Scale(opt.Scale)
	var mv view
	var mstr [4]int
	hasMask := opt.Mask != nil
	if hasMask {
		mv, err = resolve(opt.Mask, "mask")
		if err != nil {
			return nil, fmt.Errorf("cpu: attention: %w", err)
		}
		if err := ad.CheckMask(opt.Mask); err != nil {
			return nil, fmt.Errorf("cpu: attention: %w", err)
		}
		for i := range mv.Rank {
			if mv.Shape[i] != 1 {
				mstr[4-mv.Rank+i] = mv.Strides[i]
			}
		}
	}
	out, ov, err := be.output(dst, resultDType(qv.dt), ad.OutShape())
	if err != nil {
		return nil, fmt.Errorf("cpu: attention: %w", err)
	}
	if ov.overlaps(&qv) || ov.overlaps(&kv) || ov.overlaps(&vv) {
		return nil, fmt.Errorf("cpu: attention: dst overlaps an input")
	}
	if bsz*sq*hq*dv == 0 {
		return out, nil
	}
	mr, nr := be.kern.mr, be.kern.nr
	qb := max(1, attnQRows/mr) * mr
	kb := attnKVCols
	nKSl := ceilDiv(skv, nr)
	dvP := ceilDiv(dv, nr) * nr
	nVSl := dvP / nr
	kSize := nKSl * nr * d // floats of packed K per kv head
	vSize := dvP * skv     // floats of packed V per kv head
	pairs := bsz * hkv
	group := hq / hkv
	nqb := ceilDiv(sq, qb)
	hc := max(1, min(pairs, attnPackBytes/max(4*(kSize+vSize), 1)))
	packBuf, packHold := be.pool.getF32(hc * (kSize + vSize))
	defer be.pool.put(packHold)

	for c0 := 0; c0 < pairs; c0 += hc {
		cn := min(hc, pairs-c0)
		// Pack K (as B slivers of nr keys × d) and V (slivers of nr value dims × skv).
		units := cn * (nKSl + nVSl)
		be.w.parallelFor(units, be.w.grainFor(units, 4), func(lo, hi int) {
			for u := lo; u < hi; u++ {
				pi, s := u/(nKSl+nVSl), u%(nKSl+nVSl)
				b, h := (c0+pi)/hkv, (c0+pi)%hkv
				base := packBuf[pi*(kSize+vSize):]
				if s < nKSl {
					koff := kv.Offset + b*kv.Strides[0] + h*kv.Strides[2]
					stridedPanel(&kv, koff, kv.Strides[1], kv.Strides[3], nr)(base[s*d*nr:(s+1)*d*nr], s*nr, min(nr, skv-s*nr), 0, d)
				} else {
					s -= nKSl
					if skv == 0 {
						continue
					}
					voff := vv.Offset + b*vv.Strides[0] + h*vv.Strides[2]
					vb := base[kSize+s*skv*nr : kSize+(s+1)*skv*nr]
					stridedPanel(&vv, voff, vv.Strides[3], vv.Strides[1], nr)(vb, s*nr, min(nr, dv-s*nr), 0, skv)
				}
			}
		})
		tasks := cn * group * nqb
		be.w.parallelFor(tasks, 1, func(lo, hi int) {
			ws := be.newAttnWork(qb, d, kb, dvP)
			defer be.pool.put(ws.hold)
			for t := lo; t < hi; t++ {
				pi, r := t/(group*nqb), t%(group*nqb)
				g, qi := r/nqb, r%nqb
				b, h := (c0+pi)/hkv, (c0+pi)%hkv
				hqi := h*group + g
				base := packBuf[pi*(kSize+vSize):]
				be.attnBlock(ws, &attnArgs{
					q: &qv, o: &ov, b: b, h: hqi, i0: qi * qb, rows: min(qb, sq-qi*qb),
					sq: sq, skv: skv, d: d, dv: dv, dvP: dvP, kb: kb,
					kp: base[:kSize], vp: base[kSize : kSize+vSize],
					scale: scale, causal: opt.Causal, mask: hasMask, mv: &mv, mstr: mstr,
				})
			}
		})
	}
	return out, nil
}

// attnWork is one worker's scratch: packed Q, scores, packed P, output accumulators and the
// running max and sum per row.
type attnWork struct {
	qp, s, p, o, m, l []float32
	hold              *buffer
}

func (be *Backend) newAttnWork(qb, d, kb, dvP int) *attnWork {
	n := qb*d + 2*qb*kb + qb*dvP + 2*qb
	buf, hold := be.pool.getF32(n)
	w := &attnWork{hold: hold}
	w.qp, buf = buf[:qb*d], buf[qb*d:]
	w.s, buf = buf[:qb*kb], buf[qb*kb:]
	w.p, buf = buf[:qb*kb], buf[qb*kb:]
	w.o, buf = buf[:qb*dvP], buf[qb*dvP:]
	w.m, w.l = buf[:qb], buf[qb:2*qb]
	return w
}

type attnArgs struct {
	q, o           *view
	b, h, i0, rows int
	sq, skv, d, dv int
	dvP, kb        int
	kp, vp         []float32
	scale          float32
	causal, mask   bool
	mv             *view
	mstr           [4]int
}

// attnBlock computes the output rows i0..i0+rows-1 of query head h in batch b.
func (be *Backend) attnBlock(w *attnWork, a *attnArgs) {
	mr, nr, kern := be.kern.mr, be.kern.nr, be.kern.fn
	d, kb, dvP := a.d, a.kb, a.dvP
	panels := ceilDiv(a.rows, mr)
	qoff := a.q.Offset + a.b*a.q.Strides[0] + a.i0*a.q.Strides[1] + a.h*a.q.Strides[2]
	pack := stridedPanel(a.q, qoff, a.q.Strides[1], a.q.Strides[3], mr)
	for p := range panels {
		pack(w.qp[p*d*mr:(p+1)*d*mr], p*mr, min(mr, a.rows-p*mr), 0, d)
	}
	rowsP := panels * mr
	ninf := float32(math.Inf(-1))
	for i := range rowsP {
		w.m[i] = ninf
		w.l[i] = 0
	}
	clear(w.o[:rowsP*dvP])
	kvEnd := a.skv
	if a.causal {
		kvEnd = min(a.skv, a.i0+a.rows)
	}
	for j0 := 0; j0 < kvEnd; j0 += kb {
		bk := min(kb, kvEnd-j0)
		nsl := ceilDiv(bk, nr)
		// Scores S = Q·Kᵀ for this key block, kb columns per row.
		for s := range nsl {
			ks := w.kpSliver(a.kp, j0/nr+s, d, nr)
			for p := range panels {
				kern(d, w.qp[p*d*mr:(p+1)*d*mr], ks, nr, w.s[p*mr*kb+s*nr:], kb, false)
			}
		}
		// Online softmax; P is written straight into the packed-A layout [panel][key][mr].
		for i := range rowsP {
			pp := w.p[(i/mr)*bk*mr+i%mr:]
			if i >= a.rows {
				for j := range bk {
					pp[j*mr] = 0
				}
				continue
			}
			srow := w.s[i*kb : i*kb+bk]
			var mx float32
			if a.mask || a.causal {
				mx = ninf
				qi := a.i0 + i
				moff := a.mv.Offset + a.b*a.mstr[0] + a.h*a.mstr[1] + qi*a.mstr[2]
				for j := range srow {
					x := srow[j] * a.scale
					if a.mask {
						x += a.mv.at(moff + (j0+j)*a.mstr[3])
					}
					if a.causal && j0+j > qi {
						x = ninf
					}
					srow[j] = x
					mx = max(mx, x)
				}
			} else {
				mx = scaleMax(srow, a.scale)
			}
			mnew := max(w.m[i], mx)
			if mnew == ninf { // everything masked so far
				for j := range bk {
					pp[j*mr] = 0
				}
				continue
			}
			alpha := float32(1)
			if mnew != w.m[i] {
				alpha = expf(w.m[i] - mnew)
			}
			sum := expShiftSum(srow, mnew)
			pp = pp[:(bk-1)*mr+1]
			for j, k := 0, 0; j < len(srow); j, k = j+1, k+mr {
				pp[k] = srow[j]
			}
			w.l[i] = w.l[i]*alpha + sum
			w.m[i] = mnew
			if alpha != 1 {
				orow := w.o[i*dvP : (i+1)*dvP]
				for c := range orow {
					orow[c] *= alpha
				}
			}
		}
		// O += P·V for this key block.
		for s := range dvP / nr {
			vs := a.vp[s*a.skv*nr+j0*nr : s*a.skv*nr+(j0+bk)*nr]
			for p := range panels {
				kern(bk, w.p[p*bk*mr:(p+1)*bk*mr], vs, nr, w.o[p*mr*dvP+s*nr:], dvP, true)
			}
		}
	}
	// Normalise and store.
	ooff := a.o.Offset + a.b*a.o.Strides[0] + a.i0*a.o.Strides[1] + a.h*a.o.Strides[2]
	for i := range a.rows {
		orow := w.o[i*dvP : i*dvP+a.dv]
		inv := float32(0)
		if w.l[i] > 0 {
			inv = 1 / w.l[i]
		}
		for c := range orow {
			orow[c] *= inv
		}
		a.o.store(orow, ooff+i*a.o.Strides[1], a.o.Strides[3])
	}
}

func (w *attnWork) kpSliver(kp []float32, s, d, nr int) []float32 {
	return kp[s*d*nr : (s+1)*d*nr]
}

// at returns element off of v as float32.
func (v *view) at(off int) float32 {
	var f [1]float32
	v.load(f[:], 1, off, 1, 1)
	return f[0]
}
