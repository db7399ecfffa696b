package qwen3

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
	"github.com/dypegraph/dypegraph/models/safetensors"
)

var sharedTok struct {
	sync.Once
	tok *tokenizer.Tokenizer
	err error
}

// qwenTokenizer loads the shared Qwen3 tokenizer (shared/tokenizer/qwen3) once.
func qwenTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	shared, err := golden.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shared, "tokenizer", "qwen3", tokenizer.FileName)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no shared Qwen3 tokenizer: %v", err)
	}
	sharedTok.Do(func() { sharedTok.tok, sharedTok.err = tokenizer.Load(path) })
	if sharedTok.err != nil {
		t.Fatal(sharedTok.err)
	}
	return sharedTok.tok
}

// TestZImageIDs checks ComfyUI's text handling: each case lists the pieces ComfyUI hands to the
// tokenizer one by one (worked out by hand from sd1_clip.SDTokenizer.tokenize_with_weights).
func TestZImageIDs(t *testing.T) {
	tok := qwenTokenizer(t)
	const head, tail = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"
	tests := []struct {
		name, prompt string
		pieces       []string
	}{
		{"plain", "a cat", []string{head + "a cat" + tail}},
		{"empty", "", []string{head + tail}},
		{"escaped parentheses", `\(masterpiece\), (x:1.2)`, []string{head + "(masterpiece), (x:1.2)" + tail}},
		{"backslash kept elsewhere", `a\b \\(c`, []string{head + `a\b \(c` + tail}},
		{"control pairs", "a\x00\x01b\x00\x02", []string{head + "a)b(" + tail}},
		{"special tokens in the prompt", "x<|endoftext|>y", []string{head + "x<|endoftext|>y" + tail}},
		{"embedding after a space", "a cat embedding:foo bar",
			[]string{head + "a cat ", "bar<|im_end|> <|im_start|>assistant"}},
		{"embedding first", "embedding:foo",
			[]string{head, "<|im_end|> <|im_start|>assistant"}},
		{"embedding after a tab, name with commas", "a\tembedding:,foo, b",
			[]string{head + "a\t", "o, b<|im_end|> <|im_start|>assistant"}},
		{"embedding after a no-break space, name cut at [", "a\u00a0embedding:x[y] z",
			[]string{head + "a\u00a0", "[y] z<|im_end|> <|im_start|>assistant"}},
		{"embedding not after whitespace", "x,embedding:foo", []string{head + "x,embedding:foo" + tail}},
		{"two embeddings", "embedding:a b embedding:c",
			[]string{head, "b", "<|im_end|> <|im_start|>assistant"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ZImageIDs(tok, tc.prompt)
			if err != nil {
				t.Fatal(err)
			}
			var want []int
			for _, p := range tc.pieces {
				want = append(want, tok.Encode(p)...)
			}
			if !slices.Equal(got, want) {
				gt, _ := tok.Tokens(got)
				wt, _ := tok.Tokens(want)
				t.Fatalf("ids %v\n%q\nwant %v\n%q", got, gt, want, wt)
			}
		})
	}
	// Ordinary prompts: exactly the tokenizer's own template encoding.
	for _, p := range []string{"a cat", "一只猫 🐱", "line\nbreaks\r\n", "  spaces  "} {
		got, _ := ZImageIDs(tok, p)
		if want := tok.EncodeZImage(p); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want EncodeZImage's %v", p, got, want)
		}
	}
	// The known template ids.
	got, _ := ZImageIDs(tok, "a cat")
	if want := []int{151644, 872, 198, 64, 8251, 151645, 198, 151644, 77091, 198}; !slices.Equal(got, want) {
		t.Errorf("a cat: %v, want %v", got, want)
	}
	// ComfyUI fails on an embedding name that is only whitespace.
	if _, err := ZImageIDs(tok, "a embedding: embedding:b"); err == nil || !strings.Contains(err.Error(), "IndexError") {
		t.Errorf("whitespace-only embedding name: %v, want an error", err)
	}
	if _, err := ZImageIDs(nil, "x"); err == nil {
		t.Error("nil tokenizer: no error")
	}
}

// byteLevel is GPT-2's bytes_to_unicode table: printable bytes map to themselves, the others to
// U+0100 onwards in byte order.
func byteLevel() [256]rune {
	var m [256]rune
	next := rune(256)
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff) {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
	}
	return m
}

// tinyTokenizer is a byte-level tokenizer whose ids fit the tiny encoders: the 256 bytes (ids
// 0..255), no merges, and the chat template's special tokens at 256.. (pad = <|endoftext|>).
func tinyTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	vocab := map[string]int{}
	for b, r := range byteLevel() {
		vocab[string(r)] = b
	}
	var added []map[string]any
	for i, s := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"} {
		added = append(added, map[string]any{"id": 256 + i, "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true})
	}
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	tree := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer": map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": tokenizer.QwenPattern}, "behavior": "Isolated", "invert": false},
			bl,
		}},
		"post_processor": bl, "decoder": bl,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []any{}},
	}
	data, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pad, err := tok.PadID(); err != nil || pad != 256 {
		t.Fatalf("tiny tokenizer pad %d, %v", pad, err)
	}
	return tok
}

// TestEncodeZImage runs the whole ComfyUI text path on a tiny encoder: the hidden state is the
// encoder's output for the templated ids, and a prompt containing the pad token gets ComfyUI's
// mask, which changes the rows after it and nothing before.
func TestEncodeZImage(t *testing.T) {
	be := newCPU(t)
	tok := tinyTokenizer(t)
	cfg := tinyConfig(4, 2, 16)
	enc, err := New(parsed(t, randomModel(t, cfg, safetensors.BF16, "", false, 11)), be, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ctx := context.Background()
	tests := []struct {
		name, prompt string
		valid        int // tokens before the first masked one; -1: all
	}{
		{"plain", "a red fox", -1},
		{"escaped", `\(fox\)`, -1},
		{"pad token in the prompt", "fox<|endoftext|>hidden", len(tok.Encode("<|im_start|>user\nfox"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := enc.EncodeZImage(ctx, tok, tc.prompt)
			if err != nil {
				t.Fatal(err)
			}
			ids, _ := ZImageIDs(tok, tc.prompt)
			if !slices.Equal(e.IDs, ids) {
				t.Fatalf("ids %v, want %v", e.IDs, ids)
			}
			n := len(ids)
			if !e.Hidden.ShapeIs(1, n, cfg.HiddenSize) {
				t.Fatalf("hidden %v, want [1 %d %d]", e.Hidden.Shape(), n, cfg.HiddenSize)
			}
			got := readBack(t, be, e.Hidden)
			wantMask := AttentionMask(ids, 256)
			if !slices.Equal(e.Mask, wantMask) {
				t.Fatalf("mask %v, want %v", e.Mask, wantMask)
			}
			ref, err := enc.HiddenMasked(ctx, ids, e.Mask)
			if err != nil {
				t.Fatal(err)
			}
			if r := readBack(t, be, ref); !slices.Equal(got, r) {
				t.Error("hidden state differs from HiddenMasked(ids, mask)")
			}
			plain, err := enc.Hidden(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			p := readBack(t, be, plain)
			H := cfg.HiddenSize
			if tc.valid < 0 {
				if !e.AllValid() || e.NumTokens != n {
					t.Errorf("mask %v, num_tokens %d; want all valid, %d", e.Mask, e.NumTokens, n)
				}
				if d, _ := maxAbsDiff(got, p); d > 1e-6 {
					t.Errorf("differs from the unmasked hidden state by %g", d)
				}
				return
			}
			if e.AllValid() || e.NumTokens != tc.valid {
				t.Errorf("num_tokens %d, want %d (mask %v)", e.NumTokens, tc.valid, e.Mask)
			}
			if d, _ := maxAbsDiff(got[:tc.valid*H], p[:tc.valid*H]); d > 1e-6 {
				t.Errorf("rows before the pad token differ by %g", d)
			}
			if d, _ := maxAbsDiff(got[tc.valid*H:], p[tc.valid*H:]); d < 1e-3 {
				t.Errorf("rows from the pad token on differ by only %g: mask not applied", d)
			}
		})
	}
	// The real tokenizer's ids do not fit a 300-token model: a clear error.
	if _, err := enc.EncodeZImage(ctx, qwenTokenizer(t), "a cat"); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("real tokenizer on a tiny model: %v", err)
	}
	if _, err := enc.EncodeZImage(ctx, nil, "a cat"); err == nil {
		t.Error("nil tokenizer: no error")
	}
}
