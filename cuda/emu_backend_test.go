//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
	"github.com/dypegraph/dypegraph/tensor/tensortest"
)

// The cuBLASLt path issues three products (exact bf16 terms) for f32×bf16 in exact precision
// and one in fast precision, whose error is that of bf16-rounded activations.
func TestEmuPrecisionModes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := tensortest.Rand(rng, tensor.F32, -1, 1, 16, 96)
	w := tensortest.Rand(rng, tensor.BF16, -1, 1, 24, 96)
	ref, _ := cpu.New(cpu.Options{})
	defer ref.Close()
	want, _ := ref.Linear(nil, x, w, nil)
	wv, _ := want.ToFloat32()
	for _, c := range []struct {
		prec  Precision
		calls int
		tol   float64
	}{{PrecisionExact, 3, 1e-5}, {PrecisionFast, 1, 3e-2}} {
		be, d := newEmuBackend(t, "lt", c.prec)
		xd, _ := be.ToDevice(x)
		wd, _ := be.ToDevice(w)
		got, err := be.Linear(nil, xd, wd, nil)
		if err != nil {
			t.Fatal(err)
		}
		g := make([]float32, got.NumElements())
		if err := be.Read(g, got); err != nil {
			t.Fatal(err)
		}
		if n := d.lt.(*fakeLt).calls.Load(); n != int64(c.calls) {
			t.Errorf("%s: %d cuBLASLt calls, want %d", c.prec, n, c.calls)
		}
		worst := 0.0
		for i := range g {
			worst = max(worst, math.Abs(float64(g[i]-wv[i])))
		}
		if worst > c.tol {
			t.Errorf("%s: max |error| %g, want ≤ %g", c.prec, worst, c.tol)
		}
		if c.prec == PrecisionFast && worst == 0 {
			t.Errorf("fast precision gave exact results: the activations were not rounded")
		}
	}
}

// Convolutions whose im2col matrix exceeds the budget run in pixel chunks.
func TestEmuConvChunks(t *testing.T) {
	old := im2colBudget
	im2colBudget = 5 * 27 * 4 // 5 pixels of a 3-channel 3×3 kernel
	defer func() { im2colBudget = old }()
	be, _ := newEmuBackend(t, "builtin", PrecisionExact)
	runCases(t, be, []tensortest.Case{{Name: "conv-chunked", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
		return ins(r(rng, tensor.F32, 2, 3, 7, 6), r(rng, tensor.BF16, 4, 3, 3, 3), r(rng, tensor.F32, 4))
	}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return be.Conv2D(nil, in[0], in[1], in[2], tensor.Pad(1, 1))
	}, ATol: 1e-5, RTol: 1e-4}})
}

func TestEmuTransfers(t *testing.T) {
	be, _ := newEmuBackend(t, "builtin", PrecisionExact)
	// ToDevice keeps a strided host view's layout; ToHost returns it contiguous.
	h := tensortest.Rand(rand.New(rand.NewPCG(3, 4)), tensor.BF16, -1, 1, 4, 6)
	hv, _ := h.Slice(1, 1, 5)
	hv, _ = hv.Transpose(0, 1) // [4, 4], strides (1, 6)
	d, err := be.ToDevice(hv)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.Strides()) != fmt.Sprint(hv.Strides()) || d.DType() != tensor.BF16 {
		t.Errorf("upload changed the layout: %v %v", d.Strides(), d.DType())
	}
	back, err := be.ToHost(d)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hv.ToFloat32()
	got, _ := back.ToFloat32()
	if !back.IsContiguous() || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ToHost = %v, want %v", got, want)
	}
	// Write through a strided bf16 view, Read it back (rounded to bf16).
	z, _ := be.Zeros(tensor.BF16, 3, 5)
	zt, _ := z.Transpose(0, 1)
	src := make([]float32, 15)
	for i := range src {
		src[i] = float32(i)*0.1 + 1
	}
	if err := be.Write(zt, src); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 15)
	if err := be.Read(out, zt); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if out[i] != tensor.BF16ToF32(tensor.F32ToBF16(src[i])) {
			t.Fatalf("element %d = %v, want bf16(%v)", i, out[i], src[i])
		}
	}
	if err := be.Read(make([]float32, 3), zt); err == nil {
		t.Error("Read with a wrong length succeeded")
	}
}

func TestEmuErrors(t *testing.T) {
	be, _ := newEmuBackend(t, "builtin", PrecisionExact)
	host, _ := tensor.FromFloat32([]float32{1, 2, 3}, 3)
	if _, err := be.Unary(nil, host, tensor.Exp); err == nil || !strings.Contains(err.Error(), "not on this") {
		t.Errorf("host input: %v", err)
	}
	x, _ := be.Zeros(tensor.F32, 3)
	y, _ := be.Copy(nil, x)
	be.Free(y)
	if _, err := be.Unary(nil, y, tensor.Exp); !errors.Is(err, tensor.ErrFreed) {
		t.Errorf("freed input: %v", err)
	}
	be.Free(y) // a second Free is harmless
	row, _ := be.Zeros(tensor.F32, 1, 3)
	bc, _ := row.Expand(4, 3)
	if _, err := be.Unary(bc, bc, tensor.Neg); err == nil || !strings.Contains(err.Error(), "broadcast") {
		t.Errorf("broadcast dst: %v", err)
	}
	if _, err := be.Binary(nil, x, row, tensor.Add); err != nil {
		t.Errorf("broadcastable operands: %v", err)
	}
	bad, _ := be.Zeros(tensor.F32, 4)
	if _, err := be.Binary(nil, x, bad, tensor.Add); err == nil {
		t.Error("non-broadcastable operands accepted")
	}
	if _, err := be.Attention(nil, x, x, x, tensor.AttentionOptions{}); err == nil {
		t.Error("attention on rank-1 tensors accepted")
	}
	f8, _ := be.Zeros(tensor.F8E4M3, 3)
	if _, err := be.Unary(f8, x, tensor.Neg); err == nil || !strings.Contains(err.Error(), "storage-only") {
		t.Errorf("fp8 dst: %v", err)
	}
	if _, err := be.Resize(nil, x, 2, 2, "nearest"); err == nil {
		t.Error("unknown resize method accepted")
	}
	if _, err := be.GatherRows(nil, row, []int{1}); err == nil {
		t.Error("out-of-range id accepted")
	}
	be.Close()
	if _, err := be.Alloc(tensor.F32, 2); err == nil {
		t.Error("Alloc after Close succeeded")
	}
}

func TestEmuMemoryAccounting(t *testing.T) {
	be, _ := newEmuBackend(t, "builtin", PrecisionExact)
	a, _ := be.Alloc(tensor.F32, 1000)
	b, _ := be.Alloc(tensor.F32, 10)
	s := be.MemoryStats()
	if s.Live < 4000+40 || s.Peak != s.Live || s.DriverAllocs != 2 {
		t.Errorf("after two allocs: %+v", s)
	}
	be.Free(a, b)
	c, _ := be.Alloc(tensor.F32, 990) // same size class as a
	if s := be.MemoryStats(); s.DriverAllocs != 2 || s.CacheHits != 1 {
		t.Errorf("no reuse: %+v", s)
	}
	be.Free(c)
	if err := be.EmptyCache(); err != nil {
		t.Fatal(err)
	}
	if s := be.MemoryStats(); s.Cached != 0 || s.Held != 0 || s.Live != 0 {
		t.Errorf("after EmptyCache: %+v", s)
	}
	if free, total, err := be.MemInfo(); err != nil || free > total || total == 0 {
		t.Errorf("MemInfo = %d, %d, %v", free, total, err)
	}
}

// The emulator reports an out-of-bounds access (the guard page after every allocation)
// instead of returning silently wrong results; this checks that the check itself works.
func TestEmuCatchesOutOfBounds(t *testing.T) {
	be, _ := newEmuBackend(t, "builtin", PrecisionExact)
	x, _ := be.Zeros(tensor.F32, 100)
	xv, _ := be.resolve(x, "x")
	l := nd{rank: 1, n: 100000}
	l.shape[0] = 100000
	l.str[0][0], l.str[1][0] = 1, 1
	a := (&args{}).structure(l.pack()).ptr(xv.addr()).i32(int(tensor.F32)).ptr(xv.addr()).i32(int(tensor.F32)).i32(opCopy).f32(0).f32(0)
	err := be.launch(kEwMap, gridFor(l.n, eltBlock), eltBlock, 0, a)
	if err == nil {
		err = be.Synchronize()
	}
	if err == nil || !strings.Contains(err.Error(), "invalid memory access") {
		t.Errorf("out-of-bounds write not caught: %v", err)
	}
}

// Ops from several goroutines on distinct outputs (run with -race).
func TestEmuConcurrentOps(t *testing.T) {
	be, _ := newEmuBackend(t, "lt", PrecisionExact)
	ref, _ := cpu.New(cpu.Options{})
	defer ref.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 5))
			x := tensortest.Rand(rng, tensor.F32, -1, 1, 7, 33)
			w := tensortest.Rand(rng, tensor.BF16, -1, 1, 9, 33)
			want, _ := ref.Linear(nil, x, w, nil)
			wv, _ := want.ToFloat32()
			xd, err := be.ToDevice(x)
			if err != nil {
				errs <- err
				return
			}
			wd, _ := be.ToDevice(w)
			y, err := be.Linear(nil, xd, wd, nil)
			if err != nil {
				errs <- err
				return
			}
			z, err := be.Unary(nil, y, tensor.SiLU)
			if err != nil {
				errs <- err
				return
			}
			got := make([]float32, z.NumElements())
			if err := be.Read(got, z); err != nil {
				errs <- err
				return
			}
			for i, v := range wv {
				s := float32(float64(v) / (1 + math.Exp(-float64(v))))
				if math.Abs(float64(got[i]-s)) > 1e-5 {
					errs <- fmt.Errorf("goroutine %d element %d = %v, want %v", g, i, got[i], s)
					return
				}
			}
			be.Free(xd, wd, y, z)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A captured graph replays its ops on new input values; temporaries freed during the capture
// stay reserved until Close; reads and uploads are refused while capturing.
func TestEmuGraph(t *testing.T) {
	be, _ := newEmuBackend(t, "lt", PrecisionExact)
	rng := rand.New(rand.NewPCG(11, 12))
	xh := tensortest.Rand(rng, tensor.F32, -1, 1, 5, 24)
	w, _ := be.ToDevice(tensortest.Rand(rng, tensor.BF16, -1, 1, 8, 24))
	b, _ := be.ToDevice(tensortest.Rand(rng, tensor.F32, -1, 1, 8))
	x, _ := be.ToDevice(xh)
	y, _ := be.Alloc(tensor.F32, 5, 8)
	step := func() error {
		h, err := be.Linear(nil, x, w, b) // a temporary, freed below
		if err != nil {
			return err
		}
		defer be.Free(h)
		_, err = be.Unary(y, h, tensor.SiLU)
		return err
	}
	if err := step(); err != nil { // warm the pool
		t.Fatal(err)
	}
	before := be.MemoryStats()
	g, err := be.CaptureGraph(step)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.CaptureGraph(func() error { return be.Read(make([]float32, 40), y) }); err == nil {
		t.Error("a Read was captured")
	}
	ref, _ := cpu.New(cpu.Options{})
	defer ref.Close()
	for round := range 2 {
		v := make([]float32, 5*24)
		for i := range v {
			v[i] = float32(rng.Float64()*2 - 1)
		}
		if err := be.Write(x, v); err != nil {
			t.Fatal(err)
		}
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, 40)
		if err := be.Read(got, y); err != nil {
			t.Fatal(err)
		}
		xt, _ := tensor.FromFloat32(v, 5, 24)
		wh, _ := be.ToHost(w)
		bh, _ := be.ToHost(b)
		lin, _ := ref.Linear(nil, xt, wh, bh)
		want, _ := ref.Unary(nil, lin, tensor.SiLU)
		wv, _ := want.ToFloat32()
		for i := range wv {
			if math.Abs(float64(got[i]-wv[i])) > 1e-5+1e-4*math.Abs(float64(wv[i])) {
				t.Fatalf("round %d element %d = %v, want %v", round, i, got[i], wv[i])
			}
		}
	}
	if s := be.MemoryStats(); s.Live <= before.Live {
		t.Errorf("the graph's temporary was not held: live %d before, %d after", before.Live, s.Live)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if s := be.MemoryStats(); s.Live != before.Live {
		t.Errorf("Close did not release the held temporary: live %d, want %d", s.Live, before.Live)
	}
	if err := g.Launch(); err == nil {
		t.Error("launch after Close succeeded")
	}
	// Capture that needs fresh memory fails and leaves the backend usable.
	if _, err := be.CaptureGraph(func() error { _, err := be.Alloc(tensor.F32, 1<<20); return err }); err == nil || !errors.Is(err, errNeedWarmup) {
		t.Errorf("capture with a fresh allocation: %v", err)
	}
	if err := step(); err != nil {
		t.Fatal(err)
	}
}

// In fast precision float32 attention with head dim 128 runs on tensor cores (inputs rounded
// to bf16); its error stays within bf16 precision of the output.
func TestEmuFastAttention(t *testing.T) {
	be, d := newEmuBackend(t, "builtin", PrecisionFast)
	rng := rand.New(rand.NewPCG(5, 6))
	q := tensortest.Rand(rng, tensor.F32, -2, 2, 1, 40, 2, 128)
	k := tensortest.Rand(rng, tensor.F32, -1, 1, 1, 50, 2, 128)
	v := tensortest.Rand(rng, tensor.F32, -1, 1, 1, 50, 2, 128)
	ref, _ := cpu.New(cpu.Options{})
	defer ref.Close()
	want, _ := ref.Attention(nil, q, k, v, tensor.AttentionOptions{Causal: true})
	wv, _ := want.ToFloat32()
	qd, _ := be.ToDevice(q)
	kd, _ := be.ToDevice(k)
	vd, _ := be.ToDevice(v)
	before := d.launches
	y, err := be.Attention(nil, qd, kd, vd, tensor.AttentionOptions{Causal: true})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, y.NumElements())
	if err := be.Read(got, y); err != nil {
		t.Fatal(err)
	}
	if d.launches-before != 4 { // three conversions to bf16 and the mma kernel
		t.Errorf("%d launches, want 4 (3 conversions + attn_mma_d128)", d.launches-before)
	}
	worst := 0.0
	for i := range got {
		worst = max(worst, math.Abs(float64(got[i]-wv[i])))
	}
	t.Logf("fast attention: max |error| %g", worst)
	if worst > 1e-2 || worst == 0 {
		t.Errorf("fast attention: max |error| %g", worst)
	}
}
