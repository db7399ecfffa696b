//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// Driver enum values (cuda.h).
const (
	cuDevAttrMaxThreadsPerBlock   = 1
	cuDevAttrMultiprocessorCount  = 16
	cuDevAttrCCMajor              = 75
	cuDevAttrCCMinor              = 76
	cuDevAttrMaxSharedOptin       = 97
	cuDevAttrMemoryPoolsSupported = 115
	cuFuncAttrMaxDynamicShared    = 8
	cuJitErrorLogBuffer           = 5
	cuJitErrorLogBufferSize       = 6
	cuStreamNonBlocking           = 1
	cuEventDisableTiming          = 2
	cuStreamCaptureModeRelaxed    = 2
	cuErrorNoDevice               = 100
	cuLaunchParamEnd              = 0
	cuLaunchParamBufferPointer    = 1
	cuLaunchParamBufferSize       = 2
)

// stagingBytes is the size of each of the two pinned buffers that large uploads go through.
const stagingBytes = 8 << 20

// gpuDevice is a GPU driven through libcuda: the primary context, one non-blocking stream,
// the kernels module, pinned staging buffers and, optionally, cuBLASLt.
type gpuDevice struct {
	d          *driverLib
	dev        int32
	ctx        uintptr
	stream     uintptr
	module     uintptr
	inf        deviceInfo
	asyncAlloc bool

	fnMu sync.Mutex
	fns  map[string]fnHandle

	pinMu     sync.Mutex
	pin       [2][]byte
	pinEvent  [2]uintptr
	pinActive [2]bool

	lt *cublasLt
}

// enter makes the context current on a locked OS thread; call the returned func to unlock.
func (g *gpuDevice) enter() func() {
	runtime.LockOSThread()
	if err := g.d.call("cuCtxSetCurrent", g.ctx); err != nil {
		// Only an invalid context fails here; the calls that follow report it.
		_ = err
	}
	return runtime.UnlockOSThread
}

// openGPU initialises the driver and opens device opt.Device.
func openGPU(opt Options) (device, error) {
	d, err := loadDriver(driverPaths(opt.LibCUDA))
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.call("cuInit", 0); err != nil {
		var ce *cuError
		if errors.As(err, &ce) && ce.code == cuErrorNoDevice {
			return nil, fmt.Errorf("cuda: no CUDA device found (driver %s loaded, but it sees no GPU): %w", d.path, err)
		}
		return nil, fmt.Errorf("cuda: initialise the driver (%s): %w", d.path, err)
	}
	var count int32
	if err := d.call("cuDeviceGetCount", uintptr(unsafe.Pointer(&count))); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	if count == 0 {
		return nil, fmt.Errorf("cuda: no CUDA device found (driver %s)", d.path)
	}
	if opt.Device >= int(count) {
		return nil, fmt.Errorf("cuda: device cuda:%d requested, but there are %d", opt.Device, count)
	}
	g := &gpuDevice{d: d, fns: map[string]fnHandle{}}
	if err := d.call("cuDeviceGet", uintptr(unsafe.Pointer(&g.dev)), uintptr(opt.Device)); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	if err := g.queryInfo(); err != nil {
		return nil, err
	}
	flavor, err := selectPTX(g.inf.ccMajor, g.inf.ccMinor)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, g.inf.name)
	}
	if err := d.call("cuDevicePrimaryCtxRetain", uintptr(unsafe.Pointer(&g.ctx)), uintptr(g.dev)); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			g.close()
		}
	}()
	if err := d.call("cuCtxSetCurrent", g.ctx); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	if err := d.call("cuStreamCreate", uintptr(unsafe.Pointer(&g.stream)), cuStreamNonBlocking); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	if err := g.loadModule(flavor); err != nil {
		return nil, err
	}
	if opt.GEMM != GEMMBuiltin {
		lt, err := openCublasLt(g, opt.LibCublasLt)
		switch {
		case err == nil:
			g.lt = lt
		case opt.GEMM == GEMMAuto && errors.Is(err, errNoCublas):
			// auto: the built-in GEMM kernel takes over.
		default:
			return nil, err
		}
	}
	ok = true
	return g, nil
}

func (g *gpuDevice) attr(a int) (int, error) {
	var v int32
	if err := g.d.call("cuDeviceGetAttribute", uintptr(unsafe.Pointer(&v)), uintptr(a), uintptr(g.dev)); err != nil {
		return 0, fmt.Errorf("cuda: %w", err)
	}
	return int(v), nil
}

func (g *gpuDevice) queryInfo() error {
	name := make([]byte, 256)
	if err := g.d.call("cuDeviceGetName", uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(g.dev)); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	g.inf.name = cString(&name[0])
	var err error
	if g.inf.ccMajor, err = g.attr(cuDevAttrCCMajor); err != nil {
		return err
	}
	if g.inf.ccMinor, err = g.attr(cuDevAttrCCMinor); err != nil {
		return err
	}
	if g.inf.sms, err = g.attr(cuDevAttrMultiprocessorCount); err != nil {
		return err
	}
	if g.inf.smemOptin, err = g.attr(cuDevAttrMaxSharedOptin); err != nil {
		return err
	}
	if pools, err := g.attr(cuDevAttrMemoryPoolsSupported); err == nil {
		g.asyncAlloc = pools != 0 && g.d.has("cuMemAllocAsync") && g.d.has("cuMemFreeAsync")
	}
	var total uint64
	if err := g.d.call("cuDeviceTotalMem_v2", uintptr(unsafe.Pointer(&total)), uintptr(g.dev)); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	g.inf.totalMem = total
	var ver int32
	if err := g.d.call("cuDriverGetVersion", uintptr(unsafe.Pointer(&ver))); err == nil {
		g.inf.driverVersion = int(ver)
	}
	return nil
}

// loadModule loads the PTX (the driver JIT-compiles it), reporting the JIT log on failure.
func (g *gpuDevice) loadModule(f ptxFlavor) error {
	src := append(append([]byte{}, f.src...), 0)
	logBuf := make([]byte, 16<<10)
	opts := []int32{cuJitErrorLogBuffer, cuJitErrorLogBufferSize}
	vals := []uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	var pin runtime.Pinner
	pin.Pin(&logBuf[0])
	defer pin.Unpin()
	err := g.d.call("cuModuleLoadDataEx", uintptr(unsafe.Pointer(&g.module)), uintptr(unsafe.Pointer(&src[0])),
		uintptr(len(opts)), uintptr(unsafe.Pointer(&opts[0])), uintptr(unsafe.Pointer(&vals[0])))
	runtime.KeepAlive(src)
	runtime.KeepAlive(logBuf)
	if err != nil {
		return fmt.Errorf("cuda: load the %s kernels (driver %d): %w\n%s", f.arch, g.inf.driverVersion, err, cString(&logBuf[0]))
	}
	return nil
}

func (g *gpuDevice) info() deviceInfo { return g.inf }

func (g *gpuDevice) alloc(n uint64) (devPtr, error) {
	defer g.enter()()
	var p uint64
	var err error
	if g.asyncAlloc {
		err = g.d.call("cuMemAllocAsync", uintptr(unsafe.Pointer(&p)), uintptr(n), g.stream)
	} else {
		err = g.d.call("cuMemAlloc_v2", uintptr(unsafe.Pointer(&p)), uintptr(n))
	}
	return devPtr(p), err
}

func (g *gpuDevice) free(p devPtr) error {
	defer g.enter()()
	if g.asyncAlloc {
		return g.d.call("cuMemFreeAsync", uintptr(p), g.stream)
	}
	if err := g.d.call("cuStreamSynchronize", g.stream); err != nil {
		return err
	}
	return g.d.call("cuMemFree_v2", uintptr(p))
}

// htod copies through two pinned staging buffers when src is large (so the copy is a DMA
// and src is free on return), else straight from src.
func (g *gpuDevice) htod(dst devPtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	defer g.enter()()
	if len(src) < 1<<20 {
		err := g.d.call("cuMemcpyHtoDAsync_v2", uintptr(dst), uintptr(unsafe.Pointer(&src[0])), uintptr(len(src)), g.stream)
		if err == nil {
			// A pageable source is staged by the driver before the call returns; the sync
			// makes that true for every driver version.
			err = g.d.call("cuStreamSynchronize", g.stream)
		}
		return err
	}
	g.pinMu.Lock()
	defer g.pinMu.Unlock()
	if err := g.ensurePinned(); err != nil {
		return err
	}
	for off, i := 0, 0; off < len(src); off, i = off+stagingBytes, i^1 {
		n := min(stagingBytes, len(src)-off)
		if g.pinActive[i] {
			if err := g.d.call("cuEventSynchronize", g.pinEvent[i]); err != nil {
				return err
			}
		}
		copy(g.pin[i], src[off:off+n])
		if err := g.d.call("cuMemcpyHtoDAsync_v2", uintptr(dst)+uintptr(off), uintptr(unsafe.Pointer(&g.pin[i][0])), uintptr(n), g.stream); err != nil {
			return err
		}
		if err := g.d.call("cuEventRecord", g.pinEvent[i], g.stream); err != nil {
			return err
		}
		g.pinActive[i] = true
	}
	return nil
}

func (g *gpuDevice) ensurePinned() error {
	for i := range 2 {
		if g.pin[i] != nil {
			continue
		}
		var p unsafe.Pointer
		if err := g.d.call("cuMemHostAlloc", uintptr(unsafe.Pointer(&p)), stagingBytes, 0); err != nil {
			return err
		}
		g.pin[i] = unsafe.Slice((*byte)(p), stagingBytes)
		if err := g.d.call("cuEventCreate", uintptr(unsafe.Pointer(&g.pinEvent[i])), cuEventDisableTiming); err != nil {
			return err
		}
	}
	return nil
}

func (g *gpuDevice) dtoh(dst []byte, src devPtr) error {
	if len(dst) == 0 {
		return g.sync()
	}
	defer g.enter()()
	if err := g.d.call("cuMemcpyDtoHAsync_v2", uintptr(unsafe.Pointer(&dst[0])), uintptr(src), uintptr(len(dst)), g.stream); err != nil {
		return err
	}
	return g.d.call("cuStreamSynchronize", g.stream)
}

func (g *gpuDevice) dtod(dst, src devPtr, n uint64) error {
	defer g.enter()()
	return g.d.call("cuMemcpyDtoDAsync_v2", uintptr(dst), uintptr(src), uintptr(n), g.stream)
}

func (g *gpuDevice) memsetZero(dst devPtr, n uint64) error {
	defer g.enter()()
	return g.d.call("cuMemsetD8Async", uintptr(dst), 0, uintptr(n), g.stream)
}

func (g *gpuDevice) function(name string) (fnHandle, error) {
	g.fnMu.Lock()
	defer g.fnMu.Unlock()
	if f, ok := g.fns[name]; ok {
		return f, nil
	}
	defer g.enter()()
	var f uintptr
	cname := cStr(name)
	if err := g.d.call("cuModuleGetFunction", uintptr(unsafe.Pointer(&f)), g.module, uintptr(unsafe.Pointer(&cname[0]))); err != nil {
		return 0, err
	}
	g.fns[name] = fnHandle(f)
	return fnHandle(f), nil
}

func (g *gpuDevice) setMaxDynSmem(f fnHandle, bytes int) error {
	defer g.enter()()
	return g.d.call("cuFuncSetAttribute", uintptr(f), cuFuncAttrMaxDynamicShared, uintptr(bytes))
}

func (g *gpuDevice) launch(f fnHandle, grid, block [3]uint32, smem uint32, params []byte) error {
	if len(params) == 0 {
		return errors.New("kernel without parameters")
	}
	defer g.enter()()
	size := new(uint64)
	*size = uint64(len(params))
	var pin runtime.Pinner
	pin.Pin(&params[0])
	pin.Pin(size)
	defer pin.Unpin()
	extra := []uintptr{cuLaunchParamBufferPointer, uintptr(unsafe.Pointer(&params[0])),
		cuLaunchParamBufferSize, uintptr(unsafe.Pointer(size)), cuLaunchParamEnd}
	err := g.d.call("cuLaunchKernel", uintptr(f), uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]),
		uintptr(block[0]), uintptr(block[1]), uintptr(block[2]), uintptr(smem), g.stream, 0,
		uintptr(unsafe.Pointer(&extra[0])))
	runtime.KeepAlive(params)
	runtime.KeepAlive(size)
	return err
}

func (g *gpuDevice) sync() error {
	defer g.enter()()
	return g.d.call("cuStreamSynchronize", g.stream)
}

func (g *gpuDevice) memInfo() (free, total uint64, err error) {
	defer g.enter()()
	err = g.d.call("cuMemGetInfo_v2", uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total)))
	return free, total, err
}

func (g *gpuDevice) blas() ltEngine {
	if g.lt == nil {
		return nil
	}
	return g.lt
}

func (g *gpuDevice) close() error {
	if g.ctx == 0 {
		return nil
	}
	defer g.enter()()
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if g.stream != 0 {
		keep(g.d.call("cuStreamSynchronize", g.stream))
	}
	if g.lt != nil {
		keep(g.lt.close())
		g.lt = nil
	}
	for i := range 2 {
		if g.pinEvent[i] != 0 {
			keep(g.d.call("cuEventDestroy_v2", g.pinEvent[i]))
		}
		if g.pin[i] != nil {
			keep(g.d.call("cuMemFreeHost", uintptr(unsafe.Pointer(&g.pin[i][0]))))
			g.pin[i] = nil
		}
	}
	if g.module != 0 {
		keep(g.d.call("cuModuleUnload", g.module))
		g.module = 0
	}
	if g.stream != 0 {
		keep(g.d.call("cuStreamDestroy_v2", g.stream))
		g.stream = 0
	}
	keep(g.d.call("cuDevicePrimaryCtxRelease_v2", uintptr(g.dev)))
	g.ctx = 0
	return first
}

func (g *gpuDevice) beginCapture() error {
	if !g.d.has("cuStreamBeginCapture_v2") || !g.d.has("cuGraphInstantiateWithFlags") {
		return errors.New("the driver has no CUDA graph API (CUDA 11.4 or later is needed)")
	}
	defer g.enter()()
	return g.d.call("cuStreamBeginCapture_v2", g.stream, cuStreamCaptureModeRelaxed)
}

func (g *gpuDevice) endCapture() (graphHandle, error) {
	defer g.enter()()
	var graph, exec uintptr
	if err := g.d.call("cuStreamEndCapture", g.stream, uintptr(unsafe.Pointer(&graph))); err != nil {
		return 0, err
	}
	err := g.d.call("cuGraphInstantiateWithFlags", uintptr(unsafe.Pointer(&exec)), graph, 0)
	if derr := g.d.call("cuGraphDestroy", graph); err == nil {
		err = derr
	}
	return graphHandle(exec), err
}

func (g *gpuDevice) launchGraph(h graphHandle) error {
	defer g.enter()()
	return g.d.call("cuGraphLaunch", uintptr(h), g.stream)
}

func (g *gpuDevice) destroyGraph(h graphHandle) error {
	if h == 0 {
		return nil
	}
	defer g.enter()()
	return g.d.call("cuGraphExecDestroy", uintptr(h))
}

// Devices lists the GPUs the driver sees, without opening a backend (for device listings and
// /system_stats; free memory needs an open backend: Backend.MemInfo).
func Devices() ([]DeviceInfo, error) {
	d, err := loadDriver(driverPaths(os.Getenv(EnvLibCUDA)))
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.call("cuInit", 0); err != nil {
		var ce *cuError
		if errors.As(err, &ce) && ce.code == cuErrorNoDevice {
			return nil, nil
		}
		return nil, fmt.Errorf("cuda: initialise the driver: %w", err)
	}
	var count int32
	if err := d.call("cuDeviceGetCount", uintptr(unsafe.Pointer(&count))); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	out := make([]DeviceInfo, 0, count)
	for i := range int(count) {
		g := &gpuDevice{d: d}
		if err := d.call("cuDeviceGet", uintptr(unsafe.Pointer(&g.dev)), uintptr(i)); err != nil {
			return nil, fmt.Errorf("cuda: %w", err)
		}
		if err := g.queryInfo(); err != nil {
			return nil, err
		}
		out = append(out, DeviceInfo{Index: i, Name: g.inf.name, TotalMemory: g.inf.totalMem,
			ComputeMajor: g.inf.ccMajor, ComputeMinor: g.inf.ccMinor, Multiprocessors: g.inf.sms,
			DriverVersion: g.inf.driverVersion})
	}
	return out, nil
}
