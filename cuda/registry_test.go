package cuda

import "github.com/dypegraph/dypegraph/tensor"

func backendNames() []string { return tensor.Backends() }
