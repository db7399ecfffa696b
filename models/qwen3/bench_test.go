package qwen3

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
)

// BenchmarkHidden measures one forward pass (embedding to the hidden layer) and reports tokens/s:
//   - tiny: the golden tiny encoder (hidden 64, 4 layers), 13 tokens;
//   - mid: hidden 1024, 4 layers, 16/8 heads × 64, MLP 3072, BF16 weights, 128 tokens;
//   - 4b_width_2layers: two layers of the real Qwen3-4B size (hidden 2560, 32/8 heads × 128,
//     MLP 9728, BF16), 77 tokens; s_per_35_layers extrapolates to the 35 layers the real
//     encoder runs.
func BenchmarkHidden(b *testing.B) {
	be := newCPU(b)
	ids := func(n, vocab int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = (i*7919 + 13) % vocab
		}
		return out
	}
	run := func(b *testing.B, enc *Encoder, tokens []int, layers int) {
		ctx := context.Background()
		h, err := enc.Hidden(ctx, tokens) // warm the pool and the page cache
		if err != nil {
			b.Fatal(err)
		}
		be.Free(h)
		b.ResetTimer()
		for range b.N {
			h, err := enc.Hidden(ctx, tokens)
			if err != nil {
				b.Fatal(err)
			}
			be.Free(h)
		}
		s := b.Elapsed().Seconds()
		b.ReportMetric(float64(len(tokens)*b.N)/s, "tokens/s")
		if layers == 2 {
			b.ReportMetric(s/float64(b.N)/float64(layers)*35, "s_per_35_layers")
		}
	}
	b.Run("tiny", func(b *testing.B) {
		m := golden.MustLoad(b)
		enc, err := Load(filepath.Join(m.Dir, "qwen3_tiny_weights.safetensors"), be, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer enc.Close()
		run(b, enc, ids(13, enc.Config().VocabSize), 0)
	})
	random := func(b *testing.B, cfg Config, opts Options) *Encoder {
		enc, err := New(parsed(b, randomModel(b, cfg, safetensors.BF16, "", false, 1)), be, opts)
		if err != nil {
			b.Fatal(err)
		}
		return enc
	}
	b.Run("mid_1024x4_128tok", func(b *testing.B) {
		cfg := Config{VocabSize: 2048, HiddenSize: 1024, IntermediateSize: 3072, NumHiddenLayers: 4,
			NumAttentionHeads: 16, NumKeyValueHeads: 8, HeadDim: 64, RMSNormEps: 1e-6, RoPETheta: 1e6}
		enc := random(b, cfg, Options{LayerIdx: intp(-1)})
		defer enc.Close()
		run(b, enc, ids(128, cfg.VocabSize), 0)
	})
	b.Run("4b_width_2layers_77tok", func(b *testing.B) {
		cfg := Qwen3_4B()
		cfg.VocabSize, cfg.NumHiddenLayers = 1024, 2
		enc := random(b, cfg, Options{LayerIdx: intp(-1)})
		defer enc.Close()
		run(b, enc, ids(77, cfg.VocabSize), 2)
	})
}

// BenchmarkRoPETables is the per-call table cost (77 tokens, head_dim 128).
func BenchmarkRoPETables(b *testing.B) {
	for range b.N {
		ropeTables(77, 128, 1e6)
	}
}
