//go:build !amd64

package sampling

// boxMullerBlocks runs boxMuller16 on every whole block of 16 in d.
func boxMullerBlocks(d []float32) { boxMullerBlocksGo(d) }

// temperUniform24 is dst[i] = float32(temper(src[i])&0xffffff)·2^−24 for every i < len(dst).
func temperUniform24(dst []float32, src []uint32) { temperUniform24Go(dst, src) }
