package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/zimage"
	"github.com/dypegraph/dypegraph/tensor"
)

// warnRuntime records the warnings a node sends.
type warnRuntime struct {
	testRuntime
	mu    sync.Mutex
	warns []string
}

func (r *warnRuntime) Warn(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warns = append(r.warns, msg)
}

func execRT(t *testing.T, name string, in *Inputs, rt Runtime) (*Outputs, error) {
	t.Helper()
	n, ok := Default().Get(name)
	if !ok {
		t.Fatalf("node %s not registered", name)
	}
	return n.Execute(context.Background(), in, rt)
}

type loraGoldenCase struct {
	LoraFiles []struct {
		File     string  `json:"file"`
		Strength float64 `json:"strength_model"`
	} `json:"lora_files"`
	IO struct {
		File string `json:"file"`
	} `json:"io"`
	Dev struct {
		MaxAbs float64 `json:"max_abs"`
	} `json:"fp32_vs_fp64"`
}

// loraEnv is the tiny golden DiT with every lora_file_* of the manifest in models/loras.
func loraEnv(t *testing.T, m *golden.Manifest) Env {
	env := tempEnv(t)
	tinyDiTEnv(t, m, env)
	var files map[string]json.RawMessage
	if err := json.Unmarshal(m.Top["files"], &files); err != nil {
		t.Fatalf("manifest files: %v", err)
	}
	for name := range files {
		if strings.HasPrefix(name, "lora_file_") {
			linkFile(t, m.Path(name), filepath.Join(env.ModelsDir, "loras", name))
		}
	}
	return env
}

func loadTinyDiT(t *testing.T, env Env) *Model {
	un := NewInputs()
	un.Set("unet_name", "tiny_dit.safetensors")
	un.Set("weight_dtype", "default")
	return exec(t, "UNETLoader", un, env).Values[0].(*Model)
}

func loraOnly(t *testing.T, env Env, m *Model, file string, strength float64) *Model {
	in := NewInputs()
	in.Set("model", m)
	in.Set("lora_name", file)
	in.Set("strength_model", strength)
	return exec(t, "LoraLoaderModelOnly", in, env).Values[0].(*Model)
}

func ditForward(t *testing.T, m *Model, x, cx *tensor.Tensor, sigma []float32) []float32 {
	t.Helper()
	dit, err := m.Transformer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := dit.Forward(context.Background(), zimage.Input{X: x, Sigma: sigma, Context: cx})
	if err != nil {
		t.Fatal(err)
	}
	defer dit.Backend().Free(v)
	out := make([]float32, v.NumElements())
	if err := dit.Backend().Read(out, v); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLoraGolden runs every lora_* case through the nodes: UNETLoader (bf16 weights as
// stored) → LoraLoaderModelOnly per file → the MODEL's transformer, against ComfyUI's
// model_output_bf16_weights.
func TestLoraGolden(t *testing.T) {
	gm := golden.MustLoad(t)
	var names []string
	for n := range gm.Cases {
		if strings.HasPrefix(n, "lora_") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		t.Fatal("golden set has no lora_* case")
	}
	slices.Sort(names)
	env := loraEnv(t, gm)
	base := loadTinyDiT(t, env)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			var c loraGoldenCase
			if err := json.Unmarshal(gm.Cases[name], &c); err != nil {
				t.Fatal(err)
			}
			xd, xs := goldenTensor(t, gm, c.IO.File, "x")
			cd, cs := goldenTensor(t, gm, c.IO.File, "context")
			sig, _ := goldenTensor(t, gm, c.IO.File, "sigma")
			x, _ := tensor.FromFloat32(xd, xs...)
			cx, _ := tensor.FromFloat32(cd, cs...)
			before := ditForward(t, base, x, cx, sig)
			m := base
			for _, lf := range c.LoraFiles {
				m = loraOnly(t, env, m, lf.File, lf.Strength)
			}
			if got := m.LoRAs(); len(got) != len(c.LoraFiles) {
				t.Errorf("handle lists LoRAs %v", got)
			}
			got := ditForward(t, m, x, cx, sig)
			want, _ := goldenTensor(t, gm, c.IO.File, "model_output_bf16_weights")
			var d, am float64
			for i := range want {
				d = math.Max(d, math.Abs(float64(got[i]-want[i])))
				am = math.Max(am, math.Abs(float64(want[i])))
			}
			tol := math.Max(20*c.Dev.MaxAbs, 1.5e-5*am)
			t.Logf("model_output_bf16_weights: max |Δ| = %.3g (tolerance %.3g)", d, tol)
			if d > tol {
				t.Errorf("max |Δ| = %g > %g", d, tol)
			}
			if !slices.Equal(ditForward(t, base, x, cx, sig), before) {
				t.Error("the unpatched handle's output changed")
			}
		})
	}
}

// TestLoraLifetime checks that the patched transformer is built once, shared by clones, and
// freed with the last handle, the loaded model with it.
func TestLoraLifetime(t *testing.T) {
	gm := golden.MustLoad(t)
	env := loraEnv(t, gm)
	base := loadTinyDiT(t, env)
	l := loraOnly(t, env, base, "lora_file_kohya.safetensors", 1)
	ms := NewInputs()
	ms.Set("model", l)
	ms.Set("shift", 3.0)
	shifted := exec(t, "ModelSamplingAuraFlow", ms, env).Values[0].(*Model)
	a, err := l.Transformer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := shifted.Transformer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a != b || !a.Patched() || base.DiT().Patched() {
		t.Fatal("clones do not share the patched transformer")
	}
	if d, _ := base.Transformer(context.Background()); d != base.DiT() {
		t.Fatal("an unpatched handle must run the loaded transformer")
	}
	// The cache holds three handles; releasing them one by one frees the view, then the model.
	for _, h := range []*Model{base, l, shifted} {
		h.Retain()
	}
	shifted.Release()
	l.Release()
	if _, err := l.Transformer(context.Background()); err == nil || !strings.Contains(err.Error(), "released") {
		t.Fatalf("after the last LoRA handle went: %v", err)
	}
	x, _ := tensor.FromFloat32(make([]float32, 16*4*4), 1, 16, 4, 4)
	cx, _ := tensor.FromFloat32(make([]float32, 3*64), 1, 3, 64)
	if _, err := a.Forward(context.Background(), zimage.Input{X: x, Sigma: []float32{1}, Context: cx}); err == nil {
		t.Fatal("the patched view still runs after its release")
	}
	_ = ditForward(t, base, x, cx, []float32{1}) // the base is still held
	base.Release()
	if _, err := base.DiT().Forward(context.Background(), zimage.Input{X: x, Sigma: []float32{1}, Context: cx}); err == nil {
		t.Fatal("the loaded model still runs after the last handle went")
	}
}

// TestLoraLoaderModelOnlyBehaviour covers the node's edges: strength 0, stacking, warnings,
// files for another model, missing files.
func TestLoraLoaderModelOnlyBehaviour(t *testing.T) {
	gm := golden.MustLoad(t)
	env := loraEnv(t, gm)
	base := loadTinyDiT(t, env)
	loras := filepath.Join(env.ModelsDir, "loras")

	// A file with a DiT module, a text-encoder module, an unknown key and a module for a
	// model whose width differs.
	r := rand.New(rand.NewPCG(1, 1))
	ent := func(shape ...int) safetensors.Entry {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.1)
		}
		b := make([]byte, 4*n)
		tensor.EncodeF32(b, v, tensor.F32)
		return safetensors.Entry{DType: safetensors.F32, Shape: shape, Data: b}
	}
	write := func(name string, es map[string]safetensors.Entry) {
		if err := safetensors.WriteFile(filepath.Join(loras, name), es, nil); err != nil {
			t.Fatal(err)
		}
	}
	write("mixed.safetensors", map[string]safetensors.Entry{
		"diffusion_model.layers.0.feed_forward.w1.lora_up.weight":   ent(768, 2),
		"diffusion_model.layers.0.feed_forward.w1.lora_down.weight": ent(2, 256),
		"lora_te_layers_0_self_attn_q_proj.lora_up.weight":          ent(128, 2),
		"lora_te_layers_0_self_attn_q_proj.lora_down.weight":        ent(2, 64),
		"something_else.weight":                                     ent(2, 2),
	})
	write("wide.safetensors", map[string]safetensors.Entry{
		"diffusion_model.layers.0.feed_forward.w1.lora_up.weight":   ent(768, 2),
		"diffusion_model.layers.0.feed_forward.w1.lora_down.weight": ent(2, 384),
	})

	run := func(m *Model, file string, s float64) (*Model, *warnRuntime, error) {
		in := NewInputs()
		in.Set("model", m)
		in.Set("lora_name", file)
		in.Set("strength_model", s)
		rt := &warnRuntime{testRuntime: testRuntime{env}}
		out, err := execRT(t, "LoraLoaderModelOnly", in, rt)
		if err != nil {
			return nil, rt, err
		}
		return out.Values[0].(*Model), rt, nil
	}
	// Strength 0 hands the model through (ComfyUI returns it unchanged), even for a bad file.
	if got, _, err := run(base, "wide.safetensors", 0); err != nil || got != base {
		t.Fatalf("strength 0: %v %v", got, err)
	}
	m, rt, err := run(base, "mixed.safetensors", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if m == base || m.lora == nil || len(m.lora.patches) != 1 || m.lora.patches[0].Strength != 0.5 || base.lora != nil {
		t.Fatal("the patched handle is not a clone with one patch")
	}
	if len(rt.warns) != 1 || !strings.Contains(rt.warns[0], "3, first") && !strings.Contains(rt.warns[0], "3: ") ||
		!strings.Contains(rt.warns[0], "lora_te_layers_0_self_attn_q_proj.lora_up.weight") || !strings.Contains(rt.warns[0], "something_else.weight") {
		t.Errorf("warnings %q", rt.warns)
	}
	// Stacking keeps the earlier patches first.
	m2, _, err := run(m, "lora_file_kohya.safetensors", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.LoRAs(); !slices.Equal(got, []string{"mixed.safetensors", "lora_file_kohya.safetensors"}) || len(m2.lora.patches) != 10 {
		t.Fatalf("stack: %v, %d patches", got, len(m2.lora.patches))
	}
	if len(m.lora.patches) != 1 {
		t.Fatal("stacking changed the earlier handle")
	}
	for _, c := range []struct {
		file, typ, want string
	}{
		{"wide.safetensors", "ValueError", "does not fit"},
		{"missing.safetensors", "FileNotFoundError", "missing"},
	} {
		_, _, err := run(base, c.file, 1)
		var ne *Error
		if !errors.As(err, &ne) || ne.Type != c.typ || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s containing %q", c.file, err, c.typ, c.want)
		}
	}
	// A file that is not safetensors.
	if err := os.WriteFile(filepath.Join(loras, "junk.safetensors"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(base, "junk.safetensors", 1); err == nil || !strings.Contains(err.Error(), "junk.safetensors") {
		t.Errorf("junk file: %v", err)
	}
	if got := ListModels(env, "loras"); !slices.Contains(got, "mixed.safetensors") {
		t.Errorf("loras listed: %v", got)
	}
}

// TestLoraLoaderClip applies a LoRA with diffusion and text-encoder modules through LoraLoader
// and checks the CLIP half against an encoder loaded from a checkpoint whose weights were
// merged with the LoRA in float64 (no ComfyUI golden covers the text encoder half).
func TestLoraLoaderClip(t *testing.T) {
	gm := golden.MustLoad(t)
	env := tinyClipEnv(t)
	tinyDiTEnv(t, gm, env)
	model := loadTinyDiT(t, env)
	cl := NewInputs()
	cl.Set("clip_name", "tiny.safetensors")
	cl.Set("type", "lumina2")
	clip := exec(t, "CLIPLoader", cl, env).Values[0].(*Clip)
	shapes := clip.Encoder().ParamShapes()

	r := rand.New(rand.NewPCG(4, 2))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.3)
		}
		return v
	}
	f32 := func(v []float32, shape ...int) safetensors.Entry {
		b := make([]byte, 4*len(v))
		tensor.EncodeF32(b, v, tensor.F32)
		return safetensors.Entry{DType: safetensors.F32, Shape: shape, Data: b}
	}
	const strengthClip = 0.6
	entries := map[string]safetensors.Entry{}
	deltas := map[string][]float64{}
	for _, mod := range []struct{ key, param string }{
		{"lora_te_layers_0_self_attn_v_proj", "layers.0.self_attn.v_proj.weight"},
		{"text_encoders.qwen3_4b.transformer.model.layers.1.mlp.gate_proj", "layers.1.mlp.gate_proj.weight"},
		{"text_encoders.transformer.model.layers.2.self_attn.o_proj", "layers.2.self_attn.o_proj.weight"},
	} {
		out, in, rank := shapes[mod.param][0], shapes[mod.param][1], 3
		up, down := rnd(out*rank), rnd(rank*in)
		entries[mod.key+".lora_up.weight"] = f32(up, out, rank)
		entries[mod.key+".lora_down.weight"] = f32(down, rank, in)
		entries[mod.key+".alpha"] = f32([]float32{1.5})
		d := make([]float64, out*in)
		for i := range out {
			for j := range in {
				var acc float64
				for k := range rank {
					acc += float64(up[i*rank+k]) * float64(down[k*in+j])
				}
				d[i*in+j] = strengthClip * 1.5 / float64(rank) * acc
			}
		}
		deltas[mod.param] = d
	}
	entries["diffusion_model.layers.0.attention.out.lora_up.weight"] = f32(rnd(256*2), 256, 2)
	entries["diffusion_model.layers.0.attention.out.lora_down.weight"] = f32(rnd(2*256), 2, 256)
	if err := os.MkdirAll(filepath.Join(env.ModelsDir, "loras"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(env.ModelsDir, "loras", "both.safetensors"), entries, nil); err != nil {
		t.Fatal(err)
	}

	// The reference encoder: merged weights, same sidecar and tokenizer.
	dir := filepath.Join(env.ModelsDir, "text_encoders")
	src, err := safetensors.Open(filepath.Join(dir, "tiny.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	merged := map[string]safetensors.Entry{}
	for _, n := range src.Names() {
		info, _ := src.Info(n)
		data, _ := src.Data(n)
		d, ok := deltas[strings.TrimPrefix(n, "model.")]
		if !ok {
			merged[n] = safetensors.Entry{DType: info.DType, Shape: info.Shape, Data: slices.Clone(data)}
			continue
		}
		if info.DType != safetensors.F32 {
			t.Fatalf("tiny encoder stored %s", info.DType)
		}
		x, _ := tensor.FromBytes(data, tensor.F32, info.Shape...)
		v, _ := x.ToFloat32()
		for i := range v {
			v[i] = float32(float64(v[i]) + d[i])
		}
		merged[n] = f32(v, info.Shape...)
	}
	src.Close()
	if len(merged) == 0 {
		t.Fatal("no tensors")
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "merged.safetensors"), merged, nil); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".config.json", ".tokenizer.json"} {
		linkFile(t, filepath.Join(dir, "tiny"+ext), filepath.Join(dir, "merged"+ext))
	}

	in := NewInputs()
	in.Set("model", model)
	in.Set("clip", clip)
	in.Set("lora_name", "both.safetensors")
	in.Set("strength_model", 0.8)
	in.Set("strength_clip", strengthClip)
	rt := &warnRuntime{testRuntime: testRuntime{env}}
	out, err := execRT(t, "LoraLoader", in, rt)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.warns) != 0 {
		t.Errorf("warnings: %q", rt.warns)
	}
	pm, pc := out.Values[0].(*Model), out.Values[1].(*Clip)
	if len(pm.lora.patches) != 1 || len(pc.lora.patches) != 3 || pc.lora.patches[0].Strength != strengthClip || clip.lora != nil {
		t.Fatal("patches were not split between the model and the clip")
	}
	encode := func(c *Clip) []float32 {
		e := NewInputs()
		e.Set("clip", c)
		e.Set("text", "a red fox in the snow")
		return exec(t, "CLIPTextEncode", e, env).Values[0].(*Conditioning).Entries[0].Hidden
	}
	cl.Set("clip_name", "merged.safetensors")
	ref := exec(t, "CLIPLoader", cl, env).Values[0].(*Clip)
	got, want, plain := encode(pc), encode(ref), encode(clip)
	var d, eff, am float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		eff = math.Max(eff, math.Abs(float64(plain[i]-want[i])))
		am = math.Max(am, math.Abs(float64(want[i])))
	}
	t.Logf("patched CLIP vs merged weights: max |Δ| %.3g (LoRA effect %.3g, |h| ≤ %.3g)", d, eff, am)
	if d > 2e-5*am || eff < 100*d {
		t.Fatalf("patched CLIP differs from the merged reference by %g (effect %g)", d, eff)
	}
	if !slices.Equal(encode(clip), plain) {
		t.Fatal("the unpatched CLIP changed")
	}

	// Both strengths 0 hand both inputs through; a clip strength of 0 leaves the CLIP as is.
	in.Set("strength_model", 0.0)
	in.Set("strength_clip", 0.0)
	out, err = execRT(t, "LoraLoader", in, rt)
	if err != nil || out.Values[0] != model || out.Values[1] != clip {
		t.Fatalf("strengths 0: %v", err)
	}
	in.Set("strength_model", 1.0)
	out, err = execRT(t, "LoraLoader", in, rt)
	if err != nil {
		t.Fatal(err)
	}
	if c := out.Values[1].(*Clip); c.lora != nil || !slices.Equal(encode(c), plain) {
		t.Fatal("strength_clip 0 changed the CLIP")
	}
}

// TestLoraDyPEChain runs ComfyUI-DyPE's Z-Image example chain with a LoRA on the tiny models:
// UNETLoader → LoraLoaderModelOnly → DyPE_FLUX → ModelSamplingAuraFlow → KSampler.
func TestLoraDyPEChain(t *testing.T) {
	gm := golden.MustLoad(t)
	env := loraEnv(t, gm)
	cond := &Conditioning{Entries: []CondEntry{{Tokens: 5, Dim: 64, Hidden: func() []float32 {
		v := make([]float32, 5*64)
		for i := range v {
			v[i] = float32(math.Sin(float64(i)))
		}
		return v
	}()}}}
	sample := func(file string, strength float64) []float32 {
		m := loadTinyDiT(t, env)
		if file != "" {
			m = loraOnly(t, env, m, file, strength)
		}
		dy := NewInputs()
		dy.Set("model", m)
		for k, v := range map[string]any{"width": intIn(256), "height": intIn(256), "model_type": "zimage", "method": "vision_yarn",
			"yarn_alt_scaling": false, "enable_dype": true, "base_resolution": intIn(128), "dype_start_sigma": 1.0,
			"dype_scale": 2.0, "dype_exponent": 2.0, "base_shift": 0.5, "max_shift": 1.15} {
			dy.Set(k, v)
		}
		m = exec(t, "DyPE_FLUX", dy, env).Values[0].(*Model)
		ms := NewInputs()
		ms.Set("model", m)
		ms.Set("shift", 3.0)
		m = exec(t, "ModelSamplingAuraFlow", ms, env).Values[0].(*Model)
		el := NewInputs()
		el.Set("width", intIn(256))
		el.Set("height", intIn(256))
		el.Set("batch_size", intIn(1))
		latent := exec(t, "EmptySD3LatentImage", el, env).Values[0].(*Latent)
		ks := NewInputs()
		ks.Set("model", m)
		ks.Set("seed", new(big.Int).SetUint64(7))
		ks.Set("steps", intIn(2))
		ks.Set("cfg", 1.0)
		ks.Set("sampler_name", "euler")
		ks.Set("scheduler", "simple")
		ks.Set("positive", cond)
		ks.Set("negative", cond)
		ks.Set("latent_image", latent)
		ks.Set("denoise", 1.0)
		return exec(t, "KSampler", ks, env).Values[0].(*Latent).Samples
	}
	plain := sample("", 0)
	zero := sample("lora_file_comfy.safetensors", 0)
	withLoRA := sample("lora_file_comfy.safetensors", 0.8)
	if !slices.Equal(zero, plain) {
		t.Error("a LoRA of strength 0 changed the result")
	}
	var d float64
	for i := range plain {
		if math.IsNaN(float64(withLoRA[i])) {
			t.Fatal("NaN in the LoRA result")
		}
		d = math.Max(d, math.Abs(float64(withLoRA[i]-plain[i])))
	}
	if d < 1e-3 {
		t.Errorf("the LoRA changes the sampled latent by only %g", d)
	}
}
