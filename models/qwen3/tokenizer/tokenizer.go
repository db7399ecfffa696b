package tokenizer

import (
	"fmt"
	"strings"
)

// Tokenizer is a loaded byte-level BPE tokenizer. Build one with Load or Parse. It is safe for
// concurrent use.
type Tokenizer struct {
	vocab   map[string]int // model vocabulary and added tokens: token -> id
	tokens  []string       // id -> token ("" where no token has that id)
	decoded []string       // id -> the bytes the token stands for
	special []bool         // id -> is a special added token

	byteID [256]int32        // id of each byte's single-character token
	merges map[uint64]uint64 // mergeKey(left, right) -> mergeVal(rank, result)
	// wholeWords is the model vocabulary (added tokens excluded) when the model sets
	// ignore_merges: a piece found there is one token without merging. nil otherwise.
	wholeWords map[string]int

	useNFC     bool         // apply NFC to the text between added tokens
	added      []AddedToken // as listed in the file
	raw        addedSet     // added tokens matched in the raw text (normalized: false)
	normalized addedSet     // added tokens matched in the normalised text (normalized: true)
	padToken   string       // "" when none could be determined
	cache      wordCache    // BPE results of repeated pieces
}

// Encode returns the token ids of text, without adding any special token (the
// add_special_tokens=False behaviour ComfyUI and the golden cases use). Added and special tokens
// written in the text itself ("<|im_start|>") are recognised.
func (t *Tokenizer) Encode(text string) []int {
	return t.AppendEncode(nil, text)
}

// AppendEncode appends the token ids of text to dst and returns the extended slice.
func (t *Tokenizer) AppendEncode(dst []int, text string) []int {
	text = validUTF8(text)
	if t.raw.empty() {
		return t.appendNormalized(dst, text)
	}
	t.raw.split(text, func(seg string) {
		dst = t.appendNormalized(dst, seg)
	}, func(id int) {
		dst = append(dst, id)
	})
	return dst
}

// appendNormalized normalises one stretch of raw text between added tokens, splits out the added
// tokens that match normalised text, and encodes the rest.
func (t *Tokenizer) appendNormalized(dst []int, seg string) []int {
	if seg == "" {
		return dst
	}
	if t.useNFC {
		seg = nfc(seg)
	}
	if t.normalized.empty() {
		return t.appendText(dst, seg)
	}
	t.normalized.split(seg, func(s string) {
		dst = t.appendText(dst, s)
	}, func(id int) {
		dst = append(dst, id)
	})
	return dst
}

// appendText pre-tokenises s and appends the BPE of every piece.
func (t *Tokenizer) appendText(dst []int, s string) []int {
	for i := 0; i < len(s); {
		j := nextPiece(s, i)
		dst = t.appendPiece(dst, s[i:j])
		i = j
	}
	return dst
}

// Decode returns the text the ids spell, special tokens included (the Hugging Face ByteLevel
// decoder; invalid UTF-8 in the result is replaced as described in the package comment).
func (t *Tokenizer) Decode(ids []int) (string, error) {
	return t.decode(ids, false)
}

// DecodeSkipSpecial is Decode with special tokens (such as <|im_start|>) left out.
func (t *Tokenizer) DecodeSkipSpecial(ids []int) (string, error) {
	return t.decode(ids, true)
}

func (t *Tokenizer) decode(ids []int, skipSpecial bool) (string, error) {
	var b strings.Builder
	for k, id := range ids {
		if !t.known(id) {
			return "", fmt.Errorf("qwen3 tokenizer: decode: id %d at position %d is not in the vocabulary (ids 0..%d)", id, k, len(t.tokens)-1)
		}
		if skipSpecial && t.special[id] {
			continue
		}
		b.WriteString(t.decoded[id])
	}
	return validUTF8(b.String()), nil
}

func (t *Tokenizer) known(id int) bool {
	return id >= 0 && id < len(t.tokens) && t.tokens[id] != ""
}

// Token returns the token with the given id as the vocabulary spells it (byte-level alphabet
// for model tokens, e.g. "Ġcat"; verbatim for added tokens).
func (t *Tokenizer) Token(id int) (string, bool) {
	if !t.known(id) {
		return "", false
	}
	return t.tokens[id], true
}

// Tokens maps ids to their tokens; an unknown id is an error.
func (t *Tokenizer) Tokens(ids []int) ([]string, error) {
	out := make([]string, len(ids))
	for k, id := range ids {
		tok, ok := t.Token(id)
		if !ok {
			return nil, fmt.Errorf("qwen3 tokenizer: id %d at position %d is not in the vocabulary", id, k)
		}
		out[k] = tok
	}
	return out, nil
}

// ID returns the id of a token spelled as in the vocabulary ("Ġcat", "<|im_end|>").
func (t *Tokenizer) ID(token string) (int, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// IsSpecial reports whether id is a special added token (skipped by DecodeSkipSpecial).
func (t *Tokenizer) IsSpecial(id int) bool {
	return t.known(id) && t.special[id]
}

// AddedTokens returns the added tokens (special or not) in the order the file lists them.
func (t *Tokenizer) AddedTokens() []AddedToken {
	return append([]AddedToken(nil), t.added...)
}

// VocabSize returns one more than the largest token id (151,669 for Qwen3; the encoder's
// embedding matrix may have more rows).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// PadToken returns the pad token's text, or "" when none is known. It comes from the
// tokenizer.json "padding" section, else the pad_token of tokenizer_config.json, else
// "<|endoftext|>" (Qwen's pad token) when the vocabulary has it.
func (t *Tokenizer) PadToken() string { return t.padToken }

// PadID returns the id of the pad token (151643, "<|endoftext|>", for Qwen3).
func (t *Tokenizer) PadID() (int, error) {
	if t.padToken == "" {
		return 0, fmt.Errorf("qwen3 tokenizer: no pad token: tokenizer.json has no padding section, no tokenizer_config.json names a pad_token, and the vocabulary has no %q", defaultPadToken)
	}
	id, ok := t.vocab[t.padToken]
	if !ok {
		return 0, fmt.Errorf("qwen3 tokenizer: pad token %q is not in the vocabulary", t.padToken)
	}
	return id, nil
}

// ClearCache empties the word cache (its memory is bounded anyway; this is for benchmarks and
// long-running processes that tokenised unusual text).
func (t *Tokenizer) ClearCache() { t.cache.reset() }
