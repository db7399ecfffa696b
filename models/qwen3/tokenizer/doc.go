// Package tokenizer is the Qwen2/Qwen3 byte-level BPE tokenizer that Z-Image's text encoder reads
// prompts with.
//
// It owns: loading and strictly validating a Hugging Face tokenizer.json (plus the optional
// tokenizer_config.json beside it, for the pad token); encoding text to token ids exactly as the
// Hugging Face "tokenizers" library does for Qwen (added/special tokens split out of the raw text,
// NFC normalisation, Qwen's pre-tokenizer pattern implemented by hand, byte-level BPE applied by
// merge rank); decoding ids back to text; the Z-Image chat template; and finding a user's
// tokenizer file next to a text-encoder file.
//
// It must not: know about tensors, model weights, nodes or the CLI; download anything; panic on
// any input (malformed files and invalid UTF-8 give errors or documented replacements). A
// Tokenizer is immutable after loading apart from an internal, bounded word cache, and is safe
// for concurrent use.
//
// Invalid UTF-8 in the text to encode is replaced, one U+FFFD per maximal invalid subsequence
// (the rule Python's bytes.decode(errors="replace") and Rust's from_utf8_lossy follow), before
// anything else happens; Decode applies the same rule to the bytes the ids spell.
package tokenizer
