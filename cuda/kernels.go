package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
)

// param is the size and alignment of a kernel parameter as the Go side packs it.
type param struct{ size, align int }

var (
	pPtr = param{8, 8}
	pI32 = param{4, 4}
	pI64 = param{8, 8}
	pF32 = param{4, 4}
)

// pStruct is a struct parameter of size bytes (all kernel structs are 8-aligned).
func pStruct(size int) param { return param{size, 8} }

// Sizes of the kernel structs (kernels/*.cuh, *.cu); TestKernelSignatures checks them
// against the PTX.
const (
	sizeND      = 3*maxRank*8 + maxRank*4 + 2*4 // 232
	sizeRows    = 2*maxRank*8 + 2*8 + maxRank*4 + 4*4
	sizeGNApply = 8*8 + 8*4
	sizeRope    = 14*8 + 10*4
	sizeAttn    = 20*8 + 16*4
	sizeGemm    = 7*8 + 3*gemmBRank*8 + gemmBRank*4 + 10*4
	sizeIm2col  = 4*8 + 16*4
)

const (
	maxRank   = 8 // MAXR in layout.cuh
	gemmBRank = 6 // GEMM_BRANK in gemm.cu
)

// kernel is a kernel the Go code launches, with the parameter layout it packs.
type kernel struct {
	name   string
	params []param
}

func kdef(name string, ps ...param) *kernel { return &kernel{name: name, params: ps} }

// The kernels (one per .entry of kernels/all.cu).
var (
	kEwMap      = kdef("ew_map", pStruct(sizeND), pPtr, pI32, pPtr, pI32, pI32, pF32, pF32)
	kEwBin      = kdef("ew_bin", pStruct(sizeND), pPtr, pI32, pPtr, pI32, pPtr, pI32, pI32)
	kSplitBF16  = kdef("split_bf16", pStruct(sizeND), pPtr, pI32, pPtr, pPtr, pPtr, pI32)
	kGatherRows = kdef("gather_rows", pPtr, pI32, pI64, pI64, pPtr, pI32, pI32, pPtr, pI32, pI64, pI64)
	kRMSNorm    = kdef("row_rmsnorm", pStruct(sizeRows), pPtr, pI32, pPtr, pI32, pPtr, pI32, pI64, pF32)
	kLayerNorm  = kdef("row_layernorm", pStruct(sizeRows), pPtr, pI32, pPtr, pI32, pPtr, pI32, pI64, pPtr, pI32, pI64, pF32)
	kSoftmax    = kdef("row_softmax", pStruct(sizeRows), pPtr, pI32, pPtr, pI32)
	kGNReduce   = kdef("gn_reduce", pPtr, pI32, pI64, pI64, pI64, pI32, pI32, pI32, pI32, pI32, pPtr, pPtr)
	kGNFinalize = kdef("gn_finalize", pPtr, pI32, pI32, param{8, 8}, pI32, pF32, pPtr)
	kGNApply    = kdef("gn_apply", pStruct(sizeGNApply), pPtr, pPtr, pPtr, pPtr, pPtr)
	kRoPE       = kdef("rope", pStruct(sizeRope), pPtr, pPtr, pPtr, pPtr)
	kAttnF32C4  = kdef("attn_f32_c4", pStruct(sizeAttn), pPtr, pPtr, pPtr, pPtr, pPtr)
	kAttnF32C8  = kdef("attn_f32_c8", pStruct(sizeAttn), pPtr, pPtr, pPtr, pPtr, pPtr)
	kAttnF32C16 = kdef("attn_f32_c16", pStruct(sizeAttn), pPtr, pPtr, pPtr, pPtr, pPtr)
	kAttnMMA64  = kdef("attn_mma_d64", pStruct(sizeAttn), pPtr, pPtr, pPtr, pPtr, pPtr)
	kAttnMMA128 = kdef("attn_mma_d128", pStruct(sizeAttn), pPtr, pPtr, pPtr, pPtr, pPtr)
	kGemmSIMT   = kdef("gemm_simt", pStruct(sizeGemm), pPtr, pPtr, pPtr, pPtr)
	kIm2col     = kdef("im2col", pStruct(sizeIm2col), pPtr, pPtr)
	kResizeNear = kdef("resize_nearest", pPtr, pPtr, pI32, pI32, pI32, pI32, pI32)
	kResizeSep  = kdef("resize_sep", pPtr, pPtr, pI32, pI32, pI32, pI32, pI32, pI32)
	kResizeArea = kdef("resize_area", pPtr, pPtr, pI32, pI32, pI32, pI32, pI32)
)

// allKernels lists every kernel the backend loads at Open.
var allKernels = []*kernel{kEwMap, kEwBin, kSplitBF16, kGatherRows, kRMSNorm, kLayerNorm, kSoftmax,
	kGNReduce, kGNFinalize, kGNApply, kRoPE, kAttnF32C4, kAttnF32C8, kAttnF32C16, kAttnMMA64, kAttnMMA128, kGemmSIMT, kIm2col,
	kResizeNear, kResizeSep, kResizeArea}

// args packs kernel parameters into a CUDA parameter buffer (CU_LAUNCH_PARAM_BUFFER_POINTER):
// each value at the next offset aligned to its alignment, little endian.
type args struct {
	buf []byte
	sig []param
}

func (a *args) put(p param, b []byte) *args {
	for len(a.buf)%p.align != 0 {
		a.buf = append(a.buf, 0)
	}
	a.buf = append(a.buf, b...)
	a.sig = append(a.sig, p)
	return a
}

func (a *args) ptr(p devPtr) *args {
	return a.put(pPtr, binary.LittleEndian.AppendUint64(nil, uint64(p)))
}
func (a *args) i32(v int) *args {
	return a.put(pI32, binary.LittleEndian.AppendUint32(nil, uint32(int32(v))))
}
func (a *args) i64(v int) *args { return a.put(pI64, binary.LittleEndian.AppendUint64(nil, uint64(v))) }
func (a *args) f32(v float32) *args {
	return a.put(pF32, binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
}
func (a *args) f64(v float64) *args {
	return a.put(param{8, 8}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)))
}

// structure appends a packed struct (8-aligned).
func (a *args) structure(s *sbuf) *args { return a.put(pStruct(len(s.b)), s.b) }

// check compares the packed parameters with the kernel's declared layout.
func (a *args) check(k *kernel) error {
	if len(a.sig) != len(k.params) {
		return fmt.Errorf("cuda: kernel %s takes %d parameters, %d were packed", k.name, len(k.params), len(a.sig))
	}
	for i, p := range k.params {
		if a.sig[i] != p {
			return fmt.Errorf("cuda: kernel %s parameter %d: packed %d bytes aligned %d, want %d aligned %d",
				k.name, i, a.sig[i].size, a.sig[i].align, p.size, p.align)
		}
	}
	return nil
}

// sbuf packs a C struct field by field (every field naturally aligned, as the kernels
// declare them: 8-byte fields first, then 4-byte ones).
type sbuf struct{ b []byte }

func (s *sbuf) i64(v int) *sbuf {
	for len(s.b)%8 != 0 {
		s.b = append(s.b, 0)
	}
	s.b = binary.LittleEndian.AppendUint64(s.b, uint64(v))
	return s
}
func (s *sbuf) i32(v int) *sbuf {
	s.b = binary.LittleEndian.AppendUint32(s.b, uint32(int32(v)))
	return s
}
func (s *sbuf) f32(v float32) *sbuf {
	s.b = binary.LittleEndian.AppendUint32(s.b, math.Float32bits(v))
	return s
}

// end pads the struct to its 8-byte alignment.
func (s *sbuf) end() *sbuf {
	for len(s.b)%8 != 0 {
		s.b = append(s.b, 0)
	}
	return s
}
