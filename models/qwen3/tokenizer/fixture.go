package tokenizer

import (
	"encoding/json"
	"fmt"
)

// FixtureJSON returns a tokenizer.json for test fixtures and tiny random-weight models: Qwen's
// byte-level BPE with its real pre-tokenizer, the 256 byte tokens as ids 0..255, no merges,
// and Qwen's special tokens "<|endoftext|>" (the pad), "<|im_start|>", "<|im_end|>" from id 256.
// Every id fits a vocabulary of 259 or more, so it drives encoders far smaller than Qwen3-4B.
// It is not the Qwen3 tokenizer: text tokenises to one id per byte.
func FixtureJSON() ([]byte, error) {
	vocab := make(map[string]int, 256)
	for b := 0; b < 256; b++ {
		vocab[string(byteChar[b])] = b
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
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": QwenPattern}, "behavior": "Isolated", "invert": false},
			bl,
		}},
		"post_processor": bl, "decoder": bl,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []any{}},
	}
	data, err := json.MarshalIndent(tree, "", " ")
	if err != nil {
		return nil, fmt.Errorf("fixture tokenizer: %w", err)
	}
	return data, nil
}

// FixtureVocabSize is the smallest vocabulary FixtureJSON's ids fit.
const FixtureVocabSize = 259
