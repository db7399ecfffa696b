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

//go:noescape
func bf16ToF32AVX2(dst *float32, src *uint16, n int)

//go:noescape
func bf16ToF32AVX512(dst *float32, src *uint16, n int)

//go:noescape
func bf16T8AVX2(dst *float32, ldd int, src *uint16, lds int, kc int)

//go:noescape
func f16T8AVX2(dst *float32, ldd int, src *uint16, lds int, kc int)

//go:noescape
func f32T8AVX2(dst *float32, ldd int, src *float32, lds int, kc int)

// vecWiden wraps a contiguous widening kernel working on multiples of step, Go for the tail.
func vecWiden(step int, fn func(*float32, *uint16, int)) func(dst []float32, src []uint16) {
	return func(dst []float32, src []uint16) {
		n := len(src) / step * step
		if n > 0 {
			_ = dst[n-1]
			fn(&dst[0], &src[0], n)
		}
		bf16ToF32Go(dst[n:len(src)], src[n:])
	}
}

// vecWidenT wraps a transposing kernel working on multiples of 8 along K, Go for the tail.
func vecWidenT(fn func(*float32, int, *uint16, int, int), tail func([]float32, int, []uint16, int, int)) func([]float32, int, []uint16, int, int) {
	return func(dst []float32, ldd int, src []uint16, lds, kc int) {
		k8 := kc &^ 7
		if k8 > 0 {
			_ = src[7*lds+k8-1]
			_ = dst[(k8-1)*ldd+7]
			fn(&dst[0], ldd, &src[0], lds, k8)
		}
		if k8 < kc {
			tail(dst[k8*ldd:], ldd, src[k8:], lds, kc-k8)
		}
	}
}

// f32TAVX2 transposes 8 rows with the vector kernel for multiples of 4 along K, Go for the tail.
func f32TAVX2(dst []float32, ldd int, src []float32, lds, kc int) {
	k4 := kc &^ 3
	if k4 > 0 {
		_ = src[7*lds+k4-1]
		_ = dst[(k4-1)*ldd+7]
		f32T8AVX2(&dst[0], ldd, &src[0], lds, k4)
	}
	if k4 < kc {
		f32TGo(dst[k4*ldd:], ldd, src[k4:], lds, kc-k4)
	}
}

func widenImpls() []widenImpl {
	impls := []widenImpl{widenGo}
	if hasAVX2 {
		w := widenImpl{name: "avx2", bf16: vecWiden(16, bf16ToF32AVX2), bf16T: vecWidenT(bf16T8AVX2, bf16TGo), f16T: f16TGo, f32T: f32TAVX2}
		if hasF16C {
			w.f16T = vecWidenT(f16T8AVX2, f16TGo)
		}
		impls = append(impls, w)
	}
	if hasAVX512 && cpu.X86.HasAVX512BW { // VPMOVZXWD to a Z register is AVX512BW
		w := impls[len(impls)-1]
		w.name = "avx512"
		w.bf16 = vecWiden(32, bf16ToF32AVX512)
		impls = append(impls, w)
	}
	return impls
}
