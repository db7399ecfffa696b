package vae_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
)

// tracker wraps a backend and measures the bytes of the tensors its ops allocate (results of
// ops with a nil dst, Alloc, Zeros, Convert) until they are freed: the live activation memory
// of a pass, and its peak. Scratch memory inside ops is not seen.
type tracker struct {
	tensor.Backend
	mu         sync.Mutex
	live, peak int64
	sizes      map[tensor.Storage]int64
}

func newTracker(be tensor.Backend) *tracker {
	return &tracker{Backend: be, sizes: map[tensor.Storage]int64{}}
}

func (tr *tracker) add(t *tensor.Tensor, err error, dst *tensor.Tensor) (*tensor.Tensor, error) {
	if err != nil || dst != nil || t == nil {
		return t, err
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	st := t.Storage()
	if _, ok := tr.sizes[st]; ok {
		return t, err
	}
	n := int64(t.NumElements() * t.DType().Size())
	tr.sizes[st] = n
	tr.live += n
	tr.peak = max(tr.peak, tr.live)
	return t, err
}

func (tr *tracker) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.peak = tr.live
}

func (tr *tracker) Free(ts ...*tensor.Tensor) {
	tr.mu.Lock()
	for _, t := range ts {
		if t == nil {
			continue
		}
		if st := t.Storage(); st != nil {
			if n, ok := tr.sizes[st]; ok {
				tr.live -= n
				delete(tr.sizes, st)
			}
		}
	}
	tr.mu.Unlock()
	tr.Backend.Free(ts...)
}

func (tr *tracker) Alloc(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := tr.Backend.Alloc(dt, shape...)
	return tr.add(t, err, nil)
}

func (tr *tracker) Zeros(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := tr.Backend.Zeros(dt, shape...)
	return tr.add(t, err, nil)
}

func (tr *tracker) Copy(dst, src *tensor.Tensor) (*tensor.Tensor, error) {
	t, err := tr.Backend.Copy(dst, src)
	return tr.add(t, err, dst)
}

func (tr *tracker) Convert(src *tensor.Tensor, dt tensor.DType) (*tensor.Tensor, error) {
	t, err := tr.Backend.Convert(src, dt)
	return tr.add(t, err, nil)
}

func (tr *tracker) Linear(dst, x, w, b *tensor.Tensor) (*tensor.Tensor, error) {
	t, err := tr.Backend.Linear(dst, x, w, b)
	return tr.add(t, err, dst)
}

func (tr *tracker) Attention(dst, q, k, v *tensor.Tensor, opt tensor.AttentionOptions) (*tensor.Tensor, error) {
	t, err := tr.Backend.Attention(dst, q, k, v, opt)
	return tr.add(t, err, dst)
}

func (tr *tracker) Conv2D(dst, x, w, b *tensor.Tensor, p tensor.Conv2DParams) (*tensor.Tensor, error) {
	t, err := tr.Backend.Conv2D(dst, x, w, b, p)
	return tr.add(t, err, dst)
}

func (tr *tracker) GroupNorm(dst, x, w, b *tensor.Tensor, g int, eps float32) (*tensor.Tensor, error) {
	t, err := tr.Backend.GroupNorm(dst, x, w, b, g, eps)
	return tr.add(t, err, dst)
}

func (tr *tracker) Unary(dst, x *tensor.Tensor, op tensor.UnaryOp) (*tensor.Tensor, error) {
	t, err := tr.Backend.Unary(dst, x, op)
	return tr.add(t, err, dst)
}

func (tr *tracker) Binary(dst, a, b *tensor.Tensor, op tensor.BinaryOp) (*tensor.Tensor, error) {
	t, err := tr.Backend.Binary(dst, a, b, op)
	return tr.add(t, err, dst)
}

func (tr *tracker) Resize(dst, x *tensor.Tensor, h, w int, m tensor.ResizeMethod) (*tensor.Tensor, error) {
	t, err := tr.Backend.Resize(dst, x, h, w, m)
	return tr.add(t, err, dst)
}

// dryBackend computes nothing: its ops check and produce shapes over storage that holds no
// bytes, so that the memory behaviour of full-size passes can be measured in milliseconds.
// It implements the ops the VAE uses; the others are left to the nil embedded interface.
type dryBackend struct{ tensor.Backend }

type dryStorage struct{ n int }

func (s *dryStorage) Device() tensor.Device { return tensor.CPU }
func (s *dryStorage) Size() int             { return s.n }

func (dryBackend) Name() string              { return "dry" }
func (dryBackend) Device() tensor.Device     { return tensor.CPU }
func (dryBackend) Close() error              { return nil }
func (dryBackend) Free(ts ...*tensor.Tensor) {}
func (dryBackend) ToDevice(t *tensor.Tensor) (*tensor.Tensor, error) {
	return t, nil
}
func (dryBackend) Read(dst []float32, t *tensor.Tensor) error {
	if len(dst) != t.NumElements() {
		return fmt.Errorf("dry: read %d into %d", t.NumElements(), len(dst))
	}
	return nil
}

func dryTensor(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return tensor.New(&dryStorage{n * dt.Size()}, dt, shape, nil, 0)
}

func (d dryBackend) Alloc(dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	return dryTensor(dt, shape...)
}

func (d dryBackend) Convert(src *tensor.Tensor, dt tensor.DType) (*tensor.Tensor, error) {
	return dryTensor(dt, src.Shape()...)
}

func (d dryBackend) Copy(dst, src *tensor.Tensor) (*tensor.Tensor, error) {
	if dst != nil {
		return dst, nil
	}
	return dryTensor(src.DType(), src.Shape()...)
}

func (d dryBackend) out(dst *tensor.Tensor, dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	if dst != nil {
		if !dst.ShapeIs(shape...) {
			return nil, fmt.Errorf("dry: dst %v, want %v", dst.Shape(), shape)
		}
		return dst, nil
	}
	return dryTensor(dt, shape...)
}

func (d dryBackend) Conv2D(dst, x, w, b *tensor.Tensor, p tensor.Conv2DParams) (*tensor.Tensor, error) {
	if x.Dim(1) != w.Dim(1) {
		return nil, fmt.Errorf("dry: conv %v with %v", x.Shape(), w.Shape())
	}
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	oh := (x.Dim(2)+p.PadTop+p.PadBottom-w.Dim(2))/sh + 1
	ow := (x.Dim(3)+p.PadLeft+p.PadRight-w.Dim(3))/sw + 1
	return d.out(dst, x.DType(), x.Dim(0), w.Dim(0), oh, ow)
}

func (d dryBackend) GroupNorm(dst, x, w, b *tensor.Tensor, g int, eps float32) (*tensor.Tensor, error) {
	return d.out(dst, x.DType(), x.Shape()...)
}

func (d dryBackend) Unary(dst, x *tensor.Tensor, op tensor.UnaryOp) (*tensor.Tensor, error) {
	return d.out(dst, x.DType(), x.Shape()...)
}

func (d dryBackend) Binary(dst, a, b *tensor.Tensor, op tensor.BinaryOp) (*tensor.Tensor, error) {
	s, err := tensor.BroadcastShapes(a.Shape(), b.Shape())
	if err != nil {
		return nil, err
	}
	return d.out(dst, a.DType(), s...)
}

func (d dryBackend) Linear(dst, x, w, b *tensor.Tensor) (*tensor.Tensor, error) {
	s := x.Shape()
	if s[len(s)-1] != w.Dim(1) {
		return nil, fmt.Errorf("dry: linear %v with %v", s, w.Shape())
	}
	s[len(s)-1] = w.Dim(0)
	return d.out(dst, x.DType(), s...)
}

func (d dryBackend) Attention(dst, q, k, v *tensor.Tensor, opt tensor.AttentionOptions) (*tensor.Tensor, error) {
	return d.out(dst, q.DType(), q.Dim(0), q.Dim(1), q.Dim(2), v.Dim(3))
}

func (d dryBackend) Resize(dst, x *tensor.Tensor, h, w int, m tensor.ResizeMethod) (*tensor.Tensor, error) {
	s := x.Shape()
	s[len(s)-2], s[len(s)-1] = h, w
	return d.out(dst, x.DType(), s...)
}

// fakeSource serves zero-valued BF16 weights of a configuration without allocating them.
type fakeSource struct {
	infos map[string]safetensors.Info
	names []string
	zeros []byte
}

func newFakeSource(c vae.Config) *fakeSource {
	fs := &fakeSource{infos: map[string]safetensors.Info{}}
	biggest := 0
	for _, sp := range ldmSpecs(c) {
		n := 1
		for _, d := range sp.shape {
			n *= d
		}
		biggest = max(biggest, 2*n)
		fs.infos[sp.name] = safetensors.Info{Name: sp.name, DType: safetensors.BF16, Shape: sp.shape}
		fs.names = append(fs.names, sp.name)
	}
	fs.zeros = make([]byte, biggest)
	return fs
}

func (f *fakeSource) Names() []string                           { return f.names }
func (f *fakeSource) Info(name string) (safetensors.Info, bool) { i, ok := f.infos[name]; return i, ok }
func (f *fakeSource) Metadata() map[string]string               { return nil }
func (f *fakeSource) Data(name string) ([]byte, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("no %s", name)
	}
	return f.zeros[:2*i.NumElements()], nil
}

// dryFlux builds the full-size Flux VAE over the dry backend, with a tracker around it.
func dryFlux(t testing.TB, compute tensor.DType) (*vae.VAE, *tracker) {
	t.Helper()
	tr := newTracker(dryBackend{})
	v, err := vae.New(newFakeSource(vae.FluxConfig()), "dry-flux", vae.FluxConfig(), tr, vae.Options{Compute: compute})
	if err != nil {
		t.Fatal(err)
	}
	return v, tr
}

// TestMemoryEstimates checks the activation estimates against the live memory measured on the
// real CPU backend: never below it, and not far above.
func TestMemoryEstimates(t *testing.T) {
	ctx := context.Background()
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16} {
		tr := newTracker(newBackend(t))
		v := loadTiny(t, tr, vae.Options{Compute: dt})
		for _, sz := range [][2]int{{4, 4}, {6, 10}} {
			name := fmt.Sprintf("%v/decode %dx%d", dt, sz[1], sz[0])
			lat := randomLatent(1, 16, sz[0], sz[1], 1)
			tr.reset()
			if _, err := v.Decode(ctx, lat); err != nil {
				t.Fatal(err)
			}
			checkEstimate(t, name, tr.peak, v.DecodeActivations(sz[0], sz[1]))
			f := v.Downscale()
			name = fmt.Sprintf("%v/encode %dx%d", dt, sz[1]*f, sz[0]*f)
			tr.reset()
			if _, err := v.Encode(ctx, randomImage(1, sz[0]*f, sz[1]*f, 3, 2)); err != nil {
				t.Fatal(err)
			}
			checkEstimate(t, name, tr.peak, v.EncodeActivations(sz[0]*f, sz[1]*f))
		}
	}
}

func checkEstimate(t *testing.T, name string, measured, est int64) {
	t.Helper()
	t.Logf("%s: measured peak %d B, estimate %d B", name, measured, est)
	if measured == 0 || measured > est || float64(est) > 2*float64(measured) {
		t.Errorf("%s: estimate %d B for a measured peak of %d B", name, est, measured)
	}
}

// TestTiledPeakBoundedByTile runs the full-size Flux VAE shapes on the dry backend: the
// activation peak of a tiled decode does not grow with the image, stays within its estimate,
// and a plain decode's estimate does grow.
func TestTiledPeakBoundedByTile(t *testing.T) {
	ctx := context.Background()
	v, tr := dryFlux(t, tensor.F32)
	tiles := vae.DecodeTilesFromPixels(512, 64, 8)
	var peaks []int64
	for _, n := range []int{72, 136} {
		lat := &vae.Latent{B: 1, C: 16, H: n, W: n, Data: make([]float32, 16*n*n)}
		tr.reset()
		if _, err := v.DecodeTiled(ctx, lat, tiles); err != nil {
			t.Fatal(err)
		}
		est := v.DecodeTiledPeakBytes(n, n, tiles)
		t.Logf("latent %d²: tiled activation peak %d B (estimate with host buffers %d B); plain estimate %d B",
			n, tr.peak, est, v.DecodePeakBytes(n, n))
		if tr.peak > est {
			t.Errorf("latent %d²: peak %d above the estimate %d", n, tr.peak, est)
		}
		peaks = append(peaks, tr.peak)
	}
	if peaks[0] != peaks[1] {
		t.Errorf("tiled activation peak grows with the image: %v", peaks)
	}
	if p, q := v.DecodePeakBytes(96, 96), v.DecodePeakBytes(192, 192); q < 3*p {
		t.Errorf("plain estimate does not grow with the image: %d then %d", p, q)
	}
	// The plain decode on the dry backend agrees with its estimate.
	tr.reset()
	if _, err := v.Decode(ctx, &vae.Latent{B: 1, C: 16, H: 32, W: 48, Data: make([]float32, 16*32*48)}); err != nil {
		t.Fatal(err)
	}
	checkEstimate(t, "flux plain decode 384x256", tr.peak, v.DecodeActivations(32, 48))
}
