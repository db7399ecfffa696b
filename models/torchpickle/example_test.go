package torchpickle_test

import (
	"fmt"
	"maps"
	"slices"

	"github.com/dypegraph/dypegraph/models/torchpickle"
)

// An upscale-model loader reads a BasicSR-style checkpoint ({"params": ..., "params_ema": ...})
// and gets the EMA weights as safetensors entries, from the zip format of torch ≥ 1.6 and from
// the legacy format of older files (this one also has DataParallel's "module." prefix) alike.
func Example() {
	for _, file := range []string{"testdata/params_ema.pth", "testdata/legacy_params_ema.pth"} {
		sd, err := torchpickle.Load(file)
		if err != nil {
			panic(err)
		}
		fmt.Println(file)
		for _, name := range slices.Sorted(maps.Keys(sd)) {
			e := sd[name]
			fmt.Println(name, e.DType, e.Shape, len(e.Data), "bytes")
		}
	}
	// Output:
	// testdata/params_ema.pth
	// body.0.bias F32 [2] 8 bytes
	// body.0.weight F32 [2 2] 16 bytes
	// testdata/legacy_params_ema.pth
	// body.0.bias F32 [2] 8 bytes
	// body.0.weight F32 [2 2] 16 bytes
}
