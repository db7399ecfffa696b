package cuda

import "github.com/dypegraph/dypegraph/tensor"

// devPtr is a device address (CUdeviceptr).
type devPtr uint64

// fnHandle identifies a loaded kernel (a CUfunction, or an index in the emulator).
type fnHandle uintptr

// DeviceInfo describes a GPU (Devices).
type DeviceInfo struct {
	Index                      int
	Name                       string
	TotalMemory                uint64 // bytes
	ComputeMajor, ComputeMinor int
	Multiprocessors            int
	DriverVersion              int // e.g. 13000 for CUDA 13.0
}

// deviceInfo describes the GPU a device runs on.
type deviceInfo struct {
	name             string
	ccMajor, ccMinor int
	sms              int
	smemOptin        int // largest dynamic shared memory a block may opt into, bytes
	totalMem         uint64
	driverVersion    int
}

// device is what the Backend needs from a GPU: memory, copies and launches on one stream.
// The real implementation binds libcuda (gpu.go); the tests use a host emulator.
type device interface {
	info() deviceInfo
	// alloc and free manage raw device memory (the Backend pools it).
	alloc(n uint64) (devPtr, error)
	free(p devPtr) error
	// htod copies src to dst in stream order; src may be reused when it returns.
	htod(dst devPtr, src []byte) error
	// dtoh copies src to dst after all earlier work; the data is in dst when it returns.
	dtoh(dst []byte, src devPtr) error
	dtod(dst, src devPtr, n uint64) error
	memsetZero(dst devPtr, n uint64) error
	// function returns the loaded kernel of that name.
	function(name string) (fnHandle, error)
	// setMaxDynSmem lets f use up to bytes of dynamic shared memory.
	setMaxDynSmem(f fnHandle, bytes int) error
	// launch enqueues f with the packed parameter buffer params.
	launch(f fnHandle, grid, block [3]uint32, smem uint32, params []byte) error
	// sync waits for all enqueued work and reports asynchronous errors.
	sync() error
	memInfo() (free, total uint64, err error)
	// blas returns the cuBLASLt engine, or nil when there is none.
	blas() ltEngine
	// Stream capture into a CUDA graph: between begin and end, work is recorded, not run;
	// launchGraph runs the recording.
	beginCapture() error
	endCapture() (graphHandle, error)
	launchGraph(g graphHandle) error
	destroyGraph(g graphHandle) error
	close() error
}

// graphHandle identifies an instantiated graph (a CUgraphExec, or a recording in tests).
type graphHandle uintptr

// ltEngine runs cuBLASLt matrix products (cublaslt.go; a fake in the tests).
type ltEngine interface {
	matmul(m *ltMatmul) error
	close() error
}

// ltCompute selects cuBLASLt's compute type.
type ltCompute uint8

const (
	lt32F     ltCompute = iota // CUBLAS_COMPUTE_32F: float accumulation, inputs as given
	lt32FTF32                  // CUBLAS_COMPUTE_32F_FAST_TF32: float inputs rounded to tf32
)

// ltMatmul is one cuBLASLt call in its own (column-major) terms:
// D = alpha·op(A)·op(B) + beta·C (+ bias per row of D), with D m×n, op(A) m×k, op(B) k×n,
// each matrix column-major with its leading dimension, repeated batch times at the given
// element strides.
type ltMatmul struct {
	m, n, k                    int
	transA, transB             bool
	a, b, c, d                 devPtr
	aType, bType, cType, dType tensor.DType
	lda, ldb, ldc, ldd         int64
	batch                      int
	strideA, strideB           int64
	strideC, strideD           int64
	alpha, beta                float32
	bias                       devPtr // nil: no bias; else len m, of dType (F32 here)
	compute                    ltCompute
}
