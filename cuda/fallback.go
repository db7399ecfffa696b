package cuda

import (
	"fmt"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// cpuBackend is the CPU backend used by the host fallbacks, started on first use.
func (be *Backend) cpuBackend() (*cpu.Backend, error) {
	be.cpuOnce.Do(func() { be.cpuBE, be.cpuErr = cpu.New(cpu.Options{}) })
	return be.cpuBE, be.cpuErr
}

// hostRun is the fallback for ops without a kernel: it downloads ins, runs the op on the CPU
// backend into a host tensor of out's dtype and shape (so that the result is rounded once, to
// out's dtype, as the CPU backend would) and uploads that into out.
func (be *Backend) hostRun(out *tensor.Tensor, ins []*tensor.Tensor, run func(c tensor.Backend, in []*tensor.Tensor, dst *tensor.Tensor) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	c, err := be.cpuBackend()
	if err != nil {
		return nil, fmt.Errorf("cuda: host fallback: %w", err)
	}
	host := make([]*tensor.Tensor, len(ins))
	for i, t := range ins {
		if host[i], err = be.ToHost(t); err != nil {
			return nil, fmt.Errorf("cuda: host fallback: %w", err)
		}
	}
	hd, err := tensor.Zeros(out.DType(), out.Shape()...)
	if err != nil {
		return nil, fmt.Errorf("cuda: host fallback: %w", err)
	}
	res, err := run(c, host, hd)
	if err != nil {
		return nil, fmt.Errorf("cuda: host fallback: %w", err)
	}
	up, err := be.ToDevice(res)
	if err != nil {
		return nil, fmt.Errorf("cuda: host fallback: %w", err)
	}
	defer be.Free(up)
	if _, err := be.Copy(out, up); err != nil {
		return nil, fmt.Errorf("cuda: host fallback: %w", err)
	}
	return out, nil
}
