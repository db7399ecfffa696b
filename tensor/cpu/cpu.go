// Package cpu is the reference tensor backend: every op of tensor.Backend on host memory,
// multi-threaded over the machine's cores, with pooled buffers so that a forward pass does not
// allocate per op. Matrix products use a packed, blocked GEMM whose micro-kernel is written in
// Go assembly (AVX2+FMA or AVX-512) where the CPU supports it, and in portable Go otherwise;
// weights stay in their stored dtype and are converted panel by panel.
//
// The package registers itself as the "cpu" backend. It must not import cuda/ or model code;
// other backends are tested against it, so clarity of the arithmetic wins over cleverness
// wherever speed does not matter (norms, element-wise ops accumulate in float64).
package cpu

import (
	"fmt"
	"runtime"

	"github.com/dypegraph/dypegraph/tensor"
)

// Options configures a CPU backend. The zero value is the default.
type Options struct {
	// Threads is the number of goroutines that run an op; 0 means runtime.NumCPU().
	Threads int
	// PoolBytes caps the memory kept in the free lists for reuse; 0 means 8 GiB.
	PoolBytes int64
	// Kernel forces a GEMM micro-kernel by name ("go4x4", "avx2-6x16", "avx512-12x32");
	// empty picks the fastest the CPU supports.
	Kernel string
}

// Backend is the CPU implementation of tensor.Backend.
type Backend struct {
	w    *workers
	pool *pool
	kern *kernel
}

var _ tensor.Backend = (*Backend)(nil)

func init() {
	tensor.Register("cpu", func() (tensor.Backend, error) { return New(Options{}) })
}

// New starts a CPU backend.
func New(opt Options) (*Backend, error) {
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	limit := opt.PoolBytes
	if limit <= 0 {
		limit = 8 << 30
	}
	k := bestKernel()
	if opt.Kernel != "" {
		k = nil
		for _, c := range kernels() {
			if c.name == opt.Kernel {
				k = c
			}
		}
		if k == nil {
			return nil, fmt.Errorf("cpu: kernel %q is not available on this CPU", opt.Kernel)
		}
	}
	return &Backend{w: newWorkers(threads), pool: newPool(limit), kern: k}, nil
}

// Name returns "cpu".
func (be *Backend) Name() string { return "cpu" }

// Device returns tensor.CPU.
func (be *Backend) Device() tensor.Device { return tensor.CPU }

// Threads returns the number of goroutines an op runs on.
func (be *Backend) Threads() int { return be.w.threads }

// KernelName names the GEMM micro-kernel in use.
func (be *Backend) KernelName() string { return be.kern.name }

// Close stops the workers and drops pooled memory.
func (be *Backend) Close() error {
	be.w.close()
	be.pool.drain()
	return nil
}

// PoolAllocations counts the buffers the pool had to allocate (a measure of reuse).
func (be *Backend) PoolAllocations() int64 { return be.pool.allocs.Load() }

// PoolBuffersInUse counts the pooled buffers handed out and not yet freed: tensors alive plus
// scratch an op still holds. Equal counts before and after a model call mean it leaked nothing.
func (be *Backend) PoolBuffersInUse() int64 { return be.pool.inUse.Load() }

// Alloc returns a contiguous tensor with unspecified contents from the pool.
func (be *Backend) Alloc(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("cpu: alloc: invalid dtype %v", dt)
	}
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > (1<<40)/d) {
			return nil, fmt.Errorf("cpu: alloc: bad shape %v", shape)
		}
		n *= d
	}
	b := be.pool.get(n * dt.Size())
	t, err := tensor.New(b, dt, shape, nil, 0)
	if err != nil {
		be.pool.put(b)
		return nil, fmt.Errorf("cpu: alloc: %w", err)
	}
	return t, nil
}

// Zeros returns a contiguous tensor of zeros.
func (be *Backend) Zeros(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := be.Alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	b, _ := t.HostBytes()
	clear(b)
	return t, nil
}

// Free returns pooled memory and drops the tensors.
func (be *Backend) Free(ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t == nil {
			continue
		}
		if b, ok := t.Storage().(*buffer); ok {
			be.pool.put(b)
		}
		t.Drop()
	}
}

// ToDevice returns host tensors unchanged (no copy).
func (be *Backend) ToDevice(t *tensor.Tensor) (*tensor.Tensor, error) {
	if _, err := resolve(t, "to device: tensor"); err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	return t, nil
}

// ToHost returns t itself.
func (be *Backend) ToHost(t *tensor.Tensor) (*tensor.Tensor, error) {
	if _, err := resolve(t, "to host: tensor"); err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	return t, nil
}

// Read copies t's elements in row-major order into dst as float32.
func (be *Backend) Read(dst []float32, t *tensor.Tensor) error {
	v, err := resolve(t, "read: tensor")
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	if len(dst) != v.NumElements() {
		return fmt.Errorf("cpu: read %v: destination has %d values, want %d", t, len(dst), v.NumElements())
	}
	out := hostF32View(dst, v.Shape[:v.Rank])
	l := newND(v.Shape[:v.Rank], &out, &v)
	be.forEachSeg(&l, func(o *[3]int, n int, sc *scratch) {
		v.load(out.f32[o[0]:], 1, o[1], l.str[1][l.rank-1], n)
	})
	return nil
}

// Write sets t's elements from src (row-major), rounded to t's dtype.
func (be *Backend) Write(t *tensor.Tensor, src []float32) error {
	v, err := resolve(t, "write: tensor")
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	if len(src) != v.NumElements() {
		return fmt.Errorf("cpu: write %v: source has %d values, want %d", t, len(src), v.NumElements())
	}
	in := hostF32View(src, v.Shape[:v.Rank])
	l := newND(v.Shape[:v.Rank], &v, &in)
	be.forEachSeg(&l, func(o *[3]int, n int, sc *scratch) {
		v.store(in.f32[o[1]:o[1]+n], o[0], l.str[0][l.rank-1])
	})
	return nil
}

// hostF32View wraps a float32 slice as a contiguous view of the given shape.
func hostF32View(data []float32, shape []int) view {
	v := view{Layout: tensor.Layout{Rank: len(shape)}, dt: tensor.F32, f32: data}
	copy(v.Shape[:], shape)
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		v.Strides[i] = s
		s *= shape[i]
	}
	return v
}

// resultDType is the dtype of an op's allocated result for a main input of type dt.
func resultDType(dt tensor.DType) tensor.DType {
	if dt.IsComputeType() {
		return dt
	}
	return tensor.F32
}

// output returns the tensor an op writes: dst after checking it, or a new one of shape and
// dtype dt when dst is nil.
func (be *Backend) output(dst *tensor.Tensor, dt tensor.DType, shape []int) (*tensor.Tensor, view, error) {
	if dst == nil {
		t, err := be.Alloc(dt, shape...)
		if err != nil {
			return nil, view{}, err
		}
		v, err := resolve(t, "dst")
		return t, v, err
	}
	v, err := resolve(dst, "dst")
	if err != nil {
		return nil, v, err
	}
	if err := tensor.CheckOutput(dst, shape); err != nil {
		return nil, v, err
	}
	return dst, v, nil
}
