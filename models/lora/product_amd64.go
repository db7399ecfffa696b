package lora

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

var hasAVX = cpu.X86.HasAVX && cpu.X86.HasOSXSAVE

//go:noescape
func productRowAVX(o, u, down *float32, rank, in, blocks int)

//go:noescape
func productRows2AVX(o, u, down *float32, rank, in, blocks int)

// productRowVector computes the leading multiple of 32 columns of a product row with AVX and
// returns how many it did (0 without AVX). Same rounding and order as productRow.
func productRowVector(o, u, down []float32, in int) int {
	blocks := len(o) / 32
	if !hasAVX || blocks == 0 || len(u) == 0 || len(down) < (len(u)-1)*in+32*blocks {
		return 0
	}
	productRowAVX(unsafe.SliceData(o), unsafe.SliceData(u), unsafe.SliceData(down), len(u), in, blocks)
	return 32 * blocks
}

// productRowsVector is productRowVector for two adjacent rows: o holds both output rows
// (2·in values) and u both rows of up (2·rank values).
func productRowsVector(o, u, down []float32, in int) int {
	rank := len(u) / 2
	blocks := in / 32
	if !hasAVX || blocks == 0 || rank == 0 || len(o) < 2*in || len(down) < (rank-1)*in+32*blocks {
		return 0
	}
	productRows2AVX(unsafe.SliceData(o), unsafe.SliceData(u), unsafe.SliceData(down), rank, in, blocks)
	return 32 * blocks
}
