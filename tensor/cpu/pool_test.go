package cpu

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
)

// TestPoolReuse runs a small "forward pass" repeatedly: after the first pass every buffer
// (results and internal scratch) comes from the pool. One thread keeps the number of scratch
// buffers in flight deterministic.
func TestPoolReuse(t *testing.T) {
	be, err := New(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	x := randT(t, rng, tensor.F32, 1, 40, 64)
	w1 := randT(t, rng, tensor.BF16, 96, 64)
	w2 := randT(t, rng, tensor.BF16, 64, 96)
	g := randT(t, rng, tensor.BF16, 64)
	pass := func() {
		h, err := be.RMSNorm(nil, x, g, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := be.Linear(nil, h, w1, nil)
		a, _ := be.Unary(nil, u, tensor.SiLU)
		o, _ := be.Linear(nil, a, w2, nil)
		q, _ := o.Reshape(1, 40, 4, 16)
		at, err := be.Attention(nil, q, q, q, tensor.AttentionOptions{Causal: true})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := be.Binary(nil, x, o, tensor.Add)
		be.Free(h, u, a, o, at, r)
	}
	pass()
	pass()
	before := be.PoolAllocations()
	for range 3 {
		pass()
	}
	if after := be.PoolAllocations(); after != before {
		t.Fatalf("pool allocated %d new buffers in steady state", after-before)
	}
}

// TestOpAllocations bounds the Go heap allocations of ops that write into a given dst: a
// constant handful (closures and the parallel job), never a buffer.
func TestOpAllocations(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(3, 2))
	x := randT(t, rng, tensor.F32, 64, 128)
	w := randT(t, rng, tensor.BF16, 128, 128)
	dst, _ := be.Alloc(tensor.F32, 64, 128)
	tests := []struct {
		name string
		max  float64
		op   func()
	}{
		{"unary", 12, func() { be.Unary(dst, x, tensor.SiLU) }},
		{"rmsnorm", 12, func() { be.RMSNorm(dst, x, nil, 1e-6) }},
		{"linear", 24, func() { be.Linear(dst, x, w, nil) }},
	}
	for _, tc := range tests {
		tc.op()
		n := testing.AllocsPerRun(5, tc.op)
		if n > tc.max {
			t.Errorf("%s: %v allocations per op, want ≤ %v", tc.name, n, tc.max)
		}
		t.Logf("%s: %v allocations per op", tc.name, n)
	}
}

func TestConcurrentOps(t *testing.T) {
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(5, 2))
	a := randT(t, rng, tensor.F32, 37, 50)
	b := randT(t, rng, tensor.BF16, 50, 29)
	want, scale, _ := refMatMul(vals(t, a), []int{37, 50}, vals(t, b), []int{50, 29}, false)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				got, err := be.MatMul(nil, a, b, false)
				if err != nil {
					errs <- err
					return
				}
				closeTo(t, "concurrent matmul", vals(t, got), want, scale, 1e-6, 1e-5)
				be.Free(got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestBackendBasics(t *testing.T) {
	b, err := tensor.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "cpu" || b.Device() != tensor.CPU {
		t.Fatalf("name %q device %v", b.Name(), b.Device())
	}
	z, err := b.Zeros(tensor.BF16, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, 12)
	if err := b.Read(v, z); err != nil {
		t.Fatal(err)
	}
	for _, f := range v {
		if f != 0 {
			t.Fatal("Zeros is not zero")
		}
	}
	h, err := b.ToDevice(z)
	if err != nil || h != z {
		t.Fatal("ToDevice copied a host tensor on the cpu backend")
	}
	b.Free(z)
	if _, err := b.Unary(nil, z, tensor.Neg); err == nil {
		t.Error("op on a freed tensor succeeded")
	}
	b.Free(z) // a second Free is harmless
	if _, err := b.Alloc(tensor.InvalidDType, 2); err == nil {
		t.Error("Alloc accepted an invalid dtype")
	}
	if _, err := b.Alloc(tensor.F32, -1); err == nil {
		t.Error("Alloc accepted a negative dim")
	}
	if _, err := New(Options{Kernel: "no-such-kernel"}); err == nil {
		t.Error("New accepted an unknown kernel")
	}
}
