//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// driverLib is libcuda.so.1 and the driver API functions the backend calls.
type driverLib struct {
	path   string
	handle uintptr
	fn     map[string]uintptr
}

// driverRequired are the functions every use needs; driverOptional may be absent on older
// drivers (the backend then does without: synchronous allocation, no graphs).
var driverRequired = []string{
	"cuInit", "cuDriverGetVersion", "cuGetErrorName", "cuGetErrorString",
	"cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceGetAttribute", "cuDeviceTotalMem_v2",
	"cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2", "cuCtxSetCurrent", "cuCtxSynchronize",
	"cuStreamCreate", "cuStreamDestroy_v2", "cuStreamSynchronize",
	"cuEventCreate", "cuEventRecord", "cuEventSynchronize", "cuEventElapsedTime", "cuEventDestroy_v2",
	"cuMemAlloc_v2", "cuMemFree_v2", "cuMemGetInfo_v2", "cuMemHostAlloc", "cuMemFreeHost",
	"cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoDAsync_v2", "cuMemsetD8Async",
	"cuModuleLoadDataEx", "cuModuleGetFunction", "cuModuleUnload", "cuFuncSetAttribute", "cuLaunchKernel",
}

var driverOptional = []string{
	"cuMemAllocAsync", "cuMemFreeAsync",
	"cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch",
	"cuGraphExecDestroy", "cuGraphDestroy",
}

// driverCandidates are tried in order after $DYPEGRAPH_LIBCUDA / Options.LibCUDA.
var driverCandidates = []string{
	"libcuda.so.1", "libcuda.so",
	"/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
	"/usr/lib64/libcuda.so.1", "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1",
}

var (
	libMu    sync.Mutex
	libCache = map[string]*driverLib{}
)

// dlopenFirst opens the first library of paths that loads, or describes the failure: the
// loader's message for the first candidate and the names of the others.
func dlopenFirst(paths []string) (uintptr, string, string) {
	var first string
	for i, p := range paths {
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, p, ""
		}
		if i == 0 {
			first = err.Error()
			if !strings.Contains(first, p) {
				first = p + ": " + first
			}
		}
	}
	why := "could not load " + first
	if len(paths) > 1 {
		why += " (also tried " + strings.Join(paths[1:], ", ") + ")"
	}
	return 0, "", why
}

// driverPaths lists the candidates, an explicit path first (alone when set).
func driverPaths(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	return driverCandidates
}

// loadDriver loads libcuda from the first path that works and resolves its functions.
func loadDriver(paths []string) (*driverLib, error) {
	key := strings.Join(paths, "\x00")
	libMu.Lock()
	defer libMu.Unlock()
	if d := libCache[key]; d != nil {
		return d, nil
	}
	h, path, why := dlopenFirst(paths)
	if h == 0 {
		return nil, &libError{kind: errNoDriver, tried: why, help: driverHelp}
	}
	d := &driverLib{path: path, handle: h, fn: map[string]uintptr{}}
	for _, name := range driverRequired {
		p, err := purego.Dlsym(h, name)
		if err != nil || p == 0 {
			return nil, &libError{kind: errNoDriver, tried: fmt.Sprintf("%s lacks %s (driver too old; CUDA 11.4 or later is needed)", path, name), help: driverHelp}
		}
		d.fn[name] = p
	}
	for _, name := range driverOptional {
		if p, err := purego.Dlsym(h, name); err == nil && p != 0 {
			d.fn[name] = p
		}
	}
	libCache[key] = d
	return d, nil
}

// probeDriver reports whether libcuda loads (no initialisation, no device query).
func probeDriver(explicit string) error {
	_, err := loadDriver(driverPaths(explicit))
	return err
}

func (d *driverLib) has(name string) bool { return d.fn[name] != 0 }

// call invokes a driver function returning CUresult.
func (d *driverLib) call(name string, args ...uintptr) error {
	fn := d.fn[name]
	if fn == 0 {
		return fmt.Errorf("%s is not available in %s", name, d.path)
	}
	r, _, _ := purego.SyscallN(fn, args...)
	if code := int(int32(uint32(r))); code != 0 {
		return d.errorOf(name, code)
	}
	return nil
}

func (d *driverLib) errorOf(op string, code int) error {
	e := &cuError{op: op, code: code, name: fmt.Sprintf("CUresult %d", code)}
	var s *byte
	if r, _, _ := purego.SyscallN(d.fn["cuGetErrorName"], uintptr(code), uintptr(unsafe.Pointer(&s))); r == 0 && s != nil {
		e.name = cString(s)
	}
	s = nil
	if r, _, _ := purego.SyscallN(d.fn["cuGetErrorString"], uintptr(code), uintptr(unsafe.Pointer(&s))); r == 0 && s != nil {
		e.desc = cString(s)
	}
	return e
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	var b []byte
	for i := 0; i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// cStr returns s as a NUL-terminated byte slice.
func cStr(s string) []byte { return append([]byte(s), 0) }
