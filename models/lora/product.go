package lora

import (
	"runtime"
	"sync"
)

// product returns up·down for up [rows, rank] and down [rank, in] (row-major float32) the way
// torch's CPU mm computes these thin products: for every element the rank terms are added in
// order, each product rounded to float32 and each sum too (no fused multiply-add). This
// reproduces ComfyUI's CPU patches bit for bit; a blocked FMA GEMM differs in the last bit,
// which after rounding to bf16 flips a few weights by one bf16 step.
func product(up, down []float32, rows, rank, in int) []float32 {
	out := make([]float32, rows*in)
	workers := min(runtime.GOMAXPROCS(0), max(1, rows*rank*in/(1<<16)), rows)
	var wg sync.WaitGroup
	chunk := (rows + workers - 1) / workers
	for lo := 0; lo < rows; lo += chunk {
		hi := min(lo+chunk, rows)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			i := lo
			for ; i+2 <= hi; i += 2 {
				o, u := out[i*in:(i+2)*in], up[i*rank:(i+2)*rank]
				if done := productRowsVector(o, u, down, in); done < in {
					productColumns(o[:in], u[:rank], down, in, done)
					productColumns(o[in:], u[rank:], down, in, done)
				}
			}
			for ; i < hi; i++ {
				productRow(out[i*in:(i+1)*in], up[i*rank:(i+1)*rank], down, in)
			}
		}(lo, hi)
	}
	wg.Wait()
	return out
}

// productRow computes one output row o = Σ_k u[k]·down[k, :]: the vector kernel's columns,
// then the rest.
func productRow(o, u, down []float32, in int) {
	productColumns(o, u, down, in, productRowVector(o, u, down, in))
}

// productColumns computes columns j0 and up of one output row in Go, eight at a time in
// registers. The explicit float32 conversions keep the compiler from fusing the multiply and
// the add.
func productColumns(o, u, down []float32, in, j0 int) {
	j := j0
	for ; j+8 <= len(o); j += 8 {
		var a0, a1, a2, a3, a4, a5, a6, a7 float32
		for k, a := range u {
			d := down[k*in+j : k*in+j+8 : k*in+j+8]
			if k == 0 {
				a0, a1, a2, a3 = float32(a*d[0]), float32(a*d[1]), float32(a*d[2]), float32(a*d[3])
				a4, a5, a6, a7 = float32(a*d[4]), float32(a*d[5]), float32(a*d[6]), float32(a*d[7])
				continue
			}
			a0 += float32(a * d[0])
			a1 += float32(a * d[1])
			a2 += float32(a * d[2])
			a3 += float32(a * d[3])
			a4 += float32(a * d[4])
			a5 += float32(a * d[5])
			a6 += float32(a * d[6])
			a7 += float32(a * d[7])
		}
		oo := o[j : j+8 : j+8]
		oo[0], oo[1], oo[2], oo[3], oo[4], oo[5], oo[6], oo[7] = a0, a1, a2, a3, a4, a5, a6, a7
	}
	for ; j < len(o); j++ {
		var acc float32
		for k, a := range u {
			if k == 0 {
				acc = float32(a * down[k*in+j])
				continue
			}
			acc += float32(a * down[k*in+j])
		}
		o[j] = acc
	}
}
