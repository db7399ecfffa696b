package sampling

import "golang.org/x/sys/cpu"

// hasBoxMullerAVX2 selects boxMullerAVX2 and uniform24AVX2 (AVX2 and FMA, with the OS saving the YMM state).
var hasBoxMullerAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasOSXSAVE

// boxMullerAVX2 runs boxMuller16 on blocks consecutive blocks of 16 floats from d, eight lanes
// at a time in the very operations torch's AVX2 kernel makes (bit-identical to boxMuller16).
//
//go:noescape
func boxMullerAVX2(d *float32, blocks int)

// boxMullerBlocks runs boxMuller16 on every whole block of 16 in d.
func boxMullerBlocks(d []float32) {
	if blocks := len(d) / 16; hasBoxMullerAVX2 && blocks > 0 {
		boxMullerAVX2(&d[0], blocks)
		return
	}
	boxMullerBlocksGo(d)
}

// uniform24AVX2 is dst[i] = float32(temper(src[i])&0xffffff)·2^−24 for 8·blocks values.
//
//go:noescape
func uniform24AVX2(dst *float32, src *uint32, blocks int)

// temperUniform24 is dst[i] = float32(temper(src[i])&0xffffff)·2^−24 for every i < len(dst)
// (len(src) >= len(dst)).
func temperUniform24(dst []float32, src []uint32) {
	if blocks := len(dst) / 8; hasBoxMullerAVX2 && blocks > 0 {
		uniform24AVX2(&dst[0], &src[0], blocks)
		dst, src = dst[8*blocks:], src[8*blocks:]
	}
	temperUniform24Go(dst, src)
}
