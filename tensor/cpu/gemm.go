package cpu

// Packed, blocked single-precision GEMM in the style of BLIS/GotoBLAS: C (+)= A·B where both
// operands are read through packers, which copy (and convert from their stored dtype) one
// panel at a time into the micro-kernel's layout. Weights are therefore never expanded whole:
// at most a KC×NC panel of B and the KC-wide slab of A exist in float32.
//
// Loop nest: for each NC-wide column block and KC-deep slice of K, pack the B panel and the A
// slab (in parallel), then run micro-kernels over tiles of MC rows × a share of the columns
// (in parallel). When M fits a single tile, B is instead packed one KC×NR sliver at a time by
// the tile that uses it. Operands laid out along K (Linear weights, row-major activations) are
// packed 8 lanes at a time by the vector transposes of widen.go. A micro-kernel computes an
// MR×NR block of C over kc with its accumulators in registers.

// kernel is a micro-kernel: c[r*ldc+j] (+)= sum_k a[k*mr+r]·b[k*ldb+j] for r < mr, j < nr.
// a holds a packed panel (kc×mr), b a packed sliver (kc×nr, row stride ldb). When acc is false
// the block is overwritten.
type kernel struct {
	name   string
	mr, nr int
	fn     func(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool)
}

const (
	maxMR        = 16
	maxNR        = 32
	gemmKC       = 256  // depth of a packed slice of K
	gemmNC       = 4096 // columns of B packed at once
	gemmMCPanels = 16   // micro-panels of A per compute tile
)

// panelFunc packs lanes (≤ width) lanes starting at lane0 over depth k0..k0+kc-1 into dst in
// the layout dst[kk*width + lane], zero-filling lanes up to width.
type panelFunc func(dst []float32, lane0, lanes, k0, kc int)

// gemmOp describes one C[m×n] (+)= A[m×k]·B[k×n]. c is row-major with row stride ldc.
type gemmOp struct {
	m, n, k int
	packA   panelFunc // lanes = rows of A, width MR
	packB   panelFunc // lanes = columns of B, width NR
	c       []float32
	ldc     int
	acc     bool // add to the existing C instead of overwriting it
}

// stridedPanel returns a panelFunc reading element (lane, kk) of v at
// off + lane*laneStride + kk*kStride, for panels of the given width.
func stridedPanel(v *view, off, laneStride, kStride, width int) panelFunc {
	return func(dst []float32, lane0, lanes, k0, kc int) {
		base := off + lane0*laneStride + k0*kStride
		if kStride != 1 { // lanes side by side in each k step
			for kk := range kc {
				v.load(dst[kk*width:], 1, base+kk*kStride, laneStride, lanes)
			}
		} else { // each lane contiguous along k
			for l := v.packRowsT(dst, width, base, laneStride, lanes, kc); l < lanes; l++ {
				v.load(dst[l:], width, base+l*laneStride, kStride, kc)
			}
		}
		if lanes < width {
			for kk := range kc {
				clear(dst[kk*width+lanes : kk*width+width])
			}
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// gemm runs g on the backend's workers.
func (be *Backend) gemm(g *gemmOp) {
	m, n, k := g.m, g.n, g.k
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !g.acc {
			for i := range m {
				clear(g.c[i*g.ldc : i*g.ldc+n])
			}
		}
		return
	}
	kr := be.kern
	mr, nr := kr.mr, kr.nr
	kb := ceilDiv(k, gemmKC)
	kcMax := ceilDiv(k, kb) // even split of K
	mPanels := ceilDiv(m, mr)
	nc0 := min(ceilDiv(n, nr)*nr, gemmNC/nr*nr)
	tileP := min(gemmMCPanels, mPanels) // micro-panels per tile
	tilesM := ceilDiv(mPanels, tileP)
	// When all of M fits one tile, every B sliver is used by one tile only: its thread packs
	// it just before use into a small buffer that stays in L1, instead of packing the whole
	// KC×NC panel first (which leaves the cache between packing and use; at small M the
	// packing costs as much as the arithmetic). The packed data and the order of the kernel
	// calls are the same either way.
	fused := tilesM == 1
	bUnits := 0 // packing units of B in the packing phase
	aBuf, aHold := be.pool.getF32(mPanels * mr * kcMax)
	defer be.pool.put(aHold)
	var bBuf []float32
	if !fused {
		var bHold *buffer
		bBuf, bHold = be.pool.getF32(ceilDiv(nc0, nr) * nr * kcMax)
		defer be.pool.put(bHold)
	}
	work := float64(m) * float64(n) * float64(k)
	for jc := 0; jc < n; jc += nc0 {
		nc := min(nc0, n-jc)
		nSl := ceilDiv(nc, nr)
		// Split the columns so that every thread gets several tiles, unless the job is tiny.
		tilesN := 1
		if work > 1<<20 {
			tilesN = min(nSl, max(1, ceilDiv(4*be.w.threads, tilesM)))
		}
		slPerTile := ceilDiv(nSl, tilesN)
		tilesN = ceilDiv(nSl, slPerTile)
		if !fused {
			bUnits = nSl
		}
		for pc := 0; pc < k; pc += kcMax {
			kc := min(kcMax, k-pc)
			acc := g.acc || pc > 0
			units := bUnits + mPanels
			packGrain := 1
			if work <= 1<<20 {
				packGrain = units
			}
			be.w.parallelFor(units, be.w.grainFor(units, packGrain), func(lo, hi int) {
				for u := lo; u < hi; u++ {
					if u < bUnits {
						g.packB(bBuf[u*kc*nr:(u+1)*kc*nr], jc+u*nr, min(nr, nc-u*nr), pc, kc)
					} else {
						p := u - bUnits
						g.packA(aBuf[p*kc*mr:(p+1)*kc*mr], p*mr, min(mr, m-p*mr), pc, kc)
					}
				}
			})
			be.w.parallelFor(tilesM*tilesN, 1, func(lo, hi int) {
				var tmp [maxMR * maxNR]float32
				var sliver []float32
				if fused {
					buf, hold := be.pool.getF32(kc * nr)
					defer be.pool.put(hold)
					sliver = buf[:kc*nr]
				}
				for t := lo; t < hi; t++ {
					tm, tn := t%tilesM, t/tilesM
					p0, p1 := tm*tileP, min((tm+1)*tileP, mPanels)
					s0, s1 := tn*slPerTile, min((tn+1)*slPerTile, nSl)
					for sl := s0; sl < s1; sl++ {
						var bp []float32
						if fused {
							bp = sliver
							g.packB(bp, jc+sl*nr, min(nr, nc-sl*nr), pc, kc)
						} else {
							bp = bBuf[sl*kc*nr : (sl+1)*kc*nr]
						}
						col := jc + sl*nr
						cols := min(nr, n-col)
						for p := p0; p < p1; p++ {
							ap := aBuf[p*kc*mr : (p+1)*kc*mr]
							row := p * mr
							rows := min(mr, m-row)
							if rows == mr && cols == nr {
								kr.fn(kc, ap, bp, nr, g.c[row*g.ldc+col:], g.ldc, acc)
								continue
							}
							kr.fn(kc, ap, bp, nr, tmp[:], nr, false)
							for r := range rows {
								cr := g.c[(row+r)*g.ldc+col : (row+r)*g.ldc+col+cols]
								tr := tmp[r*nr : r*nr+cols]
								if acc {
									for j, x := range tr {
										cr[j] += x
									}
								} else {
									copy(cr, tr)
								}
							}
						}
					}
				}
			})
		}
	}
}

// goKernel4x4 is the portable micro-kernel (4×4, scalar).
func goKernel4x4(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:kc*4]
	for kk := range kc {
		bk := b[kk*ldb : kk*ldb+4]
		ak := a[kk*4 : kk*4+4]
		b0, b1, b2, b3 := bk[0], bk[1], bk[2], bk[3]
		a0, a1, a2, a3 := ak[0], ak[1], ak[2], ak[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r0 := c[0:4]
	r1 := c[ldc : ldc+4]
	r2 := c[2*ldc : 2*ldc+4]
	r3 := c[3*ldc : 3*ldc+4]
	if acc {
		r0[0], r0[1], r0[2], r0[3] = r0[0]+c00, r0[1]+c01, r0[2]+c02, r0[3]+c03
		r1[0], r1[1], r1[2], r1[3] = r1[0]+c10, r1[1]+c11, r1[2]+c12, r1[3]+c13
		r2[0], r2[1], r2[2], r2[3] = r2[0]+c20, r2[1]+c21, r2[2]+c22, r2[3]+c23
		r3[0], r3[1], r3[2], r3[3] = r3[0]+c30, r3[1]+c31, r3[2]+c32, r3[3]+c33
		return
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
	r2[0], r2[1], r2[2], r2[3] = c20, c21, c22, c23
	r3[0], r3[1], r3[2], r3[3] = c30, c31, c32, c33
}

var goKernel = &kernel{name: "go4x4", mr: 4, nr: 4, fn: goKernel4x4}
