//go:build amd64 && !purego

package cpu

//go:generate go run asm_gen.go

import (
	"math"

	"golang.org/x/sys/cpu"
)

//go:noescape
func sgemmAVX2(kc int, a, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func sgemmAVX512(kc int, a, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func f16ToF32F16C(dst *float32, src *uint16, n int)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The wrappers check the slice bounds the assembly relies on, so that a driver bug panics
// like Go code would instead of corrupting memory.

var avx2Kernel = &kernel{name: "avx2-6x16", mr: 6, nr: 16,
	fn: func(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
		_ = a[kc*6-1]
		_ = b[(kc-1)*ldb+15]
		_ = c[5*ldc+15]
		sgemmAVX2(kc, &a[0], &b[0], ldb, &c[0], ldc, b2i(acc))
	}}

var avx512Kernel = &kernel{name: "avx512-12x32", mr: 12, nr: 32,
	fn: func(kc int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
		_ = a[kc*12-1]
		_ = b[(kc-1)*ldb+31]
		_ = c[11*ldc+31]
		sgemmAVX512(kc, &a[0], &b[0], ldb, &c[0], ldc, b2i(acc))
	}}

var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasOSXSAVE
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F
	hasF16C   = cpu.X86.HasF16C && cpu.X86.HasAVX && cpu.X86.HasOSXSAVE
)

func kernels() []*kernel {
	ks := []*kernel{goKernel}
	if hasAVX2 {
		ks = append(ks, avx2Kernel)
	}
	if hasAVX512 {
		ks = append(ks, avx512Kernel)
	}
	return ks
}

func bestKernel() *kernel {
	ks := kernels()
	return ks[len(ks)-1]
}

var f16Decode = func() func(dst []float32, src []uint16) {
	if !hasF16C {
		return f16DecodeGo
	}
	return func(dst []float32, src []uint16) {
		n := len(src) &^ 7
		if n > 0 {
			_ = dst[n-1]
			f16ToF32F16C(&dst[0], &src[0], n)
		}
		f16DecodeGo(dst[n:len(src)], src[n:])
	}
}()

//go:noescape
func expShiftSumAVX2(s *float32, n int, m float32) float32

//go:noescape
func scaleMaxAVX2(s *float32, n int, scale float32) float32

//go:noescape
func expShiftSumAVX512(s *float32, n int, m float32) float32

//go:noescape
func scaleMaxAVX512(s *float32, n int, scale float32) float32

// softmaxImpl is one implementation of the attention softmax row kernels.
type softmaxImpl struct {
	name        string
	scaleMax    func(s []float32, scale float32) float32
	expShiftSum func(s []float32, m float32) float32
}

// vecSoftmax wraps vector kernels working on multiples of width, with Go for the tail.
func vecSoftmax(name string, width int, smax, exps func(*float32, int, float32) float32) softmaxImpl {
	return softmaxImpl{
		name: name,
		scaleMax: func(s []float32, scale float32) float32 {
			n := len(s) / width * width
			m := float32(math.Inf(-1))
			if n > 0 {
				m = smax(&s[0], n, scale)
			}
			if n < len(s) {
				m = max(m, scaleMaxGo(s[n:], scale))
			}
			return m
		},
		expShiftSum: func(s []float32, m float32) float32 {
			n := len(s) / width * width
			var sum float32
			if n > 0 {
				sum = exps(&s[0], n, m)
			}
			if n < len(s) {
				sum += expShiftSumGo(s[n:], m)
			}
			return sum
		},
	}
}

func softmaxImpls() []softmaxImpl {
	impls := []softmaxImpl{{"go", scaleMaxGo, expShiftSumGo}}
	if hasAVX2 {
		impls = append(impls, vecSoftmax("avx2", 8, scaleMaxAVX2, expShiftSumAVX2))
	}
	if hasAVX512 {
		impls = append(impls, vecSoftmax("avx512", 16, scaleMaxAVX512, expShiftSumAVX512))
	}
	return impls
}

// The fastest available softmax kernels.
var scaleMax, expShiftSum = func() (func([]float32, float32) float32, func([]float32, float32) float32) {
	impls := softmaxImpls()
	best := impls[len(impls)-1]
	return best.scaleMax, best.expShiftSum
}()
