package torchpickle_test

import (
	"fmt"
	"maps"
	"slices"

	"github.com/dypegraph/dypegraph/models/torchpickle"
)

// An upscale-model loader reads a BasicSR-style checkpoint ({"params": ..., "params_ema": ...})
// and gets the EMA weights as safetensors entries; files with code in them are refused.
func Example() {
	sd, err := torchpickle.Load("testdata/params_ema.pth")
	if err != nil {
		panic(err)
	}
	for _, name := range slices.Sorted(maps.Keys(sd)) {
		e := sd[name]
		fmt.Println(name, e.DType, e.Shape, len(e.Data), "bytes")
	}
	_, err = torchpickle.Load("testdata/legacy.pth")
	fmt.Println(err)
	// Output:
	// body.0.bias F32 [2] 8 bytes
	// body.0.weight F32 [2 2] 16 bytes
	// torchpickle: testdata/legacy.pth: legacy (torch < 1.6) checkpoint format: the file is a pickle, not a zip archive; load and re-save it with torch ≥ 1.6, or convert it to .safetensors
}
