#include "textflag.h"

// func productRowAVX(o, u, down *float32, rank, in, blocks int)
//
// o[j] = Σ_k u[k]·down[k*in + j] for j < 32·blocks: each product rounded (VMULPS), then added
// (VADDPS) in k order, starting from the k = 0 product, exactly as productRow's scalar loop.
// No FMA: fusing would change the last bit. rank ≥ 1.
TEXT ·productRowAVX(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ u+8(FP), SI
	MOVQ down+16(FP), DX
	MOVQ rank+24(FP), CX
	MOVQ in+32(FP), R8
	MOVQ blocks+40(FP), R9
	SHLQ $2, R8

blockloop:
	TESTQ R9, R9
	JZ    done
	MOVQ  DX, R10
	MOVQ  SI, R11
	VBROADCASTSS (R11), Y15
	VMULPS (R10), Y15, Y0
	VMULPS 32(R10), Y15, Y1
	VMULPS 64(R10), Y15, Y2
	VMULPS 96(R10), Y15, Y3
	MOVQ  CX, R12
	DECQ  R12

kloop:
	TESTQ R12, R12
	JZ    kdone
	ADDQ  R8, R10
	ADDQ  $4, R11
	VBROADCASTSS (R11), Y15
	VMULPS (R10), Y15, Y4
	VMULPS 32(R10), Y15, Y5
	VMULPS 64(R10), Y15, Y6
	VMULPS 96(R10), Y15, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	DECQ  R12
	JMP   kloop

kdone:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ  $128, DI
	ADDQ  $128, DX
	DECQ  R9
	JMP   blockloop

done:
	VZEROUPPER
	RET

// func productRows2AVX(o, u, down *float32, rank, in, blocks int)
//
// productRowAVX for two adjacent rows at once (u and u+rank into o and o+in), so that each
// load of down serves both rows.
TEXT ·productRows2AVX(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ u+8(FP), SI
	MOVQ down+16(FP), DX
	MOVQ rank+24(FP), CX
	MOVQ in+32(FP), R8
	MOVQ blocks+40(FP), R9
	SHLQ $2, R8
	LEAQ (SI)(CX*4), BX // u of the second row
	LEAQ (DI)(R8*1), R13 // o of the second row

block2:
	TESTQ R9, R9
	JZ    done2
	MOVQ  DX, R10
	XORQ  R11, R11
	VMOVUPS (R10), Y8
	VMOVUPS 32(R10), Y9
	VMOVUPS 64(R10), Y10
	VMOVUPS 96(R10), Y11
	VBROADCASTSS (SI), Y14
	VBROADCASTSS (BX), Y15
	VMULPS Y8, Y14, Y0
	VMULPS Y9, Y14, Y1
	VMULPS Y10, Y14, Y2
	VMULPS Y11, Y14, Y3
	VMULPS Y8, Y15, Y4
	VMULPS Y9, Y15, Y5
	VMULPS Y10, Y15, Y6
	VMULPS Y11, Y15, Y7
	MOVQ  CX, R12
	DECQ  R12

k2:
	TESTQ R12, R12
	JZ    k2done
	ADDQ  R8, R10
	ADDQ  $4, R11
	VMOVUPS (R10), Y8
	VMOVUPS 32(R10), Y9
	VMOVUPS 64(R10), Y10
	VMOVUPS 96(R10), Y11
	VBROADCASTSS (SI)(R11*1), Y14
	VBROADCASTSS (BX)(R11*1), Y15
	VMULPS Y8, Y14, Y12
	VMULPS Y9, Y14, Y13
	VADDPS Y12, Y0, Y0
	VADDPS Y13, Y1, Y1
	VMULPS Y10, Y14, Y12
	VMULPS Y11, Y14, Y13
	VADDPS Y12, Y2, Y2
	VADDPS Y13, Y3, Y3
	VMULPS Y8, Y15, Y12
	VMULPS Y9, Y15, Y13
	VADDPS Y12, Y4, Y4
	VADDPS Y13, Y5, Y5
	VMULPS Y10, Y15, Y12
	VMULPS Y11, Y15, Y13
	VADDPS Y12, Y6, Y6
	VADDPS Y13, Y7, Y7
	DECQ  R12
	JMP   k2

k2done:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, (R13)
	VMOVUPS Y5, 32(R13)
	VMOVUPS Y6, 64(R13)
	VMOVUPS Y7, 96(R13)
	ADDQ  $128, DI
	ADDQ  $128, R13
	ADDQ  $128, DX
	DECQ  R9
	JMP   block2

done2:
	VZEROUPPER
	RET
