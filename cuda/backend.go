package cuda

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// Precision selects how products of float32 activations run (see the package doc).
type Precision string

// The precisions.
const (
	// PrecisionExact keeps float32 results: f32×bf16 products as three exact bf16 terms on
	// tensor cores, f32×f32 products and f32 attention on the CUDA cores in fp32.
	PrecisionExact Precision = "exact"
	// PrecisionFast rounds float32 activations to bf16 (tf32 for f32×f32) before tensor-core
	// products, as torch autocast does.
	PrecisionFast Precision = "fast"
)

// The GEMM engines Options.GEMM selects.
const (
	GEMMCublasLt = "cublaslt" // the default: cuBLASLt; Open fails naming the library when it is missing
	GEMMAuto     = "auto"     // cuBLASLt when it loads, else the built-in kernel (see Backend.GEMMEngine)
	GEMMBuiltin  = "builtin"  // the package's own (slower) fp32 GEMM kernel; no cuBLASLt needed
)

// Options configures a CUDA backend. The zero value picks device 0, exact precision and
// cuBLASLt (required).
type Options struct {
	Device         int       // GPU ordinal
	Precision      Precision // "" means exact
	GEMM           string    // "" means cublaslt
	PoolCacheBytes int64     // freed memory kept for reuse at most; 0 means no limit
	LibCUDA        string    // path of libcuda.so.1; "" searches the usual places
	LibCublasLt    string    // path of libcublasLt; "" searches the usual places
}

// Environment variables read by OptionsFromEnv (the registered "cuda" backend uses them).
const (
	EnvDevice      = "DYPEGRAPH_CUDA_DEVICE"
	EnvPrecision   = "DYPEGRAPH_CUDA_PRECISION"
	EnvGEMM        = "DYPEGRAPH_CUDA_GEMM"
	EnvLibCUDA     = "DYPEGRAPH_LIBCUDA"
	EnvLibCublasLt = "DYPEGRAPH_LIBCUBLASLT"
)

// OptionsFromEnv returns the options given by the DYPEGRAPH_CUDA_* and DYPEGRAPH_LIB*
// environment variables.
func OptionsFromEnv() Options {
	o := Options{
		Precision:   Precision(strings.ToLower(os.Getenv(EnvPrecision))),
		GEMM:        strings.ToLower(os.Getenv(EnvGEMM)),
		LibCUDA:     os.Getenv(EnvLibCUDA),
		LibCublasLt: os.Getenv(EnvLibCublasLt),
	}
	if d, err := strconv.Atoi(os.Getenv(EnvDevice)); err == nil {
		o.Device = d
	}
	return o
}

func (o *Options) validate() error {
	switch o.Precision {
	case "":
		o.Precision = PrecisionExact
	case PrecisionExact, PrecisionFast:
	default:
		return fmt.Errorf("cuda: precision %q (want exact or fast)", o.Precision)
	}
	switch o.GEMM {
	case "":
		o.GEMM = GEMMCublasLt
	case GEMMAuto, GEMMCublasLt, GEMMBuiltin:
	default:
		return fmt.Errorf("cuda: GEMM engine %q (want auto, cublaslt or builtin)", o.GEMM)
	}
	if o.Device < 0 {
		return fmt.Errorf("cuda: device ordinal %d", o.Device)
	}
	return nil
}

var probeErr error // why the backend is not registered

func init() {
	if probeErr = probeDriver(os.Getenv(EnvLibCUDA)); probeErr == nil {
		tensor.Register("cuda", func() (tensor.Backend, error) { return Open(OptionsFromEnv()) })
	}
}

// Available reports why the "cuda" backend is not registered (nil when it is): no CUDA
// driver library, or an unsupported platform. A registered backend may still fail to open
// (no GPU, missing cuBLASLt); Open says why.
func Available() error { return probeErr }

// Backend is the CUDA implementation of tensor.Backend. All its work runs in order on one
// stream; ops return once their kernels are queued, and Read/ToHost wait for them.
type Backend struct {
	dev    device
	inf    deviceInfo
	opt    Options
	pool   *memPool
	fns    map[string]fnHandle
	lt     ltEngine
	index  int
	closed atomic.Bool

	smemMu  sync.Mutex
	smemSet map[fnHandle]int

	cpuOnce sync.Once
	cpuBE   *cpu.Backend
	cpuErr  error
}

var _ tensor.Backend = (*Backend)(nil)

// Open starts a backend on GPU opt.Device.
func Open(opt Options) (*Backend, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	dev, err := openGPU(opt)
	if err != nil {
		return nil, err
	}
	be, err := newBackend(dev, opt)
	if err != nil {
		dev.close()
		return nil, err
	}
	return be, nil
}

// newBackend wraps an opened device (a GPU, or the emulator in tests).
func newBackend(dev device, opt Options) (*Backend, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	be := &Backend{dev: dev, inf: dev.info(), opt: opt, index: opt.Device, fns: map[string]fnHandle{},
		smemSet: map[fnHandle]int{}}
	for _, k := range allKernels {
		f, err := dev.function(k.name)
		if err != nil {
			return nil, fmt.Errorf("cuda: kernel %s: %w", k.name, err)
		}
		be.fns[k.name] = f
	}
	if opt.GEMM != GEMMBuiltin {
		be.lt = dev.blas()
	}
	be.pool = newMemPool(dev, uint64(max(opt.PoolCacheBytes, 0)))
	return be, nil
}

// Name returns "cuda".
func (be *Backend) Name() string { return "cuda" }

// Device returns cuda:N.
func (be *Backend) Device() tensor.Device {
	return tensor.Device{Kind: tensor.DeviceCUDA, Index: be.index}
}

// DeviceName is the GPU's name (for /system_stats).
func (be *Backend) DeviceName() string { return be.inf.name }

// ComputeCapability returns the GPU's compute capability.
func (be *Backend) ComputeCapability() (major, minor int) { return be.inf.ccMajor, be.inf.ccMinor }

// GEMMEngine names the matrix-product engine in use: "cublaslt" or "builtin".
func (be *Backend) GEMMEngine() string {
	if be.lt != nil {
		return GEMMCublasLt
	}
	return GEMMBuiltin
}

// Precision returns the precision of float32 products.
func (be *Backend) Precision() Precision { return be.opt.Precision }

// MemInfo returns the device's free and total memory in bytes (vram_free, vram_total).
func (be *Backend) MemInfo() (free, total uint64, err error) { return be.dev.memInfo() }

// MemoryStats is the backend's memory accounting: Live bytes in tensors (by size class),
// Peak of Live since the start or ResetPeak, Cached bytes kept for reuse, Held from the
// driver in all (Live + Cached).
type MemoryStats struct {
	Live, Peak, Cached, Held uint64
	DriverAllocs, CacheHits  int64
}

// MemoryStats returns the current accounting.
func (be *Backend) MemoryStats() MemoryStats {
	s := be.pool.stats()
	return MemoryStats{Live: s.Live, Peak: s.Peak, Cached: s.Cached, Held: s.Held, DriverAllocs: s.RawAllocs, CacheHits: s.CacheHits}
}

// ResetPeak restarts peak accounting from the current live bytes.
func (be *Backend) ResetPeak() { be.pool.resetPeak() }

// EmptyCache hands the cached (freed) blocks back to the driver.
func (be *Backend) EmptyCache() error {
	if err := be.dev.sync(); err != nil {
		return err
	}
	return be.pool.trim()
}

// Synchronize waits for all queued work and reports asynchronous errors.
func (be *Backend) Synchronize() error { return be.dev.sync() }

// Close waits for the queued work and releases the backend's memory, kernels and stream.
// Tensors it allocated must not be used afterwards.
func (be *Backend) Close() error {
	if !be.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := be.dev.sync()
	if perr := be.pool.release(); err == nil {
		err = perr
	}
	if be.cpuBE != nil {
		be.cpuBE.Close()
	}
	if cerr := be.dev.close(); err == nil {
		err = cerr
	}
	return err
}

// buffer is a block of device memory holding tensor elements.
type buffer struct {
	be     *Backend
	ptr    devPtr
	size   int
	pooled bool
	freed  atomic.Bool
}

// Device returns the backend's device.
func (b *buffer) Device() tensor.Device { return b.be.Device() }

// Size returns the length in bytes.
func (b *buffer) Size() int { return b.size }

func (be *Backend) isOOM(err error) bool { return errors.Is(err, errOutOfMemory) }

// newBuffer takes n bytes from the pool.
func (be *Backend) newBuffer(n int) (*buffer, error) {
	if be.closed.Load() {
		return nil, errors.New("cuda: backend is closed")
	}
	p, err := be.pool.get(uint64(n), be.isOOM)
	if err != nil {
		return nil, fmt.Errorf("cuda: allocate %d bytes on %v: %w", n, be.Device(), err)
	}
	return &buffer{be: be, ptr: p, size: n, pooled: true}, nil
}

func checkShape(shape []int) (int, error) {
	if len(shape) > tensor.MaxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), tensor.MaxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > (1<<40)/d) {
			return 0, fmt.Errorf("bad shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// Alloc returns a contiguous tensor with unspecified contents from the pool.
func (be *Backend) Alloc(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("cuda: alloc: invalid dtype %v", dt)
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc: %w", err)
	}
	b, err := be.newBuffer(n * dt.Size())
	if err != nil {
		return nil, err
	}
	t, err := tensor.New(b, dt, shape, nil, 0)
	if err != nil {
		be.releaseBuffer(b)
		return nil, fmt.Errorf("cuda: alloc: %w", err)
	}
	return t, nil
}

// Zeros returns a contiguous tensor of zeros.
func (be *Backend) Zeros(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := be.Alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	b := t.Storage().(*buffer)
	if b.size > 0 {
		if err := be.dev.memsetZero(b.ptr, uint64(b.size)); err != nil {
			be.Free(t)
			return nil, fmt.Errorf("cuda: zeros: %w", err)
		}
	}
	return t, nil
}

func (be *Backend) releaseBuffer(b *buffer) {
	if b.pooled && b.freed.CompareAndSwap(false, true) {
		// A failure here means the pool's bookkeeping is broken (a double free is
		// prevented by the flag); the memory is then leaked rather than reused.
		_ = be.pool.put(b.ptr)
	}
}

// Free hands the memory of backend-allocated tensors back to the pool and drops them.
func (be *Backend) Free(ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t == nil {
			continue
		}
		if b, ok := t.Storage().(*buffer); ok && b.be == be {
			be.releaseBuffer(b)
		}
		t.Drop()
	}
}

// resolve checks that t is a live tensor of this backend and returns its view.
func (be *Backend) resolve(t *tensor.Tensor, what string) (dview, error) {
	var v dview
	if t == nil {
		return v, fmt.Errorf("%s is nil", what)
	}
	st := t.Storage()
	if st == nil {
		return v, fmt.Errorf("%s: %w", what, tensor.ErrFreed)
	}
	b, ok := st.(*buffer)
	if !ok || b.be != be {
		return v, fmt.Errorf("%s %v is on %v, not on this %v backend (use ToDevice/ToHost)", what, t, t.Device(), be.Device())
	}
	if b.freed.Load() {
		return v, fmt.Errorf("%s: %w", what, tensor.ErrFreed)
	}
	v.Layout = t.Layout()
	v.buf = b
	v.dt = t.DType()
	return v, nil
}

// resultDType is the dtype of an op's allocated result for a main input of type dt.
func resultDType(dt tensor.DType) tensor.DType {
	if dt.IsComputeType() {
		return dt
	}
	return tensor.F32
}

// output returns the tensor an op writes: dst after checking it, or a new one.
func (be *Backend) output(dst *tensor.Tensor, dt tensor.DType, shape []int) (*tensor.Tensor, dview, error) {
	if dst == nil {
		t, err := be.Alloc(dt, shape...)
		if err != nil {
			return nil, dview{}, err
		}
		v, err := be.resolve(t, "dst")
		return t, v, err
	}
	v, err := be.resolve(dst, "dst")
	if err != nil {
		return nil, v, err
	}
	if err := tensor.CheckOutput(dst, shape); err != nil {
		return nil, v, err
	}
	return dst, v, nil
}

// launch checks the packed parameters against k and queues it.
func (be *Backend) launch(k *kernel, grid [3]uint32, block int, smem int, a *args) error {
	if err := a.check(k); err != nil {
		return err
	}
	f, ok := be.fns[k.name]
	if !ok {
		return fmt.Errorf("cuda: kernel %s is not loaded", k.name)
	}
	if smem > 48<<10 {
		if err := be.allowSmem(f, k.name, smem); err != nil {
			return err
		}
	}
	if err := be.dev.launch(f, grid, [3]uint32{uint32(block), 1, 1}, uint32(smem), a.buf); err != nil {
		return fmt.Errorf("cuda: launch %s: %w", k.name, err)
	}
	return nil
}

func (be *Backend) allowSmem(f fnHandle, name string, smem int) error {
	if smem > be.inf.smemOptin {
		return fmt.Errorf("cuda: kernel %s needs %d bytes of shared memory; %s allows %d", name, smem, be.inf.name, be.inf.smemOptin)
	}
	be.smemMu.Lock()
	defer be.smemMu.Unlock()
	if be.smemSet[f] >= smem {
		return nil
	}
	if err := be.dev.setMaxDynSmem(f, smem); err != nil {
		return fmt.Errorf("cuda: kernel %s: allow %d bytes of shared memory: %w", name, smem, err)
	}
	be.smemSet[f] = smem
	return nil
}

// gridFor is the 1-D grid of a grid-stride launch over n items with blocks of block.
func gridFor(n, block int) [3]uint32 {
	g := (n + block - 1) / block
	g = max(1, min(g, 1<<16))
	return [3]uint32{uint32(g), 1, 1}
}

// alignedBytes allocates n bytes aligned to 8.
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

func f32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// ToDevice uploads a host tensor (keeping its layout and dtype); tensors of this backend are
// returned as they are.
func (be *Backend) ToDevice(t *tensor.Tensor) (*tensor.Tensor, error) {
	if t == nil {
		return nil, errors.New("cuda: to device: tensor is nil")
	}
	st := t.Storage()
	if st == nil {
		return nil, fmt.Errorf("cuda: to device: %w", tensor.ErrFreed)
	}
	if b, ok := st.(*buffer); ok {
		if b.be == be {
			return t, nil
		}
		return nil, fmt.Errorf("cuda: to device: %v belongs to another backend", t)
	}
	hb, err := t.HostBytes()
	if err != nil {
		return nil, fmt.Errorf("cuda: to device: %w", err)
	}
	sz := t.DType().Size()
	lo, hi := t.Offset(), t.Offset()+1
	for i := range t.Rank() {
		if t.Dim(i) == 0 {
			hi = lo
			break
		}
		hi += (t.Dim(i) - 1) * t.Stride(i)
	}
	b, err := be.newBuffer((hi - lo) * sz)
	if err != nil {
		return nil, err
	}
	if hi > lo {
		if err := be.dev.htod(b.ptr, hb[lo*sz:hi*sz]); err != nil {
			be.releaseBuffer(b)
			return nil, fmt.Errorf("cuda: to device: %w", err)
		}
	}
	off := t.Offset() - lo
	if hi == lo {
		off = 0
	}
	d, err := tensor.New(b, t.DType(), t.Shape(), t.Strides(), off)
	if err != nil {
		be.releaseBuffer(b)
		return nil, fmt.Errorf("cuda: to device: %w", err)
	}
	return d, nil
}

// ToHost returns a contiguous host tensor with t's values and dtype (host tensors are
// returned as they are).
func (be *Backend) ToHost(t *tensor.Tensor) (*tensor.Tensor, error) {
	if t != nil && t.Storage() != nil {
		if _, ok := t.Storage().(tensor.HostMemory); ok {
			return t, nil
		}
	}
	v, err := be.resolve(t, "tensor")
	if err != nil {
		return nil, fmt.Errorf("cuda: to host: %w", err)
	}
	src := t
	if !v.Contiguous() {
		if src, err = be.Copy(nil, t); err != nil {
			return nil, fmt.Errorf("cuda: to host: %w", err)
		}
		defer be.Free(src)
		if v, err = be.resolve(src, "tensor"); err != nil {
			return nil, err
		}
	}
	host := alignedBytes(v.NumElements() * v.dt.Size())
	if len(host) > 0 {
		if err := be.dev.dtoh(host, v.addr()); err != nil {
			return nil, fmt.Errorf("cuda: to host: %w", err)
		}
	}
	return tensor.FromBytes(host, v.dt, t.Shape()...)
}

// Read copies t's elements, widened to float32, into dst (row-major).
func (be *Backend) Read(dst []float32, t *tensor.Tensor) error {
	v, err := be.resolve(t, "read: tensor")
	if err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if len(dst) != v.NumElements() {
		return fmt.Errorf("cuda: read %v: destination has %d values, want %d", t, len(dst), v.NumElements())
	}
	if len(dst) == 0 {
		return be.dev.sync()
	}
	if v.dt == tensor.F32 && v.Contiguous() {
		if err := be.dev.dtoh(f32Bytes(dst), v.addr()); err != nil {
			return fmt.Errorf("cuda: read: %w", err)
		}
		return nil
	}
	tmp, err := be.Alloc(tensor.F32, t.Shape()...)
	if err != nil {
		return fmt.Errorf("cuda: read: %w", err)
	}
	defer be.Free(tmp)
	tv, _ := be.resolve(tmp, "tmp")
	if err := be.copyView(&tv, &v); err != nil {
		return fmt.Errorf("cuda: read: %w", err)
	}
	if err := be.dev.dtoh(f32Bytes(dst), tv.addr()); err != nil {
		return fmt.Errorf("cuda: read: %w", err)
	}
	return nil
}

// Write sets t's elements (row-major) from src, rounded to t's dtype.
func (be *Backend) Write(t *tensor.Tensor, src []float32) error {
	v, err := be.resolve(t, "write: tensor")
	if err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if len(src) != v.NumElements() {
		return fmt.Errorf("cuda: write %v: source has %d values, want %d", t, len(src), v.NumElements())
	}
	if len(src) == 0 {
		return nil
	}
	if v.dt == tensor.F32 && v.Contiguous() {
		if err := be.dev.htod(v.addr(), f32Bytes(src)); err != nil {
			return fmt.Errorf("cuda: write: %w", err)
		}
		return nil
	}
	tmp, err := be.Alloc(tensor.F32, t.Shape()...)
	if err != nil {
		return fmt.Errorf("cuda: write: %w", err)
	}
	defer be.Free(tmp)
	tv, _ := be.resolve(tmp, "tmp")
	if err := be.dev.htod(tv.addr(), f32Bytes(src)); err != nil {
		return fmt.Errorf("cuda: write: %w", err)
	}
	if err := be.copyView(&v, &tv); err != nil {
		return fmt.Errorf("cuda: write: %w", err)
	}
	return nil
}
