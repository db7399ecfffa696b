package qwen3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
	"github.com/dypegraph/dypegraph/tensor"
)

// Encoding is what ComfyUI's CLIPTextEncode produces for a Z-Image prompt, and what the DiT is
// conditioned on.
type Encoding struct {
	// Hidden is the caption feature tensor the DiT receives as context: float32 [1, n, hidden]
	// on the encoder's backend, one row per token id (no padding, nothing trimmed, masked rows
	// included). The caller frees it with the backend.
	Hidden *tensor.Tensor
	// IDs are the n token ids of the templated prompt.
	IDs []int
	// Mask is ComfyUI's attention_mask (1 = valid token), n entries. It shaped the encoder's
	// attention; the Z-Image DiT does not read it.
	Mask []int
	// NumTokens is ComfyUI's num_tokens condition, max(1, sum(Mask)); the Z-Image DiT does not
	// read it either.
	NumTokens int
}

// AllValid reports whether every mask entry is 1 (always the case unless the prompt contains
// the pad token "<|endoftext|>"). ComfyUI adds an attention_mask condition only when it is not.
func (enc *Encoding) AllValid() bool {
	for _, m := range enc.Mask {
		if m != 1 {
			return false
		}
	}
	return true
}

// EncodeZImage does what ComfyUI's CLIPTextEncode does with a Z-Image text encoder: ZImageIDs
// turns the prompt into token ids, AttentionMask computes the mask from the tokenizer's pad token,
// and the decoder returns the configured hidden state (layer L−2) for all ids.
func (e *Encoder) EncodeZImage(ctx context.Context, tok *tokenizer.Tokenizer, prompt string) (*Encoding, error) {
	if tok == nil {
		return nil, errors.New("qwen3: no tokenizer")
	}
	pad, err := tok.PadID()
	if err != nil {
		return nil, fmt.Errorf("qwen3: %w", err)
	}
	ids, err := ZImageIDs(tok, prompt)
	if err != nil {
		return nil, err
	}
	mask := AttentionMask(ids, pad)
	enc := &Encoding{IDs: ids, Mask: mask}
	for _, m := range mask {
		enc.NumTokens += m
	}
	enc.NumTokens = max(1, enc.NumTokens)
	var reqMask []int
	if !enc.AllValid() {
		reqMask = mask
	}
	if enc.Hidden, err = e.HiddenMasked(ctx, ids, reqMask); err != nil {
		return nil, err
	}
	return enc, nil
}

// AttentionMask computes ComfyUI's attention mask for a token sequence of a model without an end
// token (sd1_clip.SDClipModel.process_tokens with Qwen3's special_tokens {"pad": pad}): leading
// pad tokens are 0 (left padding); after the first other token, the first pad token and every
// token after it are 0; everything else is 1.
func AttentionMask(ids []int, pad int) []int {
	mask := make([]int, len(ids))
	eos, leftPad := false, false
	for i, id := range ids {
		if i == 0 && id == pad {
			leftPad = true
		}
		if eos || (leftPad && id == pad) {
			mask[i] = 0
		} else {
			mask[i] = 1
			leftPad = false
		}
		if !eos && id == pad && !leftPad {
			mask[i] = 0
			eos = true
		}
	}
	return mask
}

// embeddingIdentifier starts a textual-inversion reference in ComfyUI prompts.
const embeddingIdentifier = "embedding:"

// ZImageIDs returns the token ids ComfyUI's ZImageTokenizer produces for a prompt (weights
// disabled, no padding, no truncation, no start or end token):
//
//  1. the prompt goes into the chat template (tokenizer.ZImagePrompt);
//  2. backslash-escaped parentheses lose their backslash ("\(" → "(", "\)" → ")"), ComfyUI's
//     escape_important/unescape_important round trip, which also turns the raw control pairs
//     "\x00\x01" and "\x00\x02" into ")" and "(";
//  3. the text is split before every "embedding:" that follows a whitespace character; each
//     such piece names a textual-inversion embedding, which this package does not load, so it is
//     handled as ComfyUI handles a missing one: the name (up to the first whitespace, '<' or '[')
//     is dropped and the rest of the piece, its whitespace runs joined by single spaces, is
//     tokenised on its own (ComfyUI also logs a warning; its quirk for names with leading or
//     trailing commas is reproduced too);
//  4. each piece is encoded separately and the ids are concatenated; an empty result becomes one
//     pad token (min_length 1).
//
// For ordinary prompts this is exactly tok.EncodeZImage(prompt). The error case is an
// "embedding:" followed by nothing but whitespace before the next one, on which ComfyUI itself
// fails (IndexError).
func ZImageIDs(tok *tokenizer.Tokenizer, prompt string) ([]int, error) {
	if tok == nil {
		return nil, errors.New("qwen3: no tokenizer")
	}
	text := tokenizer.ZImagePrompt(prompt)
	text = strings.NewReplacer(`\)`, "\x00\x01", `\(`, "\x00\x02").Replace(text)
	text = strings.NewReplacer("\x00\x01", ")", "\x00\x02", "(").Replace(text)
	var ids []int
	for _, piece := range splitEmbeddings(text) {
		word := piece
		if name, ok := strings.CutPrefix(piece, embeddingIdentifier); ok {
			leftover, err := missingEmbedding(strings.Trim(name, "\n"))
			if err != nil {
				return nil, err
			}
			if leftover == "" {
				continue
			}
			word = leftover
		}
		ids = tok.AppendEncode(ids, word)
	}
	if len(ids) == 0 {
		pad, err := tok.PadID()
		if err != nil {
			return nil, fmt.Errorf("qwen3: %w", err)
		}
		ids = []int{pad}
	}
	return ids, nil
}

// splitEmbeddings splits text like Python's re.split(r'(?<=\s)embedding:', text), puts the
// identifier back in front of every piece after the first, and drops empty pieces.
func splitEmbeddings(text string) []string {
	var pieces []string
	start := 0 // where the current piece's text begins (after a removed identifier)
	prefix := ""
	for i := 0; i < len(text); {
		j := strings.Index(text[i:], embeddingIdentifier)
		if j < 0 {
			break
		}
		at := i + j
		r, _ := utf8.DecodeLastRuneInString(text[:at])
		if at > 0 && pySpace(r) {
			pieces = append(pieces, prefix+text[start:at])
			prefix = embeddingIdentifier
			start = at + len(embeddingIdentifier)
		}
		i = at + len(embeddingIdentifier)
	}
	pieces = append(pieces, prefix+text[start:])
	out := pieces[:0]
	for _, p := range pieces {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// missingEmbedding returns the text ComfyUI tokenises in place of "embedding:"+name when the
// embedding does not exist (SDTokenizer._try_get_embedding followed by tokenize_with_weights).
func missingEmbedding(name string) (string, error) {
	fields := pySplit(name)
	if len(fields) == 0 {
		return "", fmt.Errorf("qwen3: prompt has %q followed only by whitespace, which ComfyUI cannot tokenize (IndexError)", embeddingIdentifier)
	}
	embName := fields[0]
	leftover := strings.Join(fields[1:], " ")
	if k := strings.IndexAny(embName, "<["); k >= 0 {
		rest := embName[k:]
		if leftover != "" {
			rest += " " + leftover
		}
		leftover = rest
		embName = embName[:k]
	}
	// A name with leading or trailing commas is tried again without them; when that fails too,
	// ComfyUI returns "{} {}".format(name[len(stripped):], leftover), counting code points.
	stripped := strings.Trim(embName, ",")
	if len(stripped) < len(embName) {
		runes := []rune(embName)
		n := utf8.RuneCountInString(stripped)
		leftover = string(runes[n:]) + " " + leftover
	}
	return leftover, nil
}

// pySpace reports whether Python's str.isspace (and so re's \s and str.split()) treats r as
// whitespace.
func pySpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r >= 0x1c && r <= 0x20, r == 0x85, r == 0xa0, r == 0x1680,
		r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// pySplit is Python's str.split() without arguments: the runs of non-whitespace.
func pySplit(s string) []string {
	return strings.FieldsFunc(s, pySpace)
}
