package lora

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// checkResult checks what must hold for any resolved file: the unloaded names are sorted file
// tensors, every patch targets a parameter of the map's model and is well formed, and a patch
// that passes Check on a parameter made to its measure applies without error.
func checkResult(t *testing.T, be tensor.Backend, names []string, km *KeyMap, res *Result) {
	if !slices.IsSorted(res.NotLoaded) {
		t.Fatalf("NotLoaded not sorted: %q", res.NotLoaded)
	}
	for _, n := range res.NotLoaded {
		if !slices.Contains(names, n) {
			t.Fatalf("NotLoaded has %q, not a tensor of the file", n)
		}
	}
	for i := range res.Patches {
		p := &res.Patches[i]
		if !km.HasParam(p.Target.Model, p.Target.Param) {
			t.Fatalf("patch for %s, not a parameter", p.Target)
		}
		if p.Kind == KindLoRA && (p.Up.Rank() != 2 || p.Down.Rank() != 2 || p.Up.Dim(1) != p.Rank()) {
			t.Fatalf("malformed LoRA patch %v %v", p.Up.Shape(), p.Down.Shape())
		}
		var shape []int
		switch p.Kind {
		case KindLoRA:
			shape = []int{p.Target.Start + p.Rows(), p.Down.Dim(1)}
		default:
			shape = append([]int{p.Target.Start + p.Rows()}, p.Diff.Shape()[min(1, p.Diff.Rank()):]...)
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if Check(p, shape) != nil || n > 1<<16 || n == 0 {
			continue
		}
		base, err := tensor.Zeros(tensor.BF16, shape...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Apply(be, base, 0, shape, []Patch{*p})
		if err != nil {
			t.Fatalf("Apply after a passing Check: %v", err)
		}
		be.Free(out)
	}
}

// FuzzResolve feeds arbitrary bytes as a LoRA file: parsing and resolving never panic, and
// what resolves is consistent.
func FuzzResolve(f *testing.F) {
	f.Add([]byte("not a safetensors file"))
	for _, files := range []map[string]ent{
		{"diffusion_model.layers.0.attention.qkv.lora_up.weight": mat(24, 2, 1), "diffusion_model.layers.0.attention.qkv.lora_down.weight": mat(2, 8, 1),
			"diffusion_model.layers.0.attention.qkv.alpha": scalarOf(safetensors.F16, 2)},
		{"transformer.layers.0.attention.to_q.lora_B.weight": mat(8, 2, 1).as(safetensors.BF16), "transformer.layers.0.attention.to_q.lora_A.weight": mat(2, 8, 1).as(safetensors.BF16),
			"diffusion_model.layers.0.attention_norm1.diff": {dt: safetensors.F32, shape: []int{8}, vals: make([]float32, 8)}},
	} {
		b, err := safetensors.Marshal(toEntries(f, files), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if dir, err := golden.Dir(); err == nil {
		for _, n := range []string{"lora_file_stack_a.safetensors", "lora_file_kohya.safetensors"} {
			if b, err := os.ReadFile(dir + "/" + n); err == nil {
				f.Add(b)
			}
		}
	}
	km := tinyKeyMap()
	be := testBackend(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := safetensors.Parse("fuzz", data)
		if err != nil {
			return
		}
		res, err := Read("fuzz", sf).Resolve(km)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		checkResult(t, be, sf.Names(), km, res)
	})
}

// FuzzKeyNames resolves files whose tensor names are arbitrary (newline-separated): the key
// mapping never panics and every patch comes from a name of the key map.
func FuzzKeyNames(f *testing.F) {
	for _, s := range []string{
		"diffusion_model.layers.0.attention.qkv.lora_up.weight\ndiffusion_model.layers.0.attention.qkv.lora_down.weight",
		"lora_unet_layers_0_feed_forward_w1.lora_up.weight\nlora_unet_layers_0_feed_forward_w1.lora_down.weight\nlora_unet_layers_0_feed_forward_w1.alpha",
		"transformer.layers.0.attention.to_k.lora_B\ntransformer.layers.0.attention.to_k.lora_A\nlora_te_x.lora_up.weight",
		"diffusion_model.x_embedder.diff_b\ndiffusion_model.cap_embedder.0.set_weight\n.lora_up.weight\n.alpha",
		"layers.0.attention.to_out.0_lora.up.weight\nlayers.0.attention.to_out.0_lora.down.weight",
	} {
		f.Add(s)
	}
	km := tinyKeyMap()
	be := testBackend(f)
	f.Fuzz(func(t *testing.T, s string) {
		names := slices.Compact(slices.Sorted(slices.Values(strings.Split(s, "\n"))))
		if len(names) > 64 {
			return
		}
		files := map[string]ent{}
		for _, n := range names {
			if n == "" || n == "__metadata__" {
				continue
			}
			if strings.HasSuffix(n, ".alpha") {
				files[n] = scalarOf(safetensors.F32, 2)
			} else {
				files[n] = mat(2, 2, 1)
			}
		}
		b, err := safetensors.Marshal(toEntries(t, files), nil)
		if err != nil {
			return // names the format cannot hold
		}
		sf, err := safetensors.Parse("fuzz", b)
		if err != nil {
			t.Fatalf("a file the writer made does not parse: %v", err)
		}
		res, err := Read("fuzz", sf).Resolve(km)
		if err != nil {
			return
		}
		for _, p := range res.Patches {
			m := p.Module
			for _, suf := range []string{".diff_b", ".diff", ".w_norm", ".b_norm", ".set_weight"} {
				m = strings.TrimSuffix(m, suf)
			}
			if _, ok := km.Lookup(m); !ok {
				t.Fatalf("patch from module %q, not in the key map", p.Module)
			}
		}
		checkResult(t, be, sf.Names(), km, res)
	})
}

func toEntries(t testing.TB, files map[string]ent) map[string]safetensors.Entry {
	entries := map[string]safetensors.Entry{}
	for n, e := range files {
		dt, err := tensor.ParseDType(string(e.dt))
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, len(e.vals)*dt.Size())
		if err := tensor.EncodeF32(data, e.vals, dt); err != nil {
			t.Fatal(err)
		}
		entries[n] = safetensors.Entry{DType: e.dt, Shape: e.shape, Data: data}
	}
	return entries
}
