//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/ebitengine/purego"
)

// cuBLASLt enum values (cublasLt.h, cublas_api.h, library_types.h).
const (
	cudaR32F  = 0
	cudaR16F  = 2
	cudaR16BF = 14

	cublasCompute32F     = 68
	cublasCompute32FTF32 = 77

	ltDescTransA   = 3
	ltDescTransB   = 4
	ltDescEpilogue = 7
	ltDescBiasPtr  = 8

	ltEpilogueDefault = 1
	ltEpilogueBias    = 4

	ltLayoutBatchCount  = 5
	ltLayoutBatchStride = 6

	ltPrefMaxWorkspace = 1
	ltPrefMinAlignA    = 5 // then B 6, C 7, D 8

	ltWorkspaceBytes = 32 << 20
	ltHeuristicBytes = 96 // sizeof(cublasLtMatmulHeuristicResult_t)
)

var cublasCandidates = []string{
	"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so",
	"/usr/local/cuda/lib64/libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.12",
	"/usr/local/cuda/lib64/libcublasLt.so.11",
	"/usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so.12",
	"/usr/local/cuda/targets/sbsa-linux/lib/libcublasLt.so.12",
}

var cublasFuncs = []string{"cublasLtCreate", "cublasLtDestroy", "cublasLtGetVersion",
	"cublasLtMatmulDescCreate", "cublasLtMatmulDescDestroy", "cublasLtMatmulDescSetAttribute",
	"cublasLtMatrixLayoutCreate", "cublasLtMatrixLayoutDestroy", "cublasLtMatrixLayoutSetAttribute",
	"cublasLtMatmulPreferenceCreate", "cublasLtMatmulPreferenceDestroy", "cublasLtMatmulPreferenceSetAttribute",
	"cublasLtMatmulAlgoGetHeuristic", "cublasLtMatmul"}

// cublasLt is a cuBLASLt handle bound to a GPU device's stream, with a workspace and the
// descriptors and algorithm of every product shape seen (created once, reused).
type cublasLt struct {
	g       *gpuDevice
	path    string
	fn      map[string]uintptr
	handle  uintptr
	ws      uint64
	version uint64

	mu    sync.Mutex
	plans map[ltKey]*ltPlan
}

type ltKey struct {
	m, n, k                    int
	transA, transB             bool
	aType, bType, cType, dType tensor.DType
	lda, ldb, ldc, ldd         int64
	batch                      int
	sa, sb, sc, sd             int64
	bias                       bool
	compute                    ltCompute
	alignA, alignB, alignC     uint32
	alignD                     uint32
}

type ltPlan struct {
	desc, la, lb, lc, ld uintptr
	heur                 [ltHeuristicBytes]byte
}

// loadCublasLib loads libcublasLt from the first path that works and resolves its functions.
func loadCublasLib(paths []string) (path string, fns map[string]uintptr, err error) {
	h, path, why := dlopenFirst(paths)
	if h == 0 {
		return "", nil, &libError{kind: errNoCublas, tried: why, help: cublasHelp}
	}
	fns = map[string]uintptr{}
	for _, name := range cublasFuncs {
		p, err := purego.Dlsym(h, name)
		if err != nil || p == 0 {
			return "", nil, &libError{kind: errNoCublas, tried: fmt.Sprintf("%s lacks %s (cuBLASLt 11.4 or later is needed)", path, name), help: cublasHelp}
		}
		fns[name] = p
	}
	return path, fns, nil
}

func cublasPaths(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	return cublasCandidates
}

func openCublasLt(g *gpuDevice, explicit string) (*cublasLt, error) {
	path, fns, err := loadCublasLib(cublasPaths(explicit))
	if err != nil {
		return nil, err
	}
	l := &cublasLt{g: g, path: path, fn: fns, plans: map[ltKey]*ltPlan{}}
	if r, _, _ := purego.SyscallN(l.fn["cublasLtGetVersion"]); r != 0 {
		l.version = uint64(r)
	}
	defer g.enter()()
	if err := l.call("cublasLtCreate", uintptr(unsafe.Pointer(&l.handle))); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", path, err)
	}
	var ws uint64
	if err := g.d.call("cuMemAlloc_v2", uintptr(unsafe.Pointer(&ws)), ltWorkspaceBytes); err != nil {
		l.call("cublasLtDestroy", l.handle)
		return nil, fmt.Errorf("cuda: cuBLASLt workspace: %w", err)
	}
	l.ws = ws
	return l, nil
}

func (l *cublasLt) call(name string, args ...uintptr) error {
	r, _, _ := purego.SyscallN(l.fn[name], args...)
	if code := int(int32(uint32(r))); code != 0 {
		return &cuError{op: name, code: code, name: cublasStatusName(code), blas: true}
	}
	return nil
}

func ltDataType(dt tensor.DType) (uintptr, error) {
	switch dt {
	case tensor.F32:
		return cudaR32F, nil
	case tensor.F16:
		return cudaR16F, nil
	case tensor.BF16:
		return cudaR16BF, nil
	}
	return 0, fmt.Errorf("cuBLASLt operand dtype %v", dt)
}

// alignOf is the largest power of two (at most 256) dividing p.
func alignOf(p devPtr) uint32 {
	if p == 0 {
		return 256
	}
	return uint32(min(uint64(1)<<bits.TrailingZeros64(uint64(p)), 256))
}

func (l *cublasLt) setAttr(fn string, obj uintptr, attr int, v unsafe.Pointer, size uintptr) error {
	return l.call(fn, obj, uintptr(attr), uintptr(v), size)
}

func (l *cublasLt) layout(dt tensor.DType, rows, cols int, ld int64, batch int, stride int64) (uintptr, error) {
	t, err := ltDataType(dt)
	if err != nil {
		return 0, err
	}
	var h uintptr
	if err := l.call("cublasLtMatrixLayoutCreate", uintptr(unsafe.Pointer(&h)), t, uintptr(rows), uintptr(cols), uintptr(ld)); err != nil {
		return 0, err
	}
	if batch > 1 {
		b := int32(batch)
		if err := l.setAttr("cublasLtMatrixLayoutSetAttribute", h, ltLayoutBatchCount, unsafe.Pointer(&b), 4); err != nil {
			return 0, err
		}
		s := stride
		if err := l.setAttr("cublasLtMatrixLayoutSetAttribute", h, ltLayoutBatchStride, unsafe.Pointer(&s), 8); err != nil {
			return 0, err
		}
	}
	return h, nil
}

func (l *cublasLt) plan(key ltKey) (*ltPlan, error) {
	if p := l.plans[key]; p != nil {
		return p, nil
	}
	p := &ltPlan{}
	compute := uintptr(cublasCompute32F)
	if key.compute == lt32FTF32 {
		compute = cublasCompute32FTF32
	}
	if err := l.call("cublasLtMatmulDescCreate", uintptr(unsafe.Pointer(&p.desc)), compute, cudaR32F); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		attr int
		on   bool
	}{{ltDescTransA, key.transA}, {ltDescTransB, key.transB}} {
		v := int32(0)
		if a.on {
			v = 1
		}
		if err := l.setAttr("cublasLtMatmulDescSetAttribute", p.desc, a.attr, unsafe.Pointer(&v), 4); err != nil {
			return nil, err
		}
	}
	epi := uint32(ltEpilogueDefault)
	if key.bias {
		epi = ltEpilogueBias
	}
	if err := l.setAttr("cublasLtMatmulDescSetAttribute", p.desc, ltDescEpilogue, unsafe.Pointer(&epi), 4); err != nil {
		return nil, err
	}
	ar, ac := key.m, key.k
	if key.transA {
		ar, ac = key.k, key.m
	}
	br, bc := key.k, key.n
	if key.transB {
		br, bc = key.n, key.k
	}
	var err error
	if p.la, err = l.layout(key.aType, ar, ac, key.lda, key.batch, key.sa); err != nil {
		return nil, err
	}
	if p.lb, err = l.layout(key.bType, br, bc, key.ldb, key.batch, key.sb); err != nil {
		return nil, err
	}
	if p.lc, err = l.layout(key.cType, key.m, key.n, key.ldc, key.batch, key.sc); err != nil {
		return nil, err
	}
	if p.ld, err = l.layout(key.dType, key.m, key.n, key.ldd, key.batch, key.sd); err != nil {
		return nil, err
	}
	var pref uintptr
	if err := l.call("cublasLtMatmulPreferenceCreate", uintptr(unsafe.Pointer(&pref))); err != nil {
		return nil, err
	}
	defer l.call("cublasLtMatmulPreferenceDestroy", pref)
	wsz := uint64(ltWorkspaceBytes)
	if err := l.setAttr("cublasLtMatmulPreferenceSetAttribute", pref, ltPrefMaxWorkspace, unsafe.Pointer(&wsz), 8); err != nil {
		return nil, err
	}
	for i, a := range []uint32{key.alignA, key.alignB, key.alignC, key.alignD} {
		v := a
		if err := l.setAttr("cublasLtMatmulPreferenceSetAttribute", pref, ltPrefMinAlignA+i, unsafe.Pointer(&v), 4); err != nil {
			return nil, err
		}
	}
	var got int32
	err = l.call("cublasLtMatmulAlgoGetHeuristic", l.handle, p.desc, p.la, p.lb, p.lc, p.ld, pref, 1,
		uintptr(unsafe.Pointer(&p.heur[0])), uintptr(unsafe.Pointer(&got)))
	if err == nil && got > 0 {
		if state := int32(binary.LittleEndian.Uint32(p.heur[72:76])); state != 0 {
			err = &cuError{op: "cublasLtMatmulAlgoGetHeuristic", code: int(state), name: cublasStatusName(int(state)), blas: true}
		}
	}
	if err != nil || got == 0 {
		l.destroyPlan(p)
		if err == nil {
			err = errLtUnsupported
		}
		return nil, fmt.Errorf("%w: %v", errLtUnsupported, err)
	}
	l.plans[key] = p
	return p, nil
}

func (l *cublasLt) destroyPlan(p *ltPlan) {
	for _, h := range []uintptr{p.la, p.lb, p.lc, p.ld} {
		if h != 0 {
			l.call("cublasLtMatrixLayoutDestroy", h)
		}
	}
	if p.desc != 0 {
		l.call("cublasLtMatmulDescDestroy", p.desc)
	}
}

func (l *cublasLt) matmul(m *ltMatmul) error {
	key := ltKey{m: m.m, n: m.n, k: m.k, transA: m.transA, transB: m.transB,
		aType: m.aType, bType: m.bType, cType: m.cType, dType: m.dType,
		lda: m.lda, ldb: m.ldb, ldc: m.ldc, ldd: m.ldd, batch: m.batch,
		sa: m.strideA, sb: m.strideB, sc: m.strideC, sd: m.strideD,
		bias: m.bias != 0, compute: m.compute,
		alignA: alignOf(m.a), alignB: alignOf(m.b), alignC: alignOf(m.c), alignD: alignOf(m.d)}
	if key.bias {
		key.alignC = min(key.alignC, alignOf(m.bias))
	}
	if math.IsNaN(float64(m.alpha)) {
		return fmt.Errorf("alpha is NaN")
	}
	defer l.g.enter()()
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.plan(key)
	if err != nil {
		return err
	}
	if key.bias {
		b := uint64(m.bias)
		if err := l.setAttr("cublasLtMatmulDescSetAttribute", p.desc, ltDescBiasPtr, unsafe.Pointer(&b), 8); err != nil {
			return err
		}
	}
	alpha, beta := m.alpha, m.beta
	err = l.call("cublasLtMatmul", l.handle, p.desc, uintptr(unsafe.Pointer(&alpha)),
		uintptr(m.a), p.la, uintptr(m.b), p.lb, uintptr(unsafe.Pointer(&beta)),
		uintptr(m.c), p.lc, uintptr(m.d), p.ld, uintptr(unsafe.Pointer(&p.heur[0])),
		uintptr(l.ws), ltWorkspaceBytes, l.g.stream)
	runtime.KeepAlive(p)
	return err
}

func (l *cublasLt) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.plans {
		l.destroyPlan(p)
	}
	l.plans = nil
	var first error
	if l.ws != 0 {
		first = l.g.d.call("cuMemFree_v2", uintptr(l.ws))
		l.ws = 0
	}
	if l.handle != 0 {
		if err := l.call("cublasLtDestroy", l.handle); err != nil && first == nil {
			first = err
		}
		l.handle = 0
	}
	return first
}

// String describes the library (for diagnostics).
func (l *cublasLt) String() string {
	return fmt.Sprintf("cuBLASLt %d (%s)", l.version, strings.TrimSpace(l.path))
}
