package cuda

import (
	"errors"
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
)

// matOp is a matrix operand: element strides along its rows (rs) and columns (cs).
type matOp struct {
	ptr    devPtr
	dt     tensor.DType
	rs, cs int
}

// gemmCall is C[m, n] = A[m, k]·B[k, n] (+ bias[n]) (+ C when accumulate), repeated over the
// batch shape with per-operand batch strides (0 where an operand is shared).
type gemmCall struct {
	m, n, k    int
	a, b, c    matOp
	bias       devPtr
	biasDT     tensor.DType
	biasStride int
	hasBias    bool
	accumulate bool
	bshape     []int
	bstr       [3][]int
}

func (g *gemmCall) batches() int {
	n := 1
	for _, d := range g.bshape {
		n *= d
	}
	return n
}

// gemm runs g on cuBLASLt when the backend has it, else on the built-in kernel.
func (be *Backend) gemm(g *gemmCall) error {
	if g.m == 0 || g.n == 0 || g.batches() == 0 {
		return nil
	}
	if be.lt != nil && g.k > 0 {
		err := be.gemmLt(g)
		if !errors.Is(err, errLtUnsupported) {
			return err
		}
		// cuBLASLt has no algorithm for these layouts: nothing was written, so the built-in
		// kernel can take over.
	}
	return be.gemmBuiltin(g)
}

// errLtUnsupported reports that cuBLASLt found no algorithm (before anything ran).
var errLtUnsupported = errors.New("cuBLASLt has no algorithm for this product")

// gemmBuiltin launches gemm_simt (batches beyond the grid's z range run one by one).
func (be *Backend) gemmBuiltin(g *gemmCall) error {
	nb := g.batches()
	if len(g.bshape) > gemmBRank || nb > 65535 {
		return be.perBatch(g, be.gemmBuiltin)
	}
	if (g.m+63)/64 > 65535 {
		return be.splitRows(g, 65535*64, be.gemmBuiltin)
	}
	st := &sbuf{}
	st.i64(g.a.rs).i64(g.a.cs).i64(g.b.rs).i64(g.b.cs).i64(g.c.rs).i64(g.c.cs).i64(g.biasStride)
	for k := range 3 {
		for d := range gemmBRank {
			v := 0
			if d < len(g.bshape) {
				v = g.bstr[k][d]
			}
			st.i64(v)
		}
	}
	for d := range gemmBRank {
		v := 0
		if d < len(g.bshape) {
			v = g.bshape[d]
		}
		st.i32(v)
	}
	hasBias, acc := 0, 0
	if g.hasBias {
		hasBias = 1
	}
	if g.accumulate {
		acc = 1
	}
	biasDT := g.biasDT
	if !biasDT.Valid() { // no bias: any valid code
		biasDT = tensor.F32
	}
	st.i32(len(g.bshape)).i32(g.m).i32(g.n).i32(g.k).i32(int(g.a.dt)).i32(int(g.b.dt)).i32(int(g.c.dt)).i32(int(biasDT)).i32(acc).i32(hasBias)
	a := (&args{}).structure(st.end()).ptr(g.a.ptr).ptr(g.b.ptr).ptr(g.c.ptr).ptr(g.bias)
	grid := [3]uint32{uint32((g.n + 63) / 64), uint32((g.m + 63) / 64), uint32(max(nb, 1))}
	return be.launch(kGemmSIMT, grid, 256, 0, a)
}

// perBatch runs g one batch at a time with run.
func (be *Backend) perBatch(g *gemmCall, run func(*gemmCall) error) error {
	nb := g.batches()
	for bi := range nb {
		one := *g
		one.bshape, one.bstr = nil, [3][]int{}
		r := bi
		for d := len(g.bshape) - 1; d >= 0; d-- {
			i := r % g.bshape[d]
			r /= g.bshape[d]
			one.a.ptr += devPtr(i * g.bstr[0][d] * g.a.dt.Size())
			one.b.ptr += devPtr(i * g.bstr[1][d] * g.b.dt.Size())
			one.c.ptr += devPtr(i * g.bstr[2][d] * g.c.dt.Size())
		}
		if err := run(&one); err != nil {
			return err
		}
	}
	return nil
}

// splitRows runs g in chunks of at most rows rows of A and C.
func (be *Backend) splitRows(g *gemmCall, rows int, run func(*gemmCall) error) error {
	for m0 := 0; m0 < g.m; m0 += rows {
		one := *g
		one.m = min(rows, g.m-m0)
		one.a.ptr += devPtr(m0 * g.a.rs * g.a.dt.Size())
		one.c.ptr += devPtr(m0 * g.c.rs * g.c.dt.Size())
		if err := run(&one); err != nil {
			return err
		}
	}
	return nil
}

// ---- cuBLASLt ----

// ltLayout is how a row-major-indexed operand X[r, c] is handed to cuBLASLt.
type ltLayout struct {
	ok       bool
	rowMajor bool  // X has unit column stride (else unit row stride)
	ld       int64 // leading dimension in elements
}

func ltLayoutOf(r, c, rs, cs int) ltLayout {
	if (cs == 1 || c == 1) && (r == 1 || rs >= max(c, 1)) {
		ld := rs
		if r == 1 {
			ld = max(c, 1)
		}
		return ltLayout{ok: true, rowMajor: true, ld: int64(ld)}
	}
	if (rs == 1 || r == 1) && (c == 1 || cs >= max(r, 1)) {
		ld := cs
		if c == 1 {
			ld = max(r, 1)
		}
		return ltLayout{ok: true, rowMajor: false, ld: int64(ld)}
	}
	return ltLayout{}
}

// uniformStride returns the one stride that walks a batch of shape with per-dimension
// strides (row-major over the batch index), if there is one and it is not 0.
func uniformStride(shape, str []int) (int, bool) {
	if len(shape) == 0 {
		return 0, true
	}
	s := str[len(str)-1]
	span := 1
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] != 1 && str[d] != s*span {
			return 0, false
		}
		span *= shape[d]
	}
	nb := span
	if nb > 1 && s == 0 {
		return 0, false
	}
	return s, true
}

// ltOperand is an operand prepared for cuBLASLt: terms (1 to 3 pointers to the same layout),
// dtype, layout and batch stride.
type ltOperand struct {
	terms  []devPtr
	dt     tensor.DType
	lay    ltLayout
	stride int64
}

// gemmLt runs g on cuBLASLt. Operands are converted where cuBLASLt cannot take them (layout,
// dtype); float32 activations against bf16 weights are split into bf16 terms (three, exact;
// one, fast). It returns errLtUnsupported, having written nothing, when cuBLASLt has no
// algorithm.
func (be *Backend) gemmLt(g *gemmCall) error {
	nb := g.batches()
	if nb > 1 {
		_, okA := uniformStride(g.bshape, g.bstr[0])
		_, okB := uniformStride(g.bshape, g.bstr[1])
		_, okC := uniformStride(g.bshape, g.bstr[2])
		if !okA || !okB || !okC {
			return be.perBatch(g, be.gemmLt)
		}
	}
	canon := func(d tensor.DType) tensor.DType {
		if d == tensor.F8E4M3 || d == tensor.F8E5M2 {
			return tensor.BF16
		}
		return d
	}
	at, bt := canon(g.a.dt), canon(g.b.dt)
	var ta, tb tensor.DType // operand types handed to cuBLASLt
	splitA, splitB := 0, 0
	compute := lt32F
	terms := 3
	if be.opt.Precision == PrecisionFast {
		terms = 1
	}
	switch {
	case at == bt && (at == tensor.BF16 || at == tensor.F16):
		ta, tb = at, at
	case at == tensor.F32 && bt == tensor.BF16:
		ta, tb, splitA = tensor.BF16, tensor.BF16, terms
	case bt == tensor.F32 && at == tensor.BF16:
		ta, tb, splitB = tensor.BF16, tensor.BF16, terms
	default:
		ta, tb = tensor.F32, tensor.F32
		if be.opt.Precision == PrecisionFast {
			compute = lt32FTF32
		}
	}
	var temps []*tensor.Tensor
	defer func() { be.Free(temps...) }()
	keep := func(t *tensor.Tensor) { temps = append(temps, t) }

	opA, err := be.ltPrepare(g, 0, g.m, g.k, g.a, ta, splitA, keep)
	if err != nil {
		return err
	}
	opB, err := be.ltPrepare(g, 1, g.k, g.n, g.b, tb, splitB, keep)
	if err != nil {
		return err
	}
	// Output: D in place when it is row-major with a uniform batch stride and of a type
	// cuBLASLt can write (F32, or the 16-bit input type without a bias); else an F32 temp.
	dType := g.c.dt
	dLay := ltLayoutOf(g.m, g.n, g.c.rs, g.c.cs)
	dStride, dUniform := uniformStride(g.bshape, g.bstr[2])
	direct := dLay.ok && dLay.rowMajor && dUniform && len(opA.terms) == 1 && len(opB.terms) == 1 &&
		(dType == tensor.F32 || (dType == ta && ta != tensor.F32 && !g.hasBias))
	if len(opA.terms)+len(opB.terms) > 2 { // split terms accumulate in F32
		direct = direct && dType == tensor.F32
	}
	dPtr := g.c.ptr
	var tmpC *tensor.Tensor
	var tmpV dview
	if !direct {
		shape := append(append([]int{}, g.bshape...), g.m, g.n)
		if tmpC, err = be.Alloc(tensor.F32, shape...); err != nil {
			return err
		}
		keep(tmpC)
		tmpV, _ = be.resolve(tmpC, "tmp")
		if g.accumulate {
			cv := g.viewOf(2)
			if err := be.copyView(&tmpV, &cv); err != nil {
				return err
			}
		}
		dType, dPtr = tensor.F32, tmpV.addr()
		dLay = ltLayout{ok: true, rowMajor: true, ld: int64(g.n)}
		dStride = g.m * g.n
	}
	var bias devPtr
	if g.hasBias {
		if g.biasDT == tensor.F32 && (g.biasStride == 1 || g.n == 1) {
			bias = g.bias
		} else {
			bt, err := be.Alloc(tensor.F32, g.n)
			if err != nil {
				return err
			}
			keep(bt)
			bv, _ := be.resolve(bt, "bias")
			src := dview{Layout: tensor.Layout{Rank: 1}, buf: &buffer{ptr: g.bias}, dt: g.biasDT}
			src.Shape[0], src.Strides[0] = g.n, g.biasStride
			if err := be.copyView(&bv, &src); err != nil {
				return err
			}
			bias = bv.addr()
		}
	}
	// cuBLASLt is column-major: it computes Dᵀ = Bᵀ·Aᵀ, so its A is our B.
	call := ltMatmul{
		m: g.n, n: g.m, k: g.k,
		aType: tb, bType: ta, cType: dType, dType: dType,
		lda: opB.lay.ld, ldb: opA.lay.ld, ldc: dLay.ld, ldd: dLay.ld,
		transA: !opB.lay.rowMajor, transB: !opA.lay.rowMajor,
		batch: max(nb, 1), strideA: opB.stride, strideB: opA.stride,
		strideC: int64(dStride), strideD: int64(dStride),
		c: dPtr, d: dPtr, alpha: 1, compute: compute,
	}
	first := true
	for _, pa := range opA.terms {
		for _, pb := range opB.terms {
			c := call
			c.a, c.b = pb, pa
			c.beta = 0
			if !first || g.accumulate {
				c.beta = 1
			}
			if first {
				c.bias = bias
			}
			if err := be.lt.matmul(&c); err != nil {
				if first && errors.Is(err, errLtUnsupported) {
					return err // nothing has been written yet
				}
				return fmt.Errorf("cuda: cuBLASLt: %w", err)
			}
			first = false
		}
	}
	if tmpC != nil {
		cv := g.viewOf(2)
		if err := be.copyView(&cv, &tmpV); err != nil {
			return err
		}
	}
	return nil
}

// viewOf returns operand k (0 A, 1 B, 2 C) with its batch dimensions as a view.
func (g *gemmCall) viewOf(k int) dview {
	op := [3]matOp{g.a, g.b, g.c}[k]
	rows := [3]int{g.m, g.k, g.m}[k]
	cols := [3]int{g.k, g.n, g.n}[k]
	v := dview{buf: &buffer{ptr: op.ptr}, dt: op.dt}
	for d, s := range g.bshape {
		v.Shape[d], v.Strides[d] = s, g.bstr[k][d]
	}
	r := len(g.bshape)
	v.Shape[r], v.Strides[r] = rows, op.rs
	v.Shape[r+1], v.Strides[r+1] = cols, op.cs
	v.Rank = r + 2
	return v
}

// ltPrepare returns operand k (rows×cols) ready for cuBLASLt in dtype dt, copied to a
// contiguous [batch..., rows, cols] temp when its layout, dtype or batch strides do not fit,
// and split into bf16 terms when split > 0.
func (be *Backend) ltPrepare(g *gemmCall, k, rows, cols int, op matOp, dt tensor.DType, split int, keep func(*tensor.Tensor)) (ltOperand, error) {
	lay := ltLayoutOf(rows, cols, op.rs, op.cs)
	stride, uniform := uniformStride(g.bshape, g.bstr[k])
	if split == 0 && op.dt == dt && lay.ok && uniform {
		return ltOperand{terms: []devPtr{op.ptr}, dt: dt, lay: lay, stride: int64(stride)}, nil
	}
	shape := append(append([]int{}, g.bshape...), rows, cols)
	src := g.viewOf(k)
	out := ltOperand{dt: dt, lay: ltLayout{ok: true, rowMajor: true, ld: int64(cols)}, stride: int64(rows * cols)}
	if split == 0 {
		t, err := be.Alloc(dt, shape...)
		if err != nil {
			return out, err
		}
		keep(t)
		tv, _ := be.resolve(t, "operand")
		if err := be.copyView(&tv, &src); err != nil {
			return out, err
		}
		out.terms = []devPtr{tv.addr()}
		return out, nil
	}
	ptrs := [3]devPtr{}
	for i := range split {
		t, err := be.Alloc(tensor.BF16, shape...)
		if err != nil {
			return out, err
		}
		keep(t)
		tv, _ := be.resolve(t, "term")
		ptrs[i] = tv.addr()
	}
	l, err := newND(shape, &src)
	if err != nil {
		return out, err
	}
	if l.n > 0 {
		a := (&args{}).structure(l.pack()).ptr(src.addr()).i32(int(src.dt)).ptr(ptrs[0]).ptr(ptrs[1]).ptr(ptrs[2]).i32(split)
		if err := be.launch(kSplitBF16, gridFor(l.n, eltBlock), eltBlock, 0, a); err != nil {
			return out, err
		}
	}
	out.terms = ptrs[:split]
	return out, nil
}
