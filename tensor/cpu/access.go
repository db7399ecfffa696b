package cpu

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/dypegraph/dypegraph/tensor"
)

// view is a tensor resolved to typed host memory: the slice matching its dtype is set.
type view struct {
	tensor.Layout
	dt  tensor.DType
	f32 []float32
	u16 []uint16
	u8  []byte
	st  tensor.Storage
}

// overlaps reports whether two views may share elements (conservatively by byte range).
func (v *view) overlaps(u *view) bool {
	return v.st == u.st && v.Layout.Overlaps(v.dt.Size(), &u.Layout, u.dt.Size())
}

// sameLayout reports whether u addresses exactly the elements of v in the same order.
func (v *view) sameLayout(u *view) bool {
	return v.st == u.st && v.dt == u.dt && v.Layout.SameLayout(&u.Layout)
}

// resolve checks that t is a usable host tensor and returns its typed view.
func resolve(t *tensor.Tensor, what string) (view, error) {
	var v view
	if t == nil {
		return v, fmt.Errorf("%s is nil", what)
	}
	st := t.Storage()
	if st == nil {
		return v, fmt.Errorf("%s: %w", what, tensor.ErrFreed)
	}
	h, ok := st.(tensor.HostMemory)
	if !ok {
		return v, fmt.Errorf("%s %v is on %v, not on the cpu backend (use ToDevice/ToHost)", what, t, t.Device())
	}
	b := h.Bytes()
	v.Layout = t.Layout()
	v.dt = t.DType()
	v.st = st
	if len(b) > 0 {
		p := unsafe.Pointer(&b[0])
		switch v.dt.Size() {
		case 4:
			v.f32 = unsafe.Slice((*float32)(p), len(b)/4)
		case 2:
			v.u16 = unsafe.Slice((*uint16)(p), len(b)/2)
		case 1:
			v.u8 = b
		}
	}
	return v, nil
}

// load writes n elements of v starting at element index off with stride st into dst[i*ds],
// widened to float32.
func (v *view) load(dst []float32, ds int, off, st, n int) {
	if n <= 0 {
		return
	}
	switch v.dt {
	case tensor.F32:
		src := v.f32
		if st == 1 && ds == 1 {
			copy(dst[:n], src[off:off+n])
			return
		}
		for i := range n {
			dst[i*ds] = src[off+i*st]
		}
	case tensor.BF16:
		src := v.u16
		if st == 1 && ds == 1 {
			widen.bf16(dst[:n], src[off:off+n])
			return
		}
		for i := range n {
			dst[i*ds] = math.Float32frombits(uint32(src[off+i*st]) << 16)
		}
	case tensor.F16:
		src := v.u16
		if st == 1 && ds == 1 {
			f16Decode(dst[:n], src[off:off+n])
			return
		}
		for i := range n {
			dst[i*ds] = tensor.F16ToF32(src[off+i*st])
		}
	case tensor.F8E4M3:
		src := v.u8
		for i := range n {
			dst[i*ds] = e4m3Table[src[off+i*st]]
		}
	case tensor.F8E5M2:
		src := v.u8
		for i := range n {
			dst[i*ds] = e5m2Table[src[off+i*st]]
		}
	}
}

// store writes src into n elements of v starting at off with stride st, rounding to v's dtype.
func (v *view) store(src []float32, off, st int) {
	n := len(src)
	if n == 0 {
		return
	}
	switch v.dt {
	case tensor.F32:
		dst := v.f32
		if st == 1 {
			copy(dst[off:off+n], src)
			return
		}
		for i, f := range src {
			dst[off+i*st] = f
		}
	case tensor.BF16:
		dst := v.u16
		for i, f := range src {
			dst[off+i*st] = tensor.F32ToBF16(f)
		}
	case tensor.F16:
		dst := v.u16
		for i, f := range src {
			dst[off+i*st] = tensor.F32ToF16(f)
		}
	case tensor.F8E4M3:
		dst := v.u8
		for i, f := range src {
			dst[off+i*st] = tensor.F32ToF8E4M3(f)
		}
	case tensor.F8E5M2:
		dst := v.u8
		for i, f := range src {
			dst[off+i*st] = tensor.F32ToF8E5M2(f)
		}
	}
}

// row returns n consecutive elements at off as float32: the storage itself for F32 (no copy),
// else converted into scratch.
func (v *view) row(off, n int, scratch []float32) []float32 {
	if v.dt == tensor.F32 {
		return v.f32[off : off+n]
	}
	v.load(scratch, 1, off, 1, n)
	return scratch[:n]
}

// rowStrided is row for elements with stride st.
func (v *view) rowStrided(off, st, n int, scratch []float32) []float32 {
	if st == 1 {
		return v.row(off, n, scratch)
	}
	v.load(scratch, 1, off, st, n)
	return scratch[:n]
}

var e4m3Table, e5m2Table = func() (a, b [256]float32) {
	for i := range 256 {
		a[i] = tensor.F8E4M3ToF32(uint8(i))
		b[i] = tensor.F8E5M2ToF32(uint8(i))
	}
	return a, b
}()

// f16DecodeGo widens IEEE halves (the portable path; amd64 uses F16C when present).
func f16DecodeGo(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = tensor.F16ToF32(h)
	}
}
