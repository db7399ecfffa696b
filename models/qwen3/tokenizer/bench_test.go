package tokenizer

import (
	"os"
	"strings"
	"testing"
)

// benchTexts returns named inputs: a typical prompt, CJK text, and a ~100 KB mixed corpus made
// of all golden texts repeated.
func benchTexts(b *testing.B) []struct{ name, text string } {
	var all strings.Builder
	for _, c := range goldenCases(b) {
		all.WriteString(c.Text)
		all.WriteString("\n")
	}
	corpus := strings.Repeat(all.String(), 1+100_000/all.Len())
	return []struct{ name, text string }{
		{"prompt", "A detailed mountain landscape at golden hour, 8k, photorealistic, a small wooden cabin " +
			"beside a frozen lake, soft volumetric light, ultra sharp focus"},
		{"cjk", "一只在阳光下睡觉的猫，超高清，细节丰富。猫が日差しの中で眠っている。고양이가 햇볕에서 자고 있다"},
		{"mixed_100KB", corpus},
	}
}

// BenchmarkEncode measures throughput with a warm word cache (repeated words, the usual case)
// and a cold one (every piece run through BPE).
func BenchmarkEncode(b *testing.B) {
	tok := qwen(b)
	for _, tc := range benchTexts(b) {
		b.Run(tc.name+"/warm", func(b *testing.B) {
			ids := tok.AppendEncode(nil, tc.text)
			b.SetBytes(int64(len(tc.text)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ids = tok.AppendEncode(ids[:0], tc.text)
			}
			b.ReportMetric(float64(len(ids)), "tokens/op")
		})
		b.Run(tc.name+"/cold", func(b *testing.B) {
			b.SetBytes(int64(len(tc.text)))
			b.ReportAllocs()
			var ids []int
			for i := 0; i < b.N; i++ {
				tok.ClearCache()
				ids = tok.AppendEncode(ids[:0], tc.text)
			}
		})
	}
}

func BenchmarkEncodeParallel(b *testing.B) {
	tok := qwen(b)
	text := benchTexts(b)[0].text
	b.SetBytes(int64(len(text)))
	b.RunParallel(func(pb *testing.PB) {
		var ids []int
		for pb.Next() {
			ids = tok.AppendEncode(ids[:0], text)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	tok := qwen(b)
	text := benchTexts(b)[2].text
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(qwenPath(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data, nil); err != nil {
			b.Fatal(err)
		}
	}
}
