package qwen3

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// randomModel returns the tensors of a Qwen3 decoder with random weights in HF naming
// (outer + "model.…", or outer + "…" when bare), stored as dt.
func randomModel(tb testing.TB, c Config, dt safetensors.DType, outer string, bare bool, seed uint64) map[string]safetensors.Entry {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	p := outer + "model."
	if bare {
		p = outer
	}
	out := map[string]safetensors.Entry{}
	add := func(name string, scale, offset float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(offset + scale*(2*r.Float64()-1))
		}
		out[name] = entry(tb, dt, v, shape...)
	}
	H, D, I := c.HiddenSize, c.HeadDim, c.IntermediateSize
	q, kv := c.NumAttentionHeads*D, c.NumKeyValueHeads*D
	add(p+"embed_tokens.weight", 1, 0, c.VocabSize, H)
	add(p+"norm.weight", 0.2, 1, H)
	for l := range c.NumHiddenLayers {
		lp := fmt.Sprintf("%slayers.%d.", p, l)
		add(lp+"input_layernorm.weight", 0.2, 1, H)
		add(lp+"post_attention_layernorm.weight", 0.2, 1, H)
		add(lp+"self_attn.q_proj.weight", 1/math.Sqrt(float64(H)), 0, q, H)
		add(lp+"self_attn.k_proj.weight", 1/math.Sqrt(float64(H)), 0, kv, H)
		add(lp+"self_attn.v_proj.weight", 1/math.Sqrt(float64(H)), 0, kv, H)
		add(lp+"self_attn.o_proj.weight", 1/math.Sqrt(float64(q)), 0, H, q)
		add(lp+"self_attn.q_norm.weight", 0.2, 1, D)
		add(lp+"self_attn.k_norm.weight", 0.2, 1, D)
		add(lp+"mlp.gate_proj.weight", 1/math.Sqrt(float64(H)), 0, I, H)
		add(lp+"mlp.up_proj.weight", 1/math.Sqrt(float64(H)), 0, I, H)
		add(lp+"mlp.down_proj.weight", 1/math.Sqrt(float64(I)), 0, H, I)
	}
	return out
}

// entry encodes values as a safetensors entry of type dt.
func entry(tb testing.TB, dt safetensors.DType, v []float32, shape ...int) safetensors.Entry {
	tb.Helper()
	tdt, err := tensor.ParseDType(string(dt))
	if err != nil {
		tb.Fatal(err)
	}
	data := make([]byte, len(v)*tdt.Size())
	if err := tensor.EncodeF32(data, v, tdt); err != nil {
		tb.Fatal(err)
	}
	return safetensors.Entry{DType: dt, Shape: shape, Data: data}
}

// parsed turns entries into an in-memory safetensors file.
func parsed(tb testing.TB, entries map[string]safetensors.Entry) *safetensors.File {
	tb.Helper()
	data, err := safetensors.Marshal(entries, nil)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := safetensors.Parse("random.safetensors", data)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// refWeights decodes the entries to float64.
func refWeights(tb testing.TB, entries map[string]safetensors.Entry, prefix string) func(name string) []float64 {
	return func(name string) []float64 {
		e, ok := entries[prefix+name]
		if !ok {
			tb.Fatalf("reference: no tensor %s%s", prefix, name)
		}
		dt, _ := tensor.ParseDType(string(e.DType))
		n := len(e.Data) / dt.Size()
		f := make([]float32, n)
		if err := tensor.DecodeF32(f, e.Data, dt); err != nil {
			tb.Fatal(err)
		}
		out := make([]float64, n)
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
}

// refForward is a direct float64 transcription of zimage.md §3 (and ComfyUI's Llama2_ with its
// additive mask), written independently of the package: it returns the output of every layer,
// each [n·hidden].
func refForward(c Config, w func(string) []float64, ids, mask []int) [][]float64 {
	n, H, D := len(ids), c.HiddenSize, c.HeadDim
	hq, hkv, I := c.NumAttentionHeads, c.NumKeyValueHeads, c.IntermediateSize
	eps := c.RMSNormEps
	rms := func(x []float64, g []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v * inv * g[i]
		}
		return out
	}
	lin := func(x []float64, wt []float64, rows int) []float64 { // x·wᵀ, wt [rows, len(x)]
		out := make([]float64, rows)
		k := len(x)
		for r := range rows {
			var s float64
			for j, v := range x {
				s += v * wt[r*k+j]
			}
			out[r] = s
		}
		return out
	}
	emb := w("embed_tokens.weight")
	x := make([][]float64, n)
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[id*H:(id+1)*H]...)
	}
	fill := -float64(math.MaxFloat32) / 4
	bias := func(i, j int) float64 {
		if mask == nil {
			if j > i {
				return math.Inf(-1)
			}
			return 0
		}
		var b float64
		if mask[j] == 0 {
			b += fill
		}
		if j > i {
			b += fill
		}
		return b
	}
	rope := func(v []float64, p int) {
		half := D / 2
		for k := range half {
			a := float64(p) * math.Pow(c.RoPETheta, -float64(2*k)/float64(D))
			co, si := math.Cos(a), math.Sin(a)
			x0, x1 := v[k], v[k+half]
			v[k], v[k+half] = x0*co-x1*si, x1*co+x0*si
		}
	}
	var outs [][]float64
	for l := range c.NumHiddenLayers {
		g := func(s string) []float64 { return w(fmt.Sprintf("layers.%d.%s", l, s)) }
		qs, ks, vs := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for i := range n {
			h := rms(x[i], g("input_layernorm.weight"))
			qs[i] = lin(h, g("self_attn.q_proj.weight"), hq*D)
			ks[i] = lin(h, g("self_attn.k_proj.weight"), hkv*D)
			vs[i] = lin(h, g("self_attn.v_proj.weight"), hkv*D)
			for hh := range hq {
				copy(qs[i][hh*D:], rms(qs[i][hh*D:(hh+1)*D], g("self_attn.q_norm.weight")))
				rope(qs[i][hh*D:(hh+1)*D], i)
			}
			for hh := range hkv {
				copy(ks[i][hh*D:], rms(ks[i][hh*D:(hh+1)*D], g("self_attn.k_norm.weight")))
				rope(ks[i][hh*D:(hh+1)*D], i)
			}
		}
		for i := range n {
			att := make([]float64, hq*D)
			for hh := range hq {
				kh := hh / (hq / hkv)
				sc := make([]float64, n)
				mx := math.Inf(-1)
				for j := range n {
					var s float64
					for d := range D {
						s += qs[i][hh*D+d] * ks[j][kh*D+d]
					}
					sc[j] = s/math.Sqrt(float64(D)) + bias(i, j)
					mx = max(mx, sc[j])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := range n {
					for d := range D {
						att[hh*D+d] += sc[j] / sum * vs[j][kh*D+d]
					}
				}
			}
			o := lin(att, g("self_attn.o_proj.weight"), H)
			for d := range H {
				x[i][d] += o[d]
			}
			h := rms(x[i], g("post_attention_layernorm.weight"))
			gate := lin(h, g("mlp.gate_proj.weight"), I)
			up := lin(h, g("mlp.up_proj.weight"), I)
			for d := range I {
				gate[d] = gate[d] / (1 + math.Exp(-gate[d])) * up[d]
			}
			down := lin(gate, g("mlp.down_proj.weight"), H)
			for d := range H {
				x[i][d] += down[d]
			}
		}
		flat := make([]float64, 0, n*H)
		for i := range n {
			flat = append(flat, x[i]...)
		}
		outs = append(outs, flat)
	}
	return outs
}
