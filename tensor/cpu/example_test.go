package cpu_test

import (
	"encoding/binary"
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// A linear layer with a bf16 weight given as raw little-endian bytes (as a memory-mapped
// safetensors file provides them): the weight is used in place, never converted whole.
func Example() {
	be, err := cpu.New(cpu.Options{})
	if err != nil {
		panic(err)
	}
	defer be.Close()

	raw := make([]byte, 2*3*2) // weight [3 out, 2 in] in BF16
	for i, v := range []float32{1, 0, 0, 1, 0.5, -0.5} {
		binary.LittleEndian.PutUint16(raw[2*i:], tensor.F32ToBF16(v))
	}
	w, _ := tensor.FromBytes(raw, tensor.BF16, 3, 2)
	x, _ := tensor.FromFloat32([]float32{2, 4}, 1, 2)

	y, err := be.Linear(nil, x, w, nil) // x·wᵀ, float32 accumulation
	if err != nil {
		panic(err)
	}
	out := make([]float32, y.NumElements())
	_ = be.Read(out, y)
	fmt.Println(y.Shape(), out)
	be.Free(y) // the buffer goes back to the pool for the next op
	// Output: [1 3] [2 4 -1]
}
