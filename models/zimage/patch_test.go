package zimage

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/tensor"
)

// testPatches are hand-made patches on the small model: a LoRA on the k rows of one qkv, a
// whole-weight LoRA, and diffs of a norm gain, a bias and a pad token.
func testPatches(t *testing.T, cfg Config, strength float64) []lora.Patch {
	t.Helper()
	d := cfg.Dim
	lp := func(param string, start, rows, in, rank, seed int) lora.Patch {
		n := rows
		return lora.Patch{Target: lora.Target{Model: lora.ModelDiffusion, Param: param, Start: start, Rows: rows},
			Kind: lora.KindLoRA, Up: randTensor(t, seed, n, rank), Down: randTensor(t, seed+1, rank, in),
			Alpha: 2, HasAlpha: true, Strength: strength, File: "test", Module: param}
	}
	diff := func(param string, seed int, shape ...int) lora.Patch {
		return lora.Patch{Target: lora.Target{Model: lora.ModelDiffusion, Param: param}, Kind: lora.KindDiff,
			Diff: randTensor(t, seed, shape...), Strength: strength, File: "test", Module: param + ".diff"}
	}
	whole := lp("layers.0.feed_forward.w2.weight", 0, d, cfg.FFNHidden, 4, 3)
	whole.Target.Rows = 0
	return []lora.Patch{
		lp("layers.0.attention.qkv.weight", d, d, d, 4, 1),
		whole,
		diff("layers.0.attention_norm1.weight", 5, d),
		diff("layers.0.adaLN_modulation.0.bias", 6, 4*d),
		diff("x_pad_token", 7, 1, d),
	}
}

func smallInput(t *testing.T, cfg Config) Input {
	return Input{X: randTensor(t, 11, 1, cfg.InChannels, 6, 6), Sigma: []float32{0.7}, Context: randTensor(t, 12, 1, 5, cfg.CapFeatDim)}
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestWithPatches(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	cfg := m.Config()
	in := smallInput(t, cfg)
	ctx := context.Background()
	baseOut := forward(t, m, in)
	ps := testPatches(t, cfg, 0.7)

	v, err := m.WithPatches(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	patched := map[string]bool{}
	for _, p := range ps {
		patched[p.Target.Param] = true
	}
	for _, name := range m.ParamNames() {
		bp, _ := m.Parameter(name)
		vp, ok := v.Parameter(name)
		if !ok || len(vp) != len(bp) {
			t.Fatalf("%s: view has %d tensors, base %d", name, len(vp), len(bp))
		}
		if same := vp[0] == bp[0]; same == patched[name] {
			t.Errorf("%s: view shares the base tensor: %v, patched: %v", name, same, patched[name])
		}
		if vp[0].DType() != bp[0].DType() {
			t.Errorf("%s: patched dtype %v, base %v", name, vp[0].DType(), bp[0].DType())
		}
	}
	// A patched tensor holds exactly lora.Apply's value.
	for _, p := range ps {
		bp, _ := m.Parameter(p.Target.Param)
		shape, _ := m.ParamShape(p.Target.Param)
		var group []lora.Patch
		for _, q := range ps {
			if q.Target.Param == p.Target.Param {
				group = append(group, q)
			}
		}
		want, err := lora.Apply(be, bp[0], 0, shape, group)
		if err != nil {
			t.Fatal(err)
		}
		vp, _ := v.Parameter(p.Target.Param)
		if !bitsEqual(read(t, be, vp[0]), read(t, be, want)) {
			t.Errorf("%s: view tensor differs from lora.Apply", p.Target.Param)
		}
		be.Free(want)
	}
	patchedOut := forward(t, v, in)
	if bitsEqual(patchedOut, baseOut) {
		t.Fatal("patches do not change the output")
	}
	if !bitsEqual(forward(t, m, in), baseOut) {
		t.Fatal("the base output changed")
	}

	// No patches: the base's output bit for bit.
	e, err := m.WithPatches(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(forward(t, e, in), baseOut) {
		t.Error("an empty patch set changes the output")
	}
	e.Close()

	// Patching a view starts from the base with the view's patches first.
	extra := testPatches(t, cfg, -0.4)[:2]
	vv, err := v.WithPatches(ctx, extra)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := m.WithPatches(ctx, append(slices.Clone(ps), extra...))
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(forward(t, vv, in), forward(t, direct, in)) {
		t.Error("patching a view differs from patching the base with both sets")
	}
	if !vv.Patched() || m.Patched() {
		t.Error("Patched() is wrong")
	}

	// Lifetimes: closing a view leaves the base and the other views alone; closing the base
	// ends every view.
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Forward(ctx, in); err == nil {
		t.Error("a closed view still runs")
	}
	if !bitsEqual(forward(t, m, in), baseOut) {
		t.Error("closing a view changed the base")
	}
	_ = forward(t, vv, in)
	m.Close()
	if _, err := direct.Forward(ctx, in); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a view of a closed base: %v", err)
	}
	if _, err := m.WithPatches(ctx, ps); err == nil {
		t.Error("patching a closed model succeeded")
	}
	vv.Close()
	direct.Close()
}

// TestWithPatchesDiffusersLayout patches a model whose qkv is stored as separate q/k/v
// tensors: the result equals the ComfyUI-layout model's, and only the k part is copied.
func TestWithPatchesDiffusersLayout(t *testing.T) {
	be := testBackend(t)
	cfg := smallConfig(t)
	ws, err := RandomWeights(cfg, tensor.BF16, 7)
	if err != nil {
		t.Fatal(err)
	}
	comfy, err := NewFromTensors(cfg, ws, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer comfy.Close()
	dw := map[string]*tensor.Tensor{}
	q, kv := cfg.NHeads*cfg.HeadDim, cfg.NKVHeads*cfg.HeadDim
	for n, w := range ws {
		switch {
		case strings.HasSuffix(n, ".attention.qkv.weight"):
			blk := strings.TrimSuffix(n, ".qkv.weight")
			for _, p := range []struct {
				s      string
				lo, hi int
			}{{"to_q", 0, q}, {"to_k", q, q + kv}, {"to_v", q + kv, q + 2*kv}} {
				part, err := w.Slice(0, p.lo, p.hi)
				if err != nil {
					t.Fatal(err)
				}
				dw[blk+"."+p.s+".weight"] = part
			}
		case strings.HasSuffix(n, ".attention.out.weight"):
			dw[strings.TrimSuffix(n, "out.weight")+"to_out.0.weight"] = w
		case strings.HasSuffix(n, ".attention.q_norm.weight"):
			dw[strings.TrimSuffix(n, "q_norm.weight")+"norm_q.weight"] = w
		case strings.HasSuffix(n, ".attention.k_norm.weight"):
			dw[strings.TrimSuffix(n, "k_norm.weight")+"norm_k.weight"] = w
		case strings.HasPrefix(n, "x_embedder."):
			dw["all_x_embedder.2-1."+strings.TrimPrefix(n, "x_embedder.")] = w
		case strings.HasPrefix(n, "final_layer."):
			dw["all_final_layer.2-1."+strings.TrimPrefix(n, "final_layer.")] = w
		default:
			dw[n] = w
		}
	}
	dcfg := cfg
	dcfg.Layout = "diffusers"
	diff, err := NewFromTensors(dcfg, dw, be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer diff.Close()
	if !slices.Equal(diff.ParamNames(), comfy.ParamNames()) {
		t.Fatalf("parameter names differ:\n%v\n%v", diff.ParamNames(), comfy.ParamNames())
	}
	ps := testPatches(t, cfg, 1.3)
	in := smallInput(t, cfg)
	var outs [][]float32
	for _, m := range []*Model{comfy, diff} {
		v, err := m.WithPatches(context.Background(), ps)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, forward(t, v, in))
		if m == diff {
			bp, _ := m.Parameter("layers.0.attention.qkv.weight")
			vp, _ := v.Parameter("layers.0.attention.qkv.weight")
			if len(vp) != 3 || vp[0] != bp[0] || vp[1] == bp[1] || vp[2] != bp[2] {
				t.Error("a k-rows patch must copy the k part only")
			}
		}
		v.Close()
	}
	if d, _ := maxAbsDiff(outs[0], outs[1]); d > 1e-6 {
		t.Errorf("diffusers layout differs from the ComfyUI layout by %g", d)
	}
}

func TestCheckPatches(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	cfg := m.Config()
	good := testPatches(t, cfg, 1)
	for _, c := range []struct {
		name string
		edit func(p *lora.Patch)
		want string
	}{
		{"clip patch", func(p *lora.Patch) { p.Target.Model = lora.ModelClip }, "clip"},
		{"unknown parameter", func(p *lora.Patch) { p.Target.Param = "layers.9.attention.qkv.weight" }, "no parameter"},
		{"rows outside", func(p *lora.Patch) { p.Target.Start = 3 * cfg.Dim }, "outside"},
		{"another model's width", func(p *lora.Patch) { p.Down = randTensor(t, 1, 4, cfg.Dim+8) }, "does not fit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ps := slices.Clone(good)
			c.edit(&ps[0])
			err := m.CheckPatches(ps)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckPatches = %v, want %q", err, c.want)
			}
			if _, err := m.WithPatches(context.Background(), ps); err == nil {
				t.Fatal("WithPatches accepted a patch that does not fit")
			}
		})
	}
	if err := m.CheckPatches(good); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.WithPatches(ctx, good); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestLoRAKeyMap(t *testing.T) {
	be := testBackend(t)
	m := smallModel(t, be)
	d := m.Config().Dim
	km := m.LoRAKeyMap()
	for name, want := range map[string]lora.Target{
		"transformer.layers.0.attention.to_v":       {Model: lora.ModelDiffusion, Param: "layers.0.attention.qkv.weight", Start: 2 * d, Rows: d},
		"lora_unet_noise_refiner_0_feed_forward_w3": {Model: lora.ModelDiffusion, Param: "noise_refiner.0.feed_forward.w3.weight"},
		"diffusion_model.cap_embedder.1":            {Model: lora.ModelDiffusion, Param: "cap_embedder.1.weight"},
		"diffusion_model.cap_embedder.1.bias":       {Model: lora.ModelDiffusion, Param: "cap_embedder.1.bias"},
	} {
		if got, ok := km.Lookup(name); !ok || got != want {
			t.Errorf("%s → %s (%v), want %s", name, got, ok, want)
		}
	}
	for _, n := range m.ParamNames() {
		if !km.HasParam(lora.ModelDiffusion, n) {
			t.Errorf("key map lacks parameter %s", n)
		}
	}
}
