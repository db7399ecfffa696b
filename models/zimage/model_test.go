package zimage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/dype"
	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

// smallConfig is a fast model for unit tests: dim 64, 2 heads of 32, one block of each kind.
func smallConfig(t testing.TB) Config {
	t.Helper()
	c, err := ShapeConfig(64, 1, 1, 2, 24)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func smallModel(t testing.TB, be tensor.Backend) *Model {
	t.Helper()
	m, err := NewRandom(smallConfig(t), be, tensor.BF16, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// randTensor makes a host F32 tensor with deterministic pseudo-random values.
func randTensor(t testing.TB, seed int, shape ...int) *tensor.Tensor {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	x := uint32(seed*7919 + 1)
	for i := range v {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		v[i] = float32(x%20001)/10000 - 1
	}
	tt, err := tensor.FromFloat32(v, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func forward(t testing.TB, m *Model, in Input) []float32 {
	t.Helper()
	v, err := m.Forward(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Backend().Free(v)
	if !v.ShapeIs(in.X.Shape()...) {
		t.Fatalf("output shape %v, want %v", v.Shape(), in.X.Shape())
	}
	out := read(t, m.Backend(), v)
	for i, f := range out {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("output %d is %v", i, f)
		}
	}
	return out
}

func TestDefaultAxesDims(t *testing.T) {
	for _, tc := range []struct {
		hd   int
		want [3]int
		bad  bool
	}{
		{128, [3]int{32, 48, 48}, false},
		{64, [3]int{16, 24, 24}, false},
		{32, [3]int{8, 12, 12}, false},
		{72, [3]int{18, 28, 26}, false},
		{6, [3]int{2, 2, 2}, false},
		{4, [3]int{}, true},
		{63, [3]int{}, true},
	} {
		got, err := DefaultAxesDims(tc.hd)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("DefaultAxesDims(%d) = %v, %v; want %v (error %v)", tc.hd, got, err, tc.want, tc.bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := smallConfig(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"heads", func(c *Config) { c.NHeads = 3; c.HeadDim = 0 }, "n_heads"},
		{"kv heads", func(c *Config) { c.NKVHeads = 3 }, "n_kv_heads"},
		{"axes sum", func(c *Config) { c.AxesDims = [3]int{8, 12, 14} }, "axes_dims"},
		{"odd axis", func(c *Config) { c.AxesDims = [3]int{9, 11, 12} }, "even"},
		{"theta", func(c *Config) { c.RopeTheta = 0 }, "rope_theta"},
		{"eps", func(c *Config) { c.NormEps = -1 }, "epsilon"},
		{"lumina", func(c *Config) { c.ZImageModulation = false }, "Lumina"},
		{"layout", func(c *Config) { c.Layout = "kohya" }, "layout"},
		{"patch", func(c *Config) { c.PatchSize = 0 }, "patch_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestParamShapesRealModel checks the parameter list of the released model's configuration
// against the key list of the real checkpoint (golden keys/dit_keys.tsv).
func TestParamShapesRealModel(t *testing.T) {
	gm := golden.MustLoad(t)
	f, err := os.Open(filepath.Join(gm.Dir, "keys", "dit_keys.tsv"))
	if err != nil {
		t.Fatalf("no key list: %v", err)
	}
	defer f.Close()
	want := map[string][]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		var shape []int
		if err := json.Unmarshal([]byte(cols[1]), &shape); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want[cols[0]] = shape
	}
	c, err := ShapeConfig(3840, 30, 2, 30, 2560)
	if err != nil {
		t.Fatal(err)
	}
	if c.FFNHidden != 10240 || c.TEmbedderHidden != 1024 || c.AxesDims != [3]int{32, 48, 48} {
		t.Errorf("real config: ffn %d, t hidden %d, axes %v", c.FFNHidden, c.TEmbedderHidden, c.AxesDims)
	}
	got := ParamShapes(c)
	if len(got) != len(want) {
		t.Errorf("%d parameters, the checkpoint has %d", len(got), len(want))
	}
	params := 0
	for name, s := range want {
		g, ok := got[name]
		if !ok || !slicesEqual(g, s) {
			t.Errorf("%s: %v, checkpoint %v", name, g, s)
		}
		n := 1
		for _, d := range s {
			n *= d
		}
		params += n
	}
	// Detection of the real key list gives the same configuration.
	res := detect.Detect(detect.Shapes(want))
	dc, err := ConfigFrom(res)
	if err != nil {
		t.Fatal(err)
	}
	dc.Layout, dc.KeyPrefix = c.Layout, c.KeyPrefix
	if dc != c {
		t.Errorf("detected %+v\nwant     %+v", dc, c)
	}
	t.Logf("%d tensors, %d parameters; one forward at 1024² with a 100-token caption: %.1f TFLOP", len(want), params, c.FLOPs(1, 4096, 100)/1e12)
	if f := c.FLOPs(1, 4096, 100) / 1e12; math.Abs(f-56.6) > 0.2 {
		t.Errorf("FLOPs = %.2f T, zimage.md §8 gives ≈ 56.6 T", f)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInputValidation(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	x := randTensor(t, 1, 1, 16, 4, 4)
	cx := randTensor(t, 2, 1, 3, 24)
	for _, tc := range []struct {
		name string
		in   Input
		want string
	}{
		{"nil latent", Input{Sigma: []float32{1}, Context: cx}, "latent"},
		{"channels", Input{X: randTensor(t, 1, 1, 4, 4, 4), Sigma: []float32{1}, Context: cx}, "latent"},
		{"rank", Input{X: randTensor(t, 1, 16, 4, 4), Sigma: []float32{1}, Context: cx}, "latent"},
		{"context width", Input{X: x, Sigma: []float32{1}, Context: randTensor(t, 2, 1, 3, 23)}, "context"},
		{"context batch", Input{X: x, Sigma: []float32{1}, Context: randTensor(t, 2, 3, 3, 24)}, "context"},
		{"sigmas", Input{X: x, Sigma: []float32{1, 0.5}, Context: cx}, "sigmas"},
		{"no sigma", Input{X: x, Context: cx}, "sigmas"},
		{"nan sigma", Input{X: x, Sigma: []float32{float32(math.NaN())}, Context: cx}, "finite"},
		{"caption lens count", Input{X: x, Sigma: []float32{1}, Context: cx, CaptionLens: []int{1, 2}}, "caption lengths"},
		{"caption len", Input{X: x, Sigma: []float32{1}, Context: cx, CaptionLens: []int{4}}, "caption length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := m.Forward(context.Background(), tc.in)
			if err == nil {
				be.Free(v)
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestBatchConsistency: a batch gives each sample's single-sample result; a shared context of
// batch 1 equals the repeated context; ragged caption lengths equal separate calls on the
// truncated contexts.
func TestBatchConsistency(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	x := randTensor(t, 1, 3, 16, 6, 10)
	cx := randTensor(t, 2, 3, 9, 24)
	sig := []float32{0.9, 0.4, 0.1}
	sample := func(i, n int, shared bool) []float32 {
		xi, _ := x.Slice(0, i, i+1)
		ci := cx
		if !shared {
			ci, _ = cx.Slice(0, i, i+1)
		} else {
			ci, _ = cx.Slice(0, 0, 1)
		}
		ci, _ = ci.Slice(1, 0, n)
		return forward(t, m, Input{X: xi, Sigma: sig[i : i+1], Context: ci})
	}
	per := len(read(t, be, x)) / 3
	check := func(name string, got []float32, want func(i int) []float32) {
		t.Helper()
		for i := range 3 {
			d, _ := maxAbsDiff(got[i*per:(i+1)*per], want(i))
			if d > 1e-5 {
				t.Errorf("%s: sample %d differs by %g", name, i, d)
			}
		}
	}
	check("batch", forward(t, m, Input{X: x, Sigma: sig, Context: cx}), func(i int) []float32 { return sample(i, 9, false) })
	c0, _ := cx.Slice(0, 0, 1)
	check("shared context", forward(t, m, Input{X: x, Sigma: sig, Context: c0}), func(i int) []float32 { return sample(i, 9, true) })
	lens := []int{9, 4, 4}
	check("ragged", forward(t, m, Input{X: x, Sigma: sig, Context: cx, CaptionLens: lens}), func(i int) []float32 { return sample(i, lens[i], false) })
	// One sigma for all.
	all := forward(t, m, Input{X: x, Sigma: []float32{0.4}, Context: cx})
	xi, _ := x.Slice(0, 1, 2)
	ci, _ := cx.Slice(0, 1, 2)
	one := forward(t, m, Input{X: xi, Sigma: []float32{0.4}, Context: ci})
	if d, _ := maxAbsDiff(all[per:2*per], one); d > 1e-5 {
		t.Errorf("broadcast sigma: %g", d)
	}
}

// TestOddLatent: odd sizes are padded circularly to the patch size and the output cropped, so
// the result equals the forward of the explicitly wrapped latent, cropped.
func TestOddLatent(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	const h, w = 5, 7
	x := randTensor(t, 3, 1, 16, h, w)
	xv := read(t, be, x)
	pv := make([]float32, 16*(h+1)*(w+1))
	for c := range 16 {
		for i := range h + 1 {
			for j := range w + 1 {
				pv[(c*(h+1)+i)*(w+1)+j] = xv[(c*h+i%h)*w+j%w]
			}
		}
	}
	xp, _ := tensor.FromFloat32(pv, 1, 16, h+1, w+1)
	cx := randTensor(t, 4, 1, 5, 24)
	got := forward(t, m, Input{X: x, Sigma: []float32{0.7}, Context: cx})
	full := forward(t, m, Input{X: xp, Sigma: []float32{0.7}, Context: cx})
	want := make([]float32, 0, len(got))
	for c := range 16 {
		for i := range h {
			want = append(want, full[(c*(h+1)+i)*(w+1):(c*(h+1)+i)*(w+1)+w]...)
		}
	}
	if d, _ := maxAbsDiff(got, want); d != 0 {
		t.Errorf("odd latent differs from the wrapped one by %g", d)
	}
}

func TestCancellation(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	x := randTensor(t, 1, 1, 16, 4, 4)
	cx := randTensor(t, 2, 1, 3, 24)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forward(ctx, Input{X: x, Sigma: []float32{1}, Context: cx}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: %v", err)
	}
	// Cancelled after the first block: stops at the next one.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	blocks := 0
	_, err := m.forward(ctx, Input{X: x, Sigma: []float32{1}, Context: cx}, fwdOpts{trace: func(name string, _ *tensor.Tensor) {
		if strings.HasSuffix(name, ".out") {
			blocks++
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || blocks != 1 {
		t.Fatalf("cancelled mid-way: %v after %d blocks", err, blocks)
	}
}

// TestNoLeaks: a forward returns every activation and scratch buffer to the pool (the count of
// buffers in use is the same before and after it), and once the pool is warm, forwards stop
// allocating. Which forward reaches the pool's peak demand depends on how parallel ops
// interleave their scratch buffers, so a warm forward may still add a buffer now and then; a
// leak would add at least one every time.
func TestNoLeaks(t *testing.T) {
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	m := smallModel(t, be)
	in := Input{X: randTensor(t, 1, 2, 16, 6, 6), Sigma: []float32{1, 0.3}, Context: randTensor(t, 2, 2, 3, 24)}
	forward(t, m, in)
	forward(t, m, in)
	const warm = 6
	quiet := 0
	for i := range warm {
		inUse, allocs := be.PoolBuffersInUse(), be.PoolAllocations()
		forward(t, m, in)
		if after := be.PoolBuffersInUse(); after != inUse {
			t.Fatalf("warm forward %d: %d pooled buffers in use before, %d after", i, inUse, after)
		}
		if be.PoolAllocations() == allocs {
			quiet++
		}
	}
	if quiet == 0 {
		t.Errorf("every one of %d warm forwards allocated new pool buffers", warm)
	}
}

func TestRopeProvider(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	x := randTensor(t, 1, 1, 16, 6, 8)
	cx := randTensor(t, 2, 1, 3, 24)
	in := Input{X: x, Sigma: []float32{0.5}, Context: cx}
	plain := forward(t, m, in)
	var nilRope *dype.Rope
	in.Rope = nilRope
	if d, _ := maxAbsDiff(forward(t, m, in), plain); d != 0 {
		t.Errorf("typed nil rope differs from plain by %g", d)
	}
	// A DyPE rope for another size is refused.
	cfg := dype.DefaultConfig()
	cfg.Enabled = true
	cfg.BaseResolution = 32
	wrong, err := dype.New(cfg, m.RopeSpec(), dype.Geometry{Width: 64, Height: 64})
	if err != nil {
		t.Fatal(err)
	}
	in.Rope = wrong
	if _, err := m.Forward(context.Background(), in); err == nil || !strings.Contains(err.Error(), "token grid") {
		t.Fatalf("mismatched rope: %v", err)
	}
	// DyPE at a size within the base grid is the plain RoPE up to the table recipe (llm_dit).
	cfg.BaseResolution = 1024
	r, err := dype.New(cfg, m.RopeSpec(), dype.Geometry{Width: 8 * 8, Height: 6 * 8})
	if err != nil {
		t.Fatal(err)
	}
	in.Rope = r
	if d, _ := maxAbsDiff(forward(t, m, in), plain); d > 1e-4 {
		t.Errorf("DyPE inside the base grid differs from plain RoPE by %g", d)
	}
}

func TestDenoised(t *testing.T) {
	be := testBackend(t)
	x := randTensor(t, 1, 2, 3)
	v := randTensor(t, 2, 2, 3)
	out, err := Denoised(be, x, v, []float32{0.5, 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(out)
	xs, vs, got := read(t, be, x), read(t, be, v), read(t, be, out)
	for i := range got {
		s := float32(0.5)
		if i >= 3 {
			s = 2
		}
		if want := xs[i] - vs[i]*s; got[i] != want {
			t.Errorf("element %d: %v, want %v", i, got[i], want)
		}
	}
	if _, err := Denoised(be, x, randTensor(t, 2, 3, 2), []float32{1}); err == nil {
		t.Error("shape mismatch accepted")
	}
	if _, err := Denoised(be, x, v, []float32{1, 2, 3}); err == nil {
		t.Error("sigma count mismatch accepted")
	}
}

// TestClosed: a closed model refuses to run, and Close is idempotent.
func TestClosed(t *testing.T) {
	be := testBackend(t)
	m, err := NewRandom(smallConfig(t), be, tensor.F32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = m.Forward(context.Background(), Input{X: randTensor(t, 1, 1, 16, 2, 2), Sigma: []float32{1}, Context: randTensor(t, 2, 1, 1, 24)})
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("forward on a closed model: %v", err)
	}
}

// TestConcurrentForward: a model serves several goroutines at once (run with -race).
func TestConcurrentForward(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	in := Input{X: randTensor(t, 1, 1, 16, 4, 6), Sigma: []float32{0.5}, Context: randTensor(t, 2, 1, 3, 24)}
	want := forward(t, m, in)
	errs := make(chan error, 3)
	outs := make(chan []float32, 3)
	for range 3 {
		go func() {
			v, err := m.Forward(context.Background(), in)
			if err != nil {
				errs <- err
				return
			}
			out := make([]float32, v.NumElements())
			err = be.Read(out, v)
			be.Free(v)
			errs <- err
			outs <- out
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if d, _ := maxAbsDiff(<-outs, want); d != 0 {
			t.Errorf("concurrent forward differs by %g", d)
		}
	}
}
