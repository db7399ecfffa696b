package lora

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

func testBackend(t testing.TB) tensor.Backend {
	t.Helper()
	be, err := cpu.New(cpu.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func randVals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func hostT(t testing.TB, dt tensor.DType, v []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromFloat32As(dt, v, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func values(t testing.TB, x *tensor.Tensor) []float32 {
	t.Helper()
	v, err := x.ToFloat32()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// reference applies patches the way ComfyUI's calculate_weight does on a CPU, written out
// element by element: W in float32; per patch, up·down with the rank terms summed in order
// (each product and sum rounded to float32), times float32(strength·alpha/rank), added; a
// diff times float32(strength), added; a set copied. Then rounded to dt.
func reference(t testing.TB, w []float32, shape []int, ps []Patch, dt tensor.DType) []float32 {
	t.Helper()
	w = slices.Clone(w)
	cols := 1
	for _, d := range shape[1:] {
		cols *= d
	}
	for _, p := range ps {
		start, rows := block(&p, shape)
		for r := range rows {
			for c := range cols {
				i := (start+r)*cols + c
				switch p.Kind {
				case KindLoRA:
					up, down := values(t, p.Up), values(t, p.Down)
					rank, in := p.Rank(), p.Down.Dim(1)
					var acc float32
					for k := range rank {
						acc += float32(up[r*rank+k] * down[k*in+c])
					}
					w[i] += float32(p.Factor() * acc)
				case KindDiff:
					w[i] += float32(p.Factor() * values(t, p.Diff)[r*cols+c])
				case KindSet:
					w[i] = values(t, p.Diff)[r*cols+c]
				}
			}
		}
	}
	out, err := tensor.FromFloat32As(dt, w, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return values(t, out)
}

func TestApplyMatchesReference(t *testing.T) {
	be := testBackend(t)
	r := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 24, 20
	shape := []int{rows, cols}
	lp := func(start, n, rank int, dt tensor.DType, strength, alpha float64, hasAlpha bool) Patch {
		return Patch{Target: Target{Model: ModelDiffusion, Param: "w", Start: start, Rows: n}, Kind: KindLoRA,
			Up: hostT(t, dt, randVals(r, max(n, rows*b2i(n == 0))*rank), max(n, rows*b2i(n == 0)), rank), Down: hostT(t, dt, randVals(r, rank*cols), rank, cols),
			Alpha: alpha, HasAlpha: hasAlpha, Strength: strength, File: "f", Module: "m"}
	}
	diff := func(start, n int, kind Kind, strength float64) Patch {
		h := max(n, rows*b2i(n == 0))
		return Patch{Target: Target{Model: ModelDiffusion, Param: "w", Start: start, Rows: n}, Kind: kind,
			Diff: hostT(t, tensor.BF16, randVals(r, h*cols), h, cols), Strength: strength, File: "f", Module: "d"}
	}
	for _, c := range []struct {
		name string
		dt   tensor.DType
		ps   []Patch
	}{
		{"f32 whole, alpha", tensor.F32, []Patch{lp(0, 0, 4, tensor.F32, 0.8, 2, true)}},
		{"bf16 whole, no alpha, negative strength", tensor.BF16, []Patch{lp(0, 0, 3, tensor.BF16, -0.3, 0, false)}},
		{"f16 base, f16 LoRA", tensor.F16, []Patch{lp(0, 0, 2, tensor.F16, 1, 1, true)}},
		{"bf16 row blocks q and v, then whole", tensor.BF16, []Patch{
			lp(0, 8, 4, tensor.F32, 1, 4, true), lp(16, 8, 2, tensor.BF16, 1, 0, false), lp(0, 0, 8, tensor.F32, 0.6, 3, true)}},
		{"stack on the same weight", tensor.BF16, []Patch{lp(0, 0, 4, tensor.F32, 0.6, 4, true), lp(0, 0, 4, tensor.F32, -0.3, 1, true)}},
		{"diff, set and LoRA", tensor.F32, []Patch{diff(0, 0, KindDiff, 0.5), diff(8, 8, KindSet, 1), lp(4, 12, 2, tensor.F32, 2, 1, true)}},
		{"fp8 base rounds to nearest", tensor.F8E4M3, []Patch{lp(0, 0, 2, tensor.F32, 0.1, 2, true)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := hostT(t, c.dt, randVals(r, rows*cols), rows, cols)
			before := slices.Clone(values(t, base))
			want := reference(t, before, shape, c.ps, c.dt)
			out, err := Apply(be, base, 0, shape, c.ps)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Free(out)
			if out.DType() != c.dt || !out.ShapeIs(shape...) {
				t.Fatalf("result %v %v", out.DType(), out.Shape())
			}
			got := make([]float32, rows*cols)
			if err := be.Read(got, out); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d: %v, want %v (bit exact)", i, got[i], want[i])
				}
			}
			if !slices.Equal(values(t, base), before) {
				t.Fatal("Apply wrote its base")
			}
			// The same patches on row blocks (a diffusers qkv kept as q, k, v) give the same rows.
			var parts []float32
			for _, blk := range [][2]int{{0, 8}, {8, 16}, {16, 24}} {
				pb := hostT(t, c.dt, before[blk[0]*cols:blk[1]*cols], blk[1]-blk[0], cols)
				po, err := Apply(be, pb, blk[0], shape, c.ps)
				if err != nil {
					t.Fatal(err)
				}
				v := make([]float32, po.NumElements())
				if err := be.Read(v, po); err != nil {
					t.Fatal(err)
				}
				be.Free(po)
				parts = append(parts, v...)
			}
			if !slices.EqualFunc(parts, got, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Fatal("patching row blocks differs from patching the whole parameter")
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestApplyOneDimensional(t *testing.T) {
	be := testBackend(t)
	base := hostT(t, tensor.BF16, []float32{1, 2, 3, 4, 5, 6}, 6)
	ps := []Patch{
		{Target: Target{Param: "n.weight"}, Kind: KindDiff, Diff: hostT(t, tensor.F32, []float32{1, 1, 1, 1, 1, 1}, 6), Strength: 0.5, File: "f", Module: "n.diff"},
		{Target: Target{Param: "n.weight"}, Kind: KindLoRA, Up: hostT(t, tensor.F32, []float32{1, 2, 3}, 3, 1), Down: hostT(t, tensor.F32, []float32{1, -1}, 1, 2), Strength: 1, File: "f", Module: "n"},
	}
	out, err := Apply(be, base, 0, []int{6}, ps)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free(out)
	got := make([]float32, 6)
	be.Read(got, out)
	if want := []float32{2.5, 1.5, 5.5, 2.5, 8.5, 3.5}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCheck(t *testing.T) {
	up := func(r, c int) *tensor.Tensor { return hostT(t, tensor.F32, make([]float32, r*c), r, c) }
	for _, c := range []struct {
		name  string
		p     Patch
		shape []int
		want  string // "" fits
	}{
		{"fits", Patch{Kind: KindLoRA, Up: up(8, 2), Down: up(2, 4)}, []int{8, 4}, ""},
		{"row block fits", Patch{Target: Target{Start: 4, Rows: 4}, Kind: KindLoRA, Up: up(4, 2), Down: up(2, 4)}, []int{12, 4}, ""},
		{"wrong out", Patch{Kind: KindLoRA, Up: up(6, 2), Down: up(2, 4)}, []int{8, 4}, "does not fit"},
		{"wrong in", Patch{Kind: KindLoRA, Up: up(8, 2), Down: up(2, 5)}, []int{8, 4}, "another model"},
		{"block outside", Patch{Target: Target{Start: 10, Rows: 4}, Kind: KindLoRA, Up: up(4, 2), Down: up(2, 4)}, []int{12, 4}, "outside"},
		{"diff shape", Patch{Kind: KindDiff, Diff: up(4, 8)}, []int{8, 4}, "does not fit"},
		{"diff fits", Patch{Kind: KindDiff, Diff: up(8, 4)}, []int{8, 4}, ""},
		{"1-D LoRA", Patch{Kind: KindLoRA, Up: up(4, 1), Down: up(1, 2)}, []int{8}, ""},
		{"scalar parameter", Patch{Kind: KindLoRA, Up: up(1, 1), Down: up(1, 1)}, []int{}, "scalar"},
		{"no kind", Patch{}, []int{3}, "unknown patch kind"},
		{"LoRA without matrices", Patch{Kind: KindLoRA}, []int{3}, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.p.Target.Param = "w"
			err := Check(&c.p, c.shape)
			if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Check = %v, want %q", err, c.want)
			}
		})
	}
}

func TestApplyRejectsForeignBlock(t *testing.T) {
	be := testBackend(t)
	base := hostT(t, tensor.F32, make([]float32, 8), 2, 4)
	if _, err := Apply(be, base, 3, []int{4, 4}, nil); err == nil {
		t.Fatal("a block past the parameter's end was accepted")
	}
	if _, err := Apply(be, base, 0, []int{4, 5}, nil); err == nil {
		t.Fatal("a block of another width was accepted")
	}
}
