//go:build linux && (amd64 || arm64)

package cuda

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dypegraph/dypegraph/cuda/internal/kernelbuild"
	"github.com/dypegraph/dypegraph/tensor"
)

// The emulator: kernels/emu/emu.cpp compiled with clang-19 together with kernels/all.cu for
// the host. It runs kernels on a file-backed memory region mapped at emuBase in its process
// and anywhere in ours; device addresses are emuBase + offset.

const (
	emuBase   = 0x600000000000
	emuRegion = 4 << 30
	emuPage   = 4096
)

var (
	emuOnce sync.Once
	emuBin  string
	emuErr  error
)

// emuBinary builds (once per machine and source version, cached) the emulator executable.
func emuBinary() (string, error) {
	emuOnce.Do(func() { emuBin, emuErr = buildEmu() })
	return emuBin, emuErr
}

func buildEmu() (string, error) {
	clang, err := kernelbuild.FindClang()
	if err != nil {
		return "", err
	}
	kdir, _ := filepath.Abs("kernels")
	files, err := kernelbuild.SourceFiles(kdir)
	if err != nil {
		return "", err
	}
	emuFiles, _ := filepath.Glob(filepath.Join(kdir, "emu", "*"))
	files = append(files, emuFiles...)
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	entries, err := parsePTX(ptxSM80)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var reg bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&reg, "REG(%s)\n", n)
	}
	h.Write(reg.Bytes())
	ver, _ := kernelbuild.ClangVersion(clang)
	h.Write([]byte(ver))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "dypegraph-cuda-emu", key)
	bin := filepath.Join(dir, "emu")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "registry.inc"), reg.Bytes(), 0o644); err != nil {
		return "", err
	}
	tmp := bin + fmt.Sprintf(".tmp%d", os.Getpid())
	cmd := exec.Command(clang, "-x", "c++", "-std=c++17", "-O1", "-DDYPE_EMU", "-Wall", "-Werror",
		"-Wno-unused-function", "-I", dir, "-o", tmp, filepath.Join(kdir, "emu", "emu.cpp"), "-lstdc++", "-lm")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the emulator: %v\n%s", err, out)
	}
	return bin, os.Rename(tmp, bin)
}

// emuDevice implements device on the emulator.
type emuDevice struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer
	mem    []byte
	file   *os.File

	reqMu    sync.Mutex // one request at a time on the pipe
	mu       sync.Mutex
	next     uint64              // bump pointer (offset)
	freeList map[uint64][]uint64 // page-rounded size → region offsets
	regions  map[uint64]uint64   // user address → region size
	regionOf map[uint64]uint64   // user address → region offset
	names    []string
	lt       ltEngine
	rec      *[]func() error // non-nil while capturing a graph
	graphs   map[graphHandle][]func() error
	launches int
	dead     error
}

func newEmuDevice(t testing.TB) *emuDevice {
	t.Helper()
	bin, err := emuBinary()
	if err != nil {
		t.Fatalf("build the kernel emulator (needs clang-19 and a C++ standard library; .ci/run installs them): %v", err)
	}
	f, err := os.CreateTemp("", "cuda-emu-mem")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(emuRegion); err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, emuRegion, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	d := &emuDevice{mem: mem, file: f, next: emuPage, freeList: map[uint64][]uint64{},
		regions: map[uint64]uint64{}, regionOf: map[uint64]uint64{}, stderr: &bytes.Buffer{}}
	d.cmd = exec.Command(bin, f.Name(), fmt.Sprint(emuRegion), fmt.Sprintf("%#x", emuBase))
	d.cmd.Stderr = d.stderr
	if d.in, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.out = bufio.NewReader(stdout)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	if err := d.protect(0, 0, false); err != nil { // the emulator maps its region at start
		t.Fatalf("the emulator could not map its memory at %#x: %v", emuBase, err)
	}
	return d
}

func (d *emuDevice) request(b []byte) error {
	d.reqMu.Lock()
	defer d.reqMu.Unlock()
	if d.dead != nil {
		return d.dead
	}
	if _, err := d.in.Write(b); err != nil {
		return d.died(err)
	}
	var h [8]byte
	if _, err := io.ReadFull(d.out, h[:]); err != nil {
		return d.died(err)
	}
	status, n := binary.LittleEndian.Uint32(h[:4]), binary.LittleEndian.Uint32(h[4:])
	msg := make([]byte, n)
	if _, err := io.ReadFull(d.out, msg); err != nil {
		return d.died(err)
	}
	if status != 0 {
		return fmt.Errorf("emulator: %s", msg)
	}
	return nil
}

func (d *emuDevice) died(err error) error {
	d.cmd.Wait()
	d.dead = fmt.Errorf("emulator died (%v): %s", err, d.stderr.String())
	return d.dead
}

func (d *emuDevice) protect(off, n uint64, rw bool) error {
	b := []byte{'M'}
	b = binary.LittleEndian.AppendUint64(b, off)
	b = binary.LittleEndian.AppendUint64(b, n)
	p := byte(0)
	if rw {
		p = 1
	}
	return d.request(append(b, p))
}

func (d *emuDevice) info() deviceInfo {
	return deviceInfo{name: "emulator", ccMajor: 9, ccMinor: 0, sms: 4, smemOptin: 227 << 10, totalMem: emuRegion}
}

// alloc places each block so that it ends within 256 bytes of a page boundary followed by an
// inaccessible guard page: reads or writes past the end fault in the emulator.
func (d *emuDevice) alloc(n uint64) (devPtr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rounded := (max(n, 1) + 255) &^ 255
	pages := (rounded + emuPage - 1) &^ (emuPage - 1)
	var off uint64
	if l := d.freeList[pages]; len(l) > 0 {
		off = l[len(l)-1]
		d.freeList[pages] = l[:len(l)-1]
	} else {
		if d.next+pages+emuPage > emuRegion {
			return 0, errOutOfMemory
		}
		off = d.next
		d.next += pages + emuPage
	}
	if err := d.protect(off, pages, true); err != nil {
		return 0, err
	}
	user := emuBase + off + pages - rounded
	d.regions[user] = pages
	d.regionOf[user] = off
	return devPtr(user), nil
}

func (d *emuDevice) free(p devPtr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	pages, ok := d.regions[uint64(p)]
	if !ok {
		return fmt.Errorf("emulator: free of unknown address %#x", uint64(p))
	}
	off := d.regionOf[uint64(p)]
	delete(d.regions, uint64(p))
	delete(d.regionOf, uint64(p))
	d.freeList[pages] = append(d.freeList[pages], off)
	return d.protect(off, pages, false)
}

func (d *emuDevice) bytesAt(p devPtr, n uint64) ([]byte, error) {
	off := uint64(p) - emuBase
	if uint64(p) < emuBase || off+n > emuRegion {
		return nil, fmt.Errorf("emulator: address %#x+%d outside the region", uint64(p), n)
	}
	return d.mem[off : off+n], nil
}

// record queues f in the graph being captured; it reports whether it did.
func (d *emuDevice) record(f func() error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rec == nil {
		return false
	}
	*d.rec = append(*d.rec, f)
	return true
}

func (d *emuDevice) capturing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rec != nil
}

func (d *emuDevice) htod(dst devPtr, src []byte) error {
	if d.capturing() {
		return errCapture
	}
	b, err := d.bytesAt(dst, uint64(len(src)))
	if err != nil {
		return err
	}
	copy(b, src)
	return nil
}

func (d *emuDevice) dtoh(dst []byte, src devPtr) error {
	if d.capturing() {
		return errCapture
	}
	b, err := d.bytesAt(src, uint64(len(dst)))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

func (d *emuDevice) dtod(dst, src devPtr, n uint64) error {
	if d.record(func() error { return d.dtod(dst, src, n) }) {
		return nil
	}
	a, err := d.bytesAt(dst, n)
	if err != nil {
		return err
	}
	b, err := d.bytesAt(src, n)
	if err != nil {
		return err
	}
	copy(a, b)
	return nil
}

func (d *emuDevice) memsetZero(dst devPtr, n uint64) error {
	if d.record(func() error { return d.memsetZero(dst, n) }) {
		return nil
	}
	b, err := d.bytesAt(dst, n)
	if err != nil {
		return err
	}
	clear(b)
	return nil
}

func (d *emuDevice) function(name string) (fnHandle, error) {
	if _, ok := emuEntries()[name]; !ok {
		return 0, fmt.Errorf("no kernel %s in the PTX", name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, n := range d.names {
		if n == name {
			return fnHandle(i), nil
		}
	}
	d.names = append(d.names, name)
	return fnHandle(len(d.names) - 1), nil
}

var emuEntries = sync.OnceValue(func() map[string][]ptxParam {
	e, err := parsePTX(ptxSM80)
	if err != nil {
		panic(err)
	}
	return e
})

func (d *emuDevice) setMaxDynSmem(fnHandle, int) error { return nil }

func (d *emuDevice) launch(f fnHandle, grid, block [3]uint32, smem uint32, params []byte) error {
	p := append([]byte{}, params...)
	if d.record(func() error { return d.launch(f, grid, block, smem, p) }) {
		return nil
	}
	d.mu.Lock()
	name := d.names[f]
	d.launches++
	d.mu.Unlock()
	b := []byte{'L'}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	for _, v := range append(grid[:], block[:]...) {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, smem)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(params)))
	b = append(b, params...)
	return d.request(b)
}

func (d *emuDevice) beginCapture() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rec != nil {
		return errors.New("emulator: capture already under way")
	}
	d.rec = &[]func() error{}
	return nil
}

func (d *emuDevice) endCapture() (graphHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rec == nil {
		return 0, errors.New("emulator: no capture under way")
	}
	if d.graphs == nil {
		d.graphs = map[graphHandle][]func() error{}
	}
	h := graphHandle(len(d.graphs) + 1)
	d.graphs[h] = *d.rec
	d.rec = nil
	return h, nil
}

func (d *emuDevice) launchGraph(h graphHandle) error {
	d.mu.Lock()
	ops, ok := d.graphs[h]
	d.mu.Unlock()
	if !ok {
		return errors.New("emulator: unknown graph")
	}
	for _, op := range ops {
		if err := op(); err != nil {
			return err
		}
	}
	return nil
}

func (d *emuDevice) destroyGraph(h graphHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.graphs, h)
	return nil
}

func (d *emuDevice) sync() error {
	if d.capturing() {
		return errCapture
	}
	d.reqMu.Lock()
	defer d.reqMu.Unlock()
	return d.dead
}

func (d *emuDevice) memInfo() (uint64, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return emuRegion - d.next, emuRegion, nil
}

func (d *emuDevice) blas() ltEngine { return d.lt }

func (d *emuDevice) close() error {
	if d.cmd != nil && d.cmd.Process != nil && d.sync() == nil {
		d.request([]byte{'Q'})
		d.in.Close()
		d.cmd.Wait()
		d.reqMu.Lock()
		d.dead = errors.New("emulator closed")
		d.reqMu.Unlock()
	}
	if d.mem != nil {
		syscall.Munmap(d.mem)
		d.mem = nil
		d.file.Close()
		os.Remove(d.file.Name())
	}
	return nil
}

// fakeLt implements cuBLASLt's documented semantics (column-major D = alpha·op(A)·op(B) +
// beta·C + bias per row, leading dimensions, strided batches) with the emulated gemm_simt
// kernel, so that the backend's translation of row-major products into cuBLASLt calls runs
// and is checked without a GPU. It rejects what cuBLASLt rejects (leading dimensions below
// the stored rows, unsupported types) and what the backend is not meant to ask for.
type fakeLt struct {
	d     *emuDevice
	calls atomic.Int64
}

func (f *fakeLt) matmul(m *ltMatmul) error {
	f.calls.Add(1)
	ok := func(dt tensor.DType) bool { return dt == tensor.F32 || dt == tensor.BF16 || dt == tensor.F16 }
	if !ok(m.aType) || !ok(m.bType) || !ok(m.cType) || !ok(m.dType) || m.aType != m.bType || m.cType != m.dType {
		return fmt.Errorf("fake cuBLASLt: unsupported types A %v B %v C %v D %v", m.aType, m.bType, m.cType, m.dType)
	}
	ar := m.m
	if m.transA {
		ar = m.k
	}
	br := m.k
	if m.transB {
		br = m.n
	}
	if m.lda < int64(max(ar, 1)) || m.ldb < int64(max(br, 1)) || m.ldc < int64(max(m.m, 1)) || m.ldd < int64(max(m.m, 1)) {
		return fmt.Errorf("fake cuBLASLt: CUBLAS_STATUS_INVALID_VALUE: ld %d %d %d %d below the rows %d %d %d", m.lda, m.ldb, m.ldc, m.ldd, ar, br, m.m)
	}
	if m.alpha != 1 || (m.beta != 0 && m.beta != 1) || (m.beta == 1 && (m.c != m.d || m.ldc != m.ldd || m.strideC != m.strideD)) {
		return fmt.Errorf("fake cuBLASLt: alpha %v beta %v with C %#x D %#x: not what the backend asks for", m.alpha, m.beta, m.c, m.d)
	}
	// C'[j, i] = Σ_p op(B)[p, j] · op(A)[i, p]: M' = n, N' = m.
	var aRS, aCS, bKS, bNS int
	if m.transB {
		aRS, aCS = 1, int(m.ldb)
	} else {
		aRS, aCS = int(m.ldb), 1
	}
	if m.transA {
		bKS, bNS = 1, int(m.lda)
	} else {
		bKS, bNS = int(m.lda), 1
	}
	st := &sbuf{}
	st.i64(aRS).i64(aCS).i64(bKS).i64(bNS).i64(int(m.ldd)).i64(1).i64(1)
	strides := [3]int{int(m.strideB), int(m.strideA), int(m.strideD)}
	for k := range 3 {
		for dd := range gemmBRank {
			v := 0
			if dd == 0 && m.batch > 1 {
				v = strides[k]
			}
			st.i64(v)
		}
	}
	brank := 0
	if m.batch > 1 {
		brank = 1
	}
	for dd := range gemmBRank {
		v := 0
		if dd == 0 {
			v = m.batch
		}
		st.i32(v)
	}
	hasBias, acc := 0, 0
	if m.bias != 0 {
		hasBias = 1
	}
	if m.beta == 1 {
		acc = 1
	}
	st.i32(brank).i32(m.n).i32(m.m).i32(m.k).i32(int(m.bType)).i32(int(m.aType)).i32(int(m.dType)).i32(int(tensor.F32)).i32(acc).i32(hasBias)
	a := (&args{}).structure(st.end()).ptr(m.b).ptr(m.a).ptr(m.d).ptr(m.bias)
	if err := a.check(kGemmSIMT); err != nil {
		return err
	}
	fn, err := f.d.function(kGemmSIMT.name)
	if err != nil {
		return err
	}
	return f.d.launch(fn, [3]uint32{uint32((m.m + 63) / 64), uint32((m.n + 63) / 64), uint32(max(m.batch, 1))}, [3]uint32{256, 1, 1}, 0, a.buf)
}

func (f *fakeLt) close() error { return nil }

// newEmuBackend opens a backend on a fresh emulator; gemm is "builtin" or "lt" (fake cuBLASLt).
func newEmuBackend(t testing.TB, gemm string, prec Precision) (*Backend, *emuDevice) {
	t.Helper()
	d := newEmuDevice(t)
	opt := Options{Precision: prec, GEMM: GEMMBuiltin}
	if gemm == "lt" {
		d.lt = &fakeLt{d: d}
		opt.GEMM = GEMMCublasLt
	}
	be, err := newBackend(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be, d
}
