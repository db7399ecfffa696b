package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

const attnWarps = 4 // ATTN_WARPS in attention.cu

// attnVariant picks the fp32 flash kernel for value head dim dv: CH value columns per lane,
// R query rows per warp.
func attnVariant(dv int) (k *kernel, rows int, ok bool) {
	switch {
	case dv <= 128:
		return kAttnF32C4, 4, true
	case dv <= 256:
		return kAttnF32C8, 2, true
	case dv <= 512:
		return kAttnF32C16, 1, true
	}
	return nil, 0, false
}

// attnSmem is the dynamic shared memory of the fp32 kernel: Q rows and one K/V tile.
func attnSmem(rows, d, dv int) int {
	return 4 * (attnWarps*rows*d + 32*max(d+1, dv))
}

// Attention computes softmax(q·kᵀ·scale + mask)·v per head with grouped KV heads, as a flash
// attention kernel (online softmax; no score matrix in memory). Head dims above what fits in
// shared memory (value dim > 512) fall back to the CPU backend.
func (be *Backend) Attention(dst, q, k, v *tensor.Tensor, opt tensor.AttentionOptions) (*tensor.Tensor, error) {
	qv, err := be.resolve(q, "q")
	if err != nil {
		return nil, fmt.Errorf("cuda: attention: %w", err)
	}
	kv, err := be.resolve(k, "k")
	if err != nil {
		return nil, fmt.Errorf("cuda: attention: %w", err)
	}
	vv, err := be.resolve(v, "v")
	if err != nil {
		return nil, fmt.Errorf("cuda: attention: %w", err)
	}
	ad, err := tensor.AttentionShape(q, k, v)
	if err != nil {
		return nil, fmt.Errorf("cuda: attention: %w", err)
	}
	bsz, sq, hq, d := ad.Batch, ad.QLen, ad.QHeads, ad.HeadDim
	dvv := ad.ValueDim
	scale := ad.Scale(opt.Scale)
	var mv dview
	var mstr [4]int
	if opt.Mask != nil {
		if mv, err = be.resolve(opt.Mask, "mask"); err != nil {
			return nil, fmt.Errorf("cuda: attention: %w", err)
		}
		if err := ad.CheckMask(opt.Mask); err != nil {
			return nil, fmt.Errorf("cuda: attention: %w", err)
		}
		for i := range mv.Rank {
			if mv.Shape[i] != 1 {
				mstr[4-mv.Rank+i] = mv.Strides[i]
			}
		}
	}
	out, ov, err := be.output(dst, resultDType(qv.dt), ad.OutShape())
	if err != nil {
		return nil, fmt.Errorf("cuda: attention: %w", err)
	}
	if ov.overlaps(&qv) || ov.overlaps(&kv) || ov.overlaps(&vv) {
		return nil, fmt.Errorf("cuda: attention: dst overlaps an input")
	}
	if bsz*sq*hq*dvv == 0 {
		return out, nil
	}
	// Tensor cores for bf16 inputs (and float32 ones in fast precision, rounded to bf16) with
	// head dims 64 or 128; the fp32 kernel otherwise.
	allDT := func(dt tensor.DType) bool { return qv.dt == dt && kv.dt == dt && vv.dt == dt }
	if d == dvv && (d == 64 || d == 128) && bsz*hq <= 65535 &&
		(allDT(tensor.BF16) || (allDT(tensor.F32) && be.opt.Precision == PrecisionFast)) {
		var temps []*tensor.Tensor
		defer func() { be.Free(temps...) }()
		toBF16 := func(t *tensor.Tensor, v *dview) error {
			if v.dt == tensor.BF16 {
				return nil
			}
			c, err := be.Convert(t, tensor.BF16)
			if err != nil {
				return err
			}
			temps = append(temps, c)
			*v, err = be.resolve(c, "operand")
			return err
		}
		for _, p := range []struct {
			t *tensor.Tensor
			v *dview
		}{{q, &qv}, {k, &kv}, {v, &vv}} {
			if err := toBF16(p.t, p.v); err != nil {
				return nil, fmt.Errorf("cuda: attention: %w", err)
			}
		}
		if opt.Mask != nil && mv.dt != tensor.F32 {
			c, err := be.Convert(opt.Mask, tensor.F32)
			if err != nil {
				return nil, fmt.Errorf("cuda: attention: %w", err)
			}
			temps = append(temps, c)
			if mv, err = be.resolve(c, "mask"); err != nil {
				return nil, err
			}
			for i := range mv.Rank {
				if mv.Shape[i] != 1 {
					mstr[4-mv.Rank+i] = mv.Strides[i]
				}
			}
		}
		kern := kAttnMMA64
		if d == 128 {
			kern = kAttnMMA128
		}
		smem := 2 * (2*mmaBlock*(d+mmaPad) + d*(mmaBlock+mmaPad))
		if smem <= be.inf.smemOptin {
			if err := be.launchAttention(kern, &qv, &kv, &vv, &ov, &mv, mstr, opt, scale, mmaBlock, smem); err != nil {
				return nil, fmt.Errorf("cuda: attention: %w", err)
			}
			return out, nil
		}
	}
	kern, rows, ok := attnVariant(dvv)
	smem := 0
	if ok {
		smem = attnSmem(rows, d, dvv)
	}
	if !ok || smem > be.inf.smemOptin || bsz*hq > 65535 {
		// Fallback: the CPU backend (documented in the package doc).
		ins := []*tensor.Tensor{q, k, v}
		if opt.Mask != nil {
			ins = append(ins, opt.Mask)
		}
		return be.hostRun(out, ins, func(c tensor.Backend, in []*tensor.Tensor, d *tensor.Tensor) (*tensor.Tensor, error) {
			o := opt
			if o.Mask != nil {
				o.Mask = in[3]
			}
			return c.Attention(d, in[0], in[1], in[2], o)
		})
	}
	if err := be.launchAttention(kern, &qv, &kv, &vv, &ov, &mv, mstr, opt, scale, attnWarps*rows, smem); err != nil {
		return nil, fmt.Errorf("cuda: attention: %w", err)
	}
	return out, nil
}

// MMA_BQ = MMA_BK and MMA_PAD in attention_mma.cu.
const (
	mmaBlock = 64
	mmaPad   = 8
)

// launchAttention packs AttnArgs and launches kern with blocks of bq query rows.
func (be *Backend) launchAttention(kern *kernel, qv, kv, vv, ov, mv *dview, mstr [4]int, opt tensor.AttentionOptions, scale float32, bq, smem int) error {
	bsz, sq, hq, d := qv.Shape[0], qv.Shape[1], qv.Shape[2], qv.Shape[3]
	skv, hkv, dvv := kv.Shape[1], kv.Shape[2], vv.Shape[3]
	st := &sbuf{}
	for _, s := range [][]int{qv.Strides[:4], kv.Strides[:4], vv.Strides[:4], ov.Strides[:4], mstr[:]} {
		for _, x := range s {
			st.i64(x)
		}
	}
	hasMask, mdt, maddr := 0, tensor.F32, devPtr(0)
	if opt.Mask != nil {
		hasMask, mdt, maddr = 1, mv.dt, mv.addr()
	}
	causal := 0
	if opt.Causal {
		causal = 1
	}
	st.i32(bsz).i32(sq).i32(skv).i32(hq).i32(hkv).i32(d).i32(dvv)
	st.i32(int(qv.dt)).i32(int(kv.dt)).i32(int(vv.dt)).i32(int(ov.dt)).i32(int(mdt))
	st.i32(causal).i32(hasMask).f32(scale).i32(0)
	a := (&args{}).structure(st.end()).ptr(qv.addr()).ptr(kv.addr()).ptr(vv.addr()).ptr(ov.addr()).ptr(maddr)
	grid := [3]uint32{uint32((sq + bq - 1) / bq), uint32(bsz * hq), 1}
	return be.launch(kern, grid, 32*attnWarps, smem, a)
}
