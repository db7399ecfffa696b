//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
	"github.com/dypegraph/dypegraph/tensor/tensortest"
)

// The tests in this file run on a real GPU and skip, saying why, where there is none (no
// libcuda.so.1, or a driver without a device). Options come from the environment
// (DYPEGRAPH_CUDA_*, DYPEGRAPH_LIB*), see testdata/gpu_check.sh.

func openGPUOrSkip(t *testing.T, opt Options) *Backend {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: no CUDA driver on this machine (libcuda.so.1 does not load; %s points at it)", EnvLibCUDA)
	}
	be, err := Open(opt)
	if err != nil {
		if errors.Is(err, errNoDriver) || strings.Contains(err.Error(), "no CUDA device") {
			t.Skipf("skipping: no CUDA device: %v", err)
		}
		t.Fatalf("a CUDA driver is present but the backend did not open: %v", err)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return be
}

// TestGPUConformance is the parity suite: every op on random inputs against the CPU backend,
// once per GEMM engine.
func TestGPUConformance(t *testing.T) {
	for _, gemm := range []string{GEMMCublasLt, GEMMBuiltin} {
		t.Run(gemm, func(t *testing.T) {
			opt := OptionsFromEnv()
			opt.GEMM, opt.Precision = gemm, PrecisionExact
			be := openGPUOrSkip(t, opt)
			t.Logf("%s (compute capability %d.%d), GEMM %s", be.DeviceName(), be.inf.ccMajor, be.inf.ccMinor, be.GEMMEngine())
			runCases(t, be, tensortest.Cases())
			runCases(t, be, extraCases())
			if err := be.Synchronize(); err != nil {
				t.Fatalf("asynchronous error: %v", err)
			}
		})
	}
}

// TestGPULargeShapes compares Z-Image-sized pieces (a 3840-wide projection, 1024-token
// attention with head dim 128, a VAE-sized convolution) with the CPU backend.
func TestGPULargeShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	be := openGPUOrSkip(t, OptionsFromEnv())
	runCases(t, be, largeCases())
}

func largeCases() []tensortest.Case {
	return []tensortest.Case{
		{Name: "linear-1024x3840x3840-bf16w", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, 1024, 3840), r(rng, tensor.BF16, 3840, 3840), r(rng, tensor.BF16, 3840))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Linear(nil, in[0], in[1], in[2])
		}, ATol: 1e-4, RTol: 1e-3},
		{Name: "attention-1024-h8-d128", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, 1, 1024, 8, 128), r(rng, tensor.F32, 1, 1024, 8, 128), r(rng, tensor.F32, 1, 1024, 8, 128))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Attention(nil, in[0], in[1], in[2], tensor.AttentionOptions{})
		}, ATol: 1e-5, RTol: 1e-4},
		{Name: "conv-3x3-128ch-128x128", Inputs: func(rng *rand.Rand) []*tensor.Tensor {
			return ins(r(rng, tensor.F32, 1, 128, 128, 128), r(rng, tensor.F32, 128, 128, 3, 3), r(rng, tensor.F32, 128))
		}, Run: func(be tensor.Backend, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return be.Conv2D(nil, in[0], in[1], in[2], tensor.Pad(1, 1))
		}, ATol: 1e-4, RTol: 1e-3},
	}
}

// TestGPUFastPrecision bounds the error of bf16-rounded activations.
func TestGPUFastPrecision(t *testing.T) {
	opt := OptionsFromEnv()
	opt.Precision = PrecisionFast
	be := openGPUOrSkip(t, opt)
	rng := rand.New(rand.NewPCG(1, 2))
	x := tensortest.Rand(rng, tensor.F32, -1, 1, 64, 256)
	w := tensortest.Rand(rng, tensor.BF16, -1, 1, 96, 256)
	ref, _ := cpu.New(cpu.Options{})
	defer ref.Close()
	want, _ := ref.Linear(nil, x, w, nil)
	wv, _ := want.ToFloat32()
	xd, _ := be.ToDevice(x)
	wd, _ := be.ToDevice(w)
	y, err := be.Linear(nil, xd, wd, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, y.NumElements())
	if err := be.Read(got, y); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range got {
		worst = max(worst, math.Abs(float64(got[i]-wv[i])))
	}
	if worst > 0.05 {
		t.Errorf("fast precision: max |error| %g", worst)
	}
	t.Logf("fast precision: max |error| %g over K=256", worst)
}

// TestGPUGraph captures a linear + SiLU step and replays it on new inputs.
func TestGPUGraph(t *testing.T) {
	be := openGPUOrSkip(t, OptionsFromEnv())
	rng := rand.New(rand.NewPCG(11, 12))
	w, _ := be.ToDevice(tensortest.Rand(rng, tensor.BF16, -1, 1, 64, 128))
	x, _ := be.Zeros(tensor.F32, 32, 128)
	y, _ := be.Alloc(tensor.F32, 32, 64)
	step := func() error {
		h, err := be.Linear(nil, x, w, nil)
		if err != nil {
			return err
		}
		defer be.Free(h)
		_, err = be.Unary(y, h, tensor.SiLU)
		return err
	}
	if err := step(); err != nil {
		t.Fatal(err)
	}
	g, err := be.CaptureGraph(step)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ref, _ := cpu.New(cpu.Options{})
	defer ref.Close()
	wh, _ := be.ToHost(w)
	for range 2 {
		v := make([]float32, 32*128)
		for i := range v {
			v[i] = float32(rng.Float64()*2 - 1)
		}
		if err := be.Write(x, v); err != nil {
			t.Fatal(err)
		}
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, 32*64)
		if err := be.Read(got, y); err != nil {
			t.Fatal(err)
		}
		xt, _ := tensor.FromFloat32(v, 32, 128)
		lin, _ := ref.Linear(nil, xt, wh, nil)
		want, _ := ref.Unary(nil, lin, tensor.SiLU)
		wv, _ := want.ToFloat32()
		for i := range wv {
			if math.Abs(float64(got[i]-wv[i])) > 1e-4+1e-3*math.Abs(float64(wv[i])) {
				t.Fatalf("element %d = %v, want %v", i, got[i], wv[i])
			}
		}
	}
}
