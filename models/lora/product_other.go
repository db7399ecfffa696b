//go:build !amd64

package lora

// productRowVector has no vector form on this architecture: productRow does every column.
func productRowVector(o, u, down []float32, in int) int { return 0 }

// productRowsVector: none either.
func productRowsVector(o, u, down []float32, in int) int { return 0 }
