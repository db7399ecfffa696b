package safetensors_test

import (
	"fmt"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// A loader opens a checkpoint (file, index or folder of shards), removes the prefix a combined
// checkpoint puts in front of its diffusion model, and reads raw bytes for the tensor package.
func Example() {
	data, err := safetensors.Marshal(map[string]safetensors.Entry{
		"model.diffusion_model.x_pad_token": {DType: safetensors.BF16, Shape: []int{1, 2}, Data: []byte{0x80, 0x3f, 0, 0x40}},
		"first_stage_model.decoder.w":       {DType: safetensors.F32, Shape: []int{}, Data: []byte{0, 0, 0, 0}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		panic(err)
	}
	f, err := safetensors.Parse("ckpt.safetensors", data) // safetensors.Open(path) maps a file
	if err != nil {
		panic(err)
	}
	dit := safetensors.StripPrefix(f, "model.diffusion_model.", "diffusion_model.")
	for _, name := range dit.Names() {
		info, _ := dit.Info(name)
		raw, _ := dit.Data(name)
		fmt.Println(name, info.DType, info.Shape, len(raw), "bytes")
	}
	_, err = safetensors.Parse("bad.safetensors", data[:len(data)-1])
	fmt.Println(err)
	// Output:
	// x_pad_token BF16 [1 2] 4 bytes
	// safetensors: bad.safetensors: truncated file: the tensors need 8 data bytes but the file holds 7 after its header (1 bytes missing)
}
