package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/resample"
)

func refRoPE(x, cos, sin []float64, b, s, h, d int, perBatch bool, mode tensor.RoPEMode) []float64 {
	out := make([]float64, len(x))
	half := d / 2
	for bi := range b {
		for p := range s {
			tb := 0
			if perBatch {
				tb = bi
			}
			for hh := range h {
				base := ((bi*s+p)*h + hh) * d
				for i := range half {
					c, sn := cos[(tb*s+p)*half+i], sin[(tb*s+p)*half+i]
					if mode == tensor.RoPEInterleaved {
						x0, x1 := x[base+2*i], x[base+2*i+1]
						out[base+2*i] = c*x0 - sn*x1
						out[base+2*i+1] = sn*x0 + c*x1
					} else {
						x0, x1 := x[base+i], x[base+i+half]
						out[base+i] = x0*c - x1*sn
						out[base+i+half] = x1*c + x0*sn
					}
				}
			}
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	be := newBackend(t)
	// Hand-computed: a 90° rotation of x = [1 2 3 4].
	x, _ := tensor.FromFloat32([]float32{1, 2, 3, 4}, 1, 1, 1, 4)
	c, _ := tensor.FromFloat32([]float32{0, 0}, 1, 2)
	s, _ := tensor.FromFloat32([]float32{1, 1}, 1, 2)
	got, err := be.RoPE(nil, x, c, s, tensor.RoPEInterleaved)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "interleaved hand", vals(t, got), []float64{-2, 1, -4, 3}, nil, 0, 0)
	got, err = be.RoPE(nil, x, c, s, tensor.RoPEHalf)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "half hand", vals(t, got), []float64{-3, -4, 1, 2}, nil, 0, 0)

	rng := rand.New(rand.NewPCG(3, 3))
	tests := []struct {
		name     string
		b, s, h  int
		d        int
		perBatch bool
		layout   string
	}{
		{"small", 1, 5, 2, 8, false, ""},
		{"per batch table", 2, 7, 3, 16, true, ""},
		{"q view of fused qkv", 2, 9, 4, 32, false, "fused"},
		{"in place", 1, 6, 2, 128, false, "inplace"},
	}
	for _, mode := range []tensor.RoPEMode{tensor.RoPEInterleaved, tensor.RoPEHalf} {
		for _, tc := range tests {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				half := tc.d / 2
				tb := 1
				if tc.perBatch {
					tb = tc.b
				}
				ang := make([]float32, tb*tc.s*half)
				cs, sn := make([]float32, len(ang)), make([]float32, len(ang))
				for i := range ang {
					a := rng.Float64() * 2 * math.Pi
					cs[i], sn[i] = float32(math.Cos(a)), float32(math.Sin(a))
				}
				shape := []int{tc.s, half}
				if tc.perBatch {
					shape = []int{tc.b, tc.s, half}
				}
				ct, _ := tensor.FromFloat32(cs, shape...)
				st, _ := tensor.FromFloat32(sn, shape...)
				var x, dst *tensor.Tensor
				if tc.layout == "fused" {
					qkv := randT(t, rng, tensor.F32, tc.b, tc.s, 3*tc.h*tc.d)
					q, _ := qkv.Slice(2, 0, tc.h*tc.d)
					x, _ = q.Reshape(tc.b, tc.s, tc.h, tc.d)
				} else {
					x = randT(t, rng, tensor.F32, tc.b, tc.s, tc.h, tc.d)
				}
				want := refRoPE(vals(t, x), vals(t, ct), vals(t, st), tc.b, tc.s, tc.h, tc.d, tc.perBatch, mode)
				if tc.layout == "inplace" {
					dst = x
				}
				got, err := be.RoPE(dst, x, ct, st, mode)
				if err != nil {
					t.Fatal(err)
				}
				closeTo(t, "rope", vals(t, got), want, nil, 1e-6, 1e-6)
			})
		}
	}
	bad, _ := tensor.FromFloat32(make([]float32, 6), 1, 1, 2, 3)
	if _, err := be.RoPE(nil, bad, c, s, tensor.RoPEHalf); err == nil {
		t.Error("rope accepted an odd head dim")
	}
	if _, err := be.RoPE(nil, x, s, s, tensor.RoPEMode(7)); err == nil {
		t.Error("rope accepted an invalid mode")
	}
	wrong, _ := tensor.FromFloat32(make([]float32, 3), 1, 3)
	if _, err := be.RoPE(nil, x, wrong, wrong, tensor.RoPEHalf); err == nil {
		t.Error("rope accepted a wrong table width")
	}
}

func refConv(x, w, bias []float64, n, cin, h, wd, cout, kh, kw int, p tensor.Conv2DParams) ([]float64, int, int) {
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	oh := (h+p.PadTop+p.PadBottom-kh)/sh + 1
	ow := (wd+p.PadLeft+p.PadRight-kw)/sw + 1
	out := make([]float64, n*cout*oh*ow)
	for ni := range n {
		for co := range cout {
			for y := range oh {
				for xx := range ow {
					var s float64
					if bias != nil {
						s = bias[co]
					}
					for ci := range cin {
						for ky := range kh {
							for kx := range kw {
								iy, ix := y*sh-p.PadTop+ky, xx*sw-p.PadLeft+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								s += x[((ni*cin+ci)*h+iy)*wd+ix] * w[((co*cin+ci)*kh+ky)*kw+kx]
							}
						}
					}
					out[((ni*cout+co)*oh+y)*ow+xx] = s
				}
			}
		}
	}
	return out, oh, ow
}

func TestConv2D(t *testing.T) {
	tests := []struct {
		name                string
		n, cin, h, w        int
		cout, kh, kw        int
		p                   tensor.Conv2DParams
		wdt                 tensor.DType
		bias, stridedX, bfD bool
	}{
		{name: "3x3 pad1", n: 1, cin: 3, h: 9, w: 11, cout: 5, kh: 3, kw: 3, p: tensor.Pad(1, 1), wdt: tensor.F32, bias: true},
		{name: "3x3 pad1 bf16 batch2", n: 2, cin: 8, h: 7, w: 5, cout: 19, kh: 3, kw: 3, p: tensor.Pad(1, 1), wdt: tensor.BF16, bias: true},
		{name: "1x1", n: 2, cin: 16, h: 6, w: 7, cout: 9, kh: 1, kw: 1, wdt: tensor.BF16, bias: true},
		{name: "1x1 no bias strided x", n: 1, cin: 5, h: 4, w: 6, cout: 3, kh: 1, kw: 1, wdt: tensor.F32, stridedX: true},
		{name: "downsample pad (0,1,0,1) stride 2", n: 1, cin: 4, h: 10, w: 12, cout: 6, kh: 3, kw: 3,
			p: tensor.Conv2DParams{StrideH: 2, StrideW: 2, PadBottom: 1, PadRight: 1}, wdt: tensor.F32, bias: true},
		{name: "odd stride 2 pad 1", n: 1, cin: 3, h: 9, w: 7, cout: 4, kh: 3, kw: 3, p: tensor.Pad(1, 2), wdt: tensor.F16},
		{name: "asymmetric kernel", n: 1, cin: 2, h: 8, w: 9, cout: 3, kh: 5, kw: 2,
			p: tensor.Conv2DParams{PadTop: 2, PadBottom: 1, PadLeft: 0, PadRight: 3, StrideW: 3}, wdt: tensor.F32, bias: true},
		{name: "wide image several B panels", n: 1, cin: 4, h: 3, w: 70, cout: 20, kh: 3, kw: 3, p: tensor.Pad(1, 1), wdt: tensor.F32},
		{name: "bf16 dst", n: 1, cin: 3, h: 5, w: 5, cout: 4, kh: 3, kw: 3, p: tensor.Pad(1, 1), wdt: tensor.F32, bfD: true},
		{name: "1x1 stride 2", n: 1, cin: 3, h: 6, w: 6, cout: 2, kh: 1, kw: 1, p: tensor.Conv2DParams{StrideH: 2, StrideW: 2}, wdt: tensor.F32},
	}
	for _, be := range backends(t) {
		for _, tc := range tests {
			t.Run(be.kern.name+"/"+tc.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(12, uint64(tc.cout)))
				x := randT(t, rng, tensor.F32, tc.n, tc.cin, tc.h, tc.w)
				w := randT(t, rng, tc.wdt, tc.cout, tc.cin, tc.kh, tc.kw)
				var bias *tensor.Tensor
				var bv []float64
				if tc.bias {
					bias = randT(t, rng, tensor.F32, tc.cout)
					bv = vals(t, bias)
				}
				want, oh, ow := refConv(vals(t, x), vals(t, w), bv, tc.n, tc.cin, tc.h, tc.w, tc.cout, tc.kh, tc.kw, tc.p)
				if tc.stridedX {
					x = strided(t, be, x, true)
				}
				var dst *tensor.Tensor
				atol := 2e-6
				if tc.bfD {
					dst, _ = tensor.Zeros(tensor.BF16, tc.n, tc.cout, oh, ow)
					atol = 3e-2
				}
				got, err := be.Conv2D(dst, x, w, bias, tc.p)
				if err != nil {
					t.Fatal(err)
				}
				if !got.ShapeIs(tc.n, tc.cout, oh, ow) {
					t.Fatalf("shape %v, want [%d %d %d %d]", got.Shape(), tc.n, tc.cout, oh, ow)
				}
				closeTo(t, "conv", vals(t, got), want, nil, atol, 1e-5)
			})
		}
	}
	be := newBackend(t)
	rng := rand.New(rand.NewPCG(1, 1))
	x := randT(t, rng, tensor.F32, 1, 3, 4, 4)
	tests2 := []struct {
		name string
		w    *tensor.Tensor
		p    tensor.Conv2DParams
	}{
		{"channel mismatch", randT(t, rng, tensor.F32, 2, 4, 3, 3), tensor.Pad(1, 1)},
		{"kernel too big", randT(t, rng, tensor.F32, 2, 3, 7, 7), tensor.Pad(1, 1)},
		{"negative pad", randT(t, rng, tensor.F32, 2, 3, 3, 3), tensor.Pad(-1, 1)},
		{"3d weight", randT(t, rng, tensor.F32, 2, 3, 3), tensor.Pad(1, 1)},
	}
	for _, tc := range tests2 {
		if _, err := be.Conv2D(nil, x, tc.w, nil, tc.p); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestConcatGather(t *testing.T) {
	be := newBackend(t)
	a, _ := tensor.FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
	b, _ := tensor.FromFloat32As(tensor.BF16, []float32{5, 6}, 2, 1)
	got, err := be.Concat(nil, 1, a, b)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "concat dim1", vals(t, got), []float64{1, 2, 5, 3, 4, 6}, nil, 0, 0)
	c, _ := tensor.FromFloat32([]float32{7, 8}, 1, 2)
	at, _ := a.Transpose(0, 1)
	got, err = be.Concat(nil, 0, at, c)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "concat dim0 transposed", vals(t, got), []float64{1, 3, 2, 4, 7, 8}, nil, 0, 0)
	if _, err := be.Concat(nil, 0, a, b); err == nil {
		t.Error("concat accepted mismatched shapes")
	}
	if _, err := be.Concat(nil, 2, a); err == nil {
		t.Error("concat accepted an out-of-range dim")
	}
	if _, err := be.Concat(nil, 0); err == nil {
		t.Error("concat accepted no inputs")
	}

	table, _ := tensor.FromFloat32As(tensor.BF16, []float32{0, 0.5, 1, 1.5, 2, 2.5}, 3, 2)
	got, err = be.GatherRows(nil, table, []int{2, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if got.DType() != tensor.BF16 {
		t.Errorf("gather of a bf16 table gave %v", got.DType())
	}
	closeTo(t, "gather", vals(t, got), []float64{2, 2.5, 0, 0.5, 2, 2.5}, nil, 0, 0)
	if _, err := be.GatherRows(nil, table, []int{3}); err == nil {
		t.Error("gather accepted an id out of range")
	}
	freed, _ := be.Copy(nil, table)
	be.Free(freed)
	if _, err := be.GatherRows(nil, freed, nil); err == nil {
		t.Error("gather accepted a freed table")
	}
}

func TestResize(t *testing.T) {
	be := newBackend(t)
	x, _ := tensor.FromFloat32([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	got, err := be.Resize(nil, x, 4, 4, tensor.ResizeNearestExact)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "nearest 2x", vals(t, got), []float64{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, nil, 0, 0)
	got, err = be.Resize(nil, x, 1, 1, tensor.ResizeArea)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "area 1x1", vals(t, got), []float64{2.5}, nil, 0, 1e-7)

	rng := rand.New(rand.NewPCG(2, 2))
	for _, m := range []tensor.ResizeMethod{tensor.ResizeNearestExact, tensor.ResizeBilinear, tensor.ResizeBicubic, tensor.ResizeArea} {
		t.Run(string(m), func(t *testing.T) {
			src := randT(t, rng, tensor.F32, 2, 3, 7, 9)
			sv, _ := src.Float32s()
			want := make([]float32, 2*3*5*13)
			if err := resample.Planes(want, sv, 6, 7, 9, 5, 13, resample.Method(m)); err != nil {
				t.Fatal(err)
			}
			wv := make([]float64, len(want))
			for i, v := range want {
				wv[i] = float64(v)
			}
			got, err := be.Resize(nil, strided(t, be, src, true), 5, 13, m)
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, "resize", vals(t, got), wv, nil, 0, 0)
		})
	}
	if _, err := be.Resize(nil, x, 0, 3, tensor.ResizeBilinear); err == nil {
		t.Error("resize to 0 rows accepted")
	}
	if _, err := be.Resize(nil, x, 2, 2, "sinc"); err == nil {
		t.Error("unknown method accepted")
	}
}
