package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
)

// smallTokenizer writes a byte-level tokenizer.json (the 256 byte tokens in byte order, one merge
// "a"+"b" → 256, and the chat template's special tokens) into dir and returns its path. It loads
// in milliseconds, unlike the real one.
func smallTokenizer(t *testing.T, dir string) string {
	t.Helper()
	vocab := map[string]int{}
	next := 256
	for b := range 256 {
		r := rune(b)
		if !((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) {
			r = rune(next)
			next++
		}
		vocab[string(r)] = b
	}
	vocab["ab"] = 256
	var added []map[string]any
	for i, s := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"} {
		added = append(added, map[string]any{"id": 300 + i, "content": s, "single_word": false, "lstrip": false,
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
			"vocab": vocab, "merges": []any{[]any{"a", "b"}}},
	}
	data, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, tokenizer.FileName)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runTokenizeCmd(t *testing.T, args ...string) (code int, out tokenizeOutput, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runMain(append([]string{"tokenize"}, args...), &o, &e)
	if code == 0 && o.Len() > 0 {
		dec := json.NewDecoder(bytes.NewReader(o.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("output is not the tokenize JSON: %v\n%s", err, o.String())
		}
		if strings.Count(o.String(), "\n") != 1 || !strings.HasSuffix(o.String(), "\n") {
			t.Errorf("output is not one JSON line: %q", o.String())
		}
	}
	return code, out, o.String(), e.String()
}

func TestTokenize(t *testing.T) {
	dir := t.TempDir()
	small := smallTokenizer(t, dir)
	tmpl := []int{301, 'u', 's', 'e', 'r', '\n'}
	tail := []int{302, '\n', 301, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', '\n'}
	withTemplate := func(ids ...int) []int { return slices.Concat(tmpl, ids, tail) }
	tests := []struct {
		name   string
		args   []string
		ids    []int
		tokens []string // checked when not nil
	}{
		{"none", []string{"--tokenizer", small, "--template", "none", "ab c"}, []int{256, ' ', 'c'}, []string{"ab", "Ġ", "c"}},
		{"zimage default", []string{"--tokenizer", small, "ab"}, withTemplate(256), nil},
		{"flags after the text", []string{"ab", "--template=none", "--tokenizer", small}, []int{256}, []string{"ab"}},
		{"folder", []string{"--tokenizer", dir, "--template", "none", "x"}, []int{'x'}, []string{"x"}},
		{"dash text after --", []string{"--tokenizer", small, "--template", "none", "--", "-x"}, []int{'-', 'x'}, nil},
		{"empty text", []string{"--tokenizer", small, "--template", "none", ""}, []int{}, []string{}},
		{"special tokens unescaped", []string{"--tokenizer", small, "--template", "none", "<|im_end|>"}, []int{302}, []string{"<|im_end|>"}},
		{"ComfyUI escapes", []string{"--tokenizer", small, `\(ab\)`}, withTemplate('(', 256, ')'), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stdout, stderr := runTokenizeCmd(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !slices.Equal(out.IDs, tc.ids) {
				t.Errorf("ids %v, want %v", out.IDs, tc.ids)
			}
			if len(out.Tokens) != len(out.IDs) {
				t.Errorf("%d tokens for %d ids", len(out.Tokens), len(out.IDs))
			}
			if tc.tokens != nil && !slices.Equal(out.Tokens, tc.tokens) {
				t.Errorf("tokens %q, want %q", out.Tokens, tc.tokens)
			}
			if strings.Contains(stdout, `\u003c`) || strings.Contains(stdout, "null") {
				t.Errorf("output %s escapes < or prints null", stdout)
			}
		})
	}
}

// TestTokenizeQwen3 checks the real tokenizer's Z-Image ids.
func TestTokenizeQwen3(t *testing.T) {
	shared, err := golden.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shared, "tokenizer", "qwen3", tokenizer.FileName)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no shared Qwen3 tokenizer: %v", err)
	}
	code, out, stdout, stderr := runTokenizeCmd(t, "--tokenizer", path, "a cat")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := []int{151644, 872, 198, 64, 8251, 151645, 198, 151644, 77091, 198}; !slices.Equal(out.IDs, want) {
		t.Errorf("ids %v, want %v", out.IDs, want)
	}
	if want := []string{"<|im_start|>", "user", "Ċ", "a", "Ġcat", "<|im_end|>", "Ċ", "<|im_start|>", "assistant", "Ċ"}; !slices.Equal(out.Tokens, want) {
		t.Errorf("tokens %q, want %q", out.Tokens, want)
	}
	if !strings.HasPrefix(stdout, `{"ids":[151644,`) {
		t.Errorf("output %s", stdout)
	}
}

// TestTokenizeDefaultLocation: without --tokenizer the tokenizer is looked for beside
// models/text_encoders/qwen_3_4b.safetensors, and the error names every place looked.
func TestTokenizeDefaultLocation(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	code, _, _, stderr := runTokenizeCmd(t, "a cat")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	for _, p := range []string{
		filepath.Join("models", "text_encoders", "qwen_3_4b.tokenizer.json"),
		filepath.Join("models", "text_encoders", "tokenizer.json"),
		filepath.Join("models", "text_encoders", "tokenizer", "tokenizer.json"),
		"--tokenizer",
	} {
		if !strings.Contains(stderr, p) {
			t.Errorf("error does not name %s:\n%s", p, stderr)
		}
	}
	te := filepath.Join(work, "models", "text_encoders")
	if err := os.MkdirAll(te, 0o755); err != nil {
		t.Fatal(err)
	}
	smallTokenizer(t, te)
	code, out, _, stderr := runTokenizeCmd(t, "--template", "none", "ab")
	if code != 0 || !slices.Equal(out.IDs, []int{256}) {
		t.Fatalf("exit %d, ids %v: %s", code, out.IDs, stderr)
	}
}

func TestTokenizeErrors(t *testing.T) {
	dir := t.TempDir()
	small := smallTokenizer(t, dir)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no text", []string{"--tokenizer", small}, 2, "want exactly one TEXT"},
		{"two texts", []string{"--tokenizer", small, "a", "b"}, 2, "got 2 arguments"},
		{"bad template", []string{"--tokenizer", small, "--template", "chatml", "a"}, 2, `unknown --template "chatml"`},
		{"unknown flag", []string{"--bogus", "a"}, 2, "bogus"},
		{"help", []string{"-h"}, 0, "usage: dypegraph tokenize"},
		{"missing tokenizer", []string{"--tokenizer", filepath.Join(dir, "absent.json"), "a"}, 1, "absent.json"},
		{"not a tokenizer", []string{"--tokenizer", writeFile(t, dir, "bad.json", `{"model": 1}`), "a"}, 1, "bad.json"},
		{"whitespace embedding name", []string{"--tokenizer", small, "a embedding: embedding:b"}, 1, "IndexError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stdout, stderr := runTokenizeCmd(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %s)", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not contain %q:\n%s", tc.want, stderr)
			}
			if tc.code != 0 && stdout != "" {
				t.Errorf("stdout on failure: %q", stdout)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
