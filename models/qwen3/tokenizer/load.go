package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// File names of the Hugging Face tokenizer files this package reads.
const (
	FileName       = "tokenizer.json"
	ConfigFileName = "tokenizer_config.json"
)

const defaultPadToken = "<|endoftext|>"

// Load reads a tokenizer.json (or, given a folder, the tokenizer.json inside it). When a
// tokenizer_config.json sits beside it (for "<stem>.tokenizer.json", a
// "<stem>.tokenizer_config.json"), its pad_token is used too.
func Load(path string) (*Tokenizer, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, FileName)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: %w", err)
	}
	var config []byte
	if cpath, ok := configPath(path); ok {
		config, err = os.ReadFile(cpath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("qwen3 tokenizer: %w", err)
		}
	}
	t, err := Parse(data, config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// configPath returns the tokenizer_config.json that belongs to a tokenizer.json path.
func configPath(path string) (string, bool) {
	base := filepath.Base(path)
	if !strings.HasSuffix(base, FileName) {
		return "", false
	}
	return filepath.Join(filepath.Dir(path), strings.TrimSuffix(base, FileName)+ConfigFileName), true
}

// Parse builds a Tokenizer from the bytes of a tokenizer.json and, optionally (nil or empty
// when absent), of its tokenizer_config.json. It validates strictly: anything this package does
// not implement exactly (another model type, normaliser, pre-tokenizer pattern or post-processor,
// BPE dropout, subword prefixes) is an error rather than a silently different tokenisation.
func Parse(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	var f struct {
		AddedTokens   []AddedToken    `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Padding       json.RawMessage `json:"padding"`
		Model         json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: tokenizer.json: %w", err)
	}
	t := new(Tokenizer)
	var err error
	if t.useNFC, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: normalizer: %w", err)
	}
	if err := checkPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: pre_tokenizer: %w", err)
	}
	if err := checkByteLevelOrNull(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: post_processor: %w", err)
	}
	if err := checkByteLevelOrNull(f.Decoder); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: decoder: %w", err)
	}
	if err := t.parseModel(f.Model, len(f.AddedTokens)); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: model: %w", err)
	}
	if err := t.addTokens(f.AddedTokens); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: added_tokens: %w", err)
	}
	if t.padToken, err = padToken(f.Padding, configJSON); err != nil {
		return nil, fmt.Errorf("qwen3 tokenizer: %w", err)
	}
	if t.padToken == "" {
		if _, ok := t.vocab[defaultPadToken]; ok {
			t.padToken = defaultPadToken
		}
	}
	return t, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// component holds the fields of the normaliser, pre-tokenizer, post-processor and decoder
// objects that matter here.
type component struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	Pattern       struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior       string `json:"behavior"`
	Invert         bool   `json:"invert"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
}

func parseComponent(raw json.RawMessage) (component, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, err
	}
	if c.Type == "" {
		return c, errors.New(`missing "type"`)
	}
	return c, nil
}

// parseNormalizer accepts no normaliser, NFC, or a Sequence of those; it reports whether NFC
// applies.
func parseNormalizer(raw json.RawMessage) (bool, error) {
	if isNull(raw) {
		return false, nil
	}
	c, err := parseComponent(raw)
	if err != nil {
		return false, err
	}
	switch c.Type {
	case "NFC":
		return true, nil
	case "Sequence":
		nfc := false
		for i, sub := range c.Normalizers {
			n, err := parseNormalizer(sub)
			if err != nil {
				return false, fmt.Errorf("normalizers[%d]: %w", i, err)
			}
			nfc = nfc || n
		}
		return nfc, nil
	}
	return false, fmt.Errorf("type %q is not supported (Qwen tokenizers use NFC)", c.Type)
}

// checkPreTokenizer accepts exactly Qwen's pre-tokenizer: a Sequence of an isolating Split on
// QwenPattern and a ByteLevel step without its own regex or prefix space.
func checkPreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("missing (Qwen tokenizers split with a pattern, then map bytes with ByteLevel)")
	}
	c, err := parseComponent(raw)
	if err != nil {
		return err
	}
	if c.Type != "Sequence" || len(c.Pretokenizers) != 2 {
		return fmt.Errorf("type %q is not supported: expected a Sequence of Split and ByteLevel", c.Type)
	}
	split, err := parseComponent(c.Pretokenizers[0])
	if err != nil {
		return fmt.Errorf("pretokenizers[0]: %w", err)
	}
	switch {
	case split.Type != "Split":
		return fmt.Errorf("pretokenizers[0]: type %q is not supported, expected Split", split.Type)
	case split.Pattern.Regex == nil:
		return errors.New("pretokenizers[0]: Split needs a Regex pattern")
	case *split.Pattern.Regex != QwenPattern:
		return fmt.Errorf("pretokenizers[0]: pattern %q is not supported; only Qwen2/Qwen3's %q is implemented", *split.Pattern.Regex, QwenPattern)
	case split.Behavior != "Isolated" || split.Invert:
		return fmt.Errorf("pretokenizers[0]: behavior %q invert %v is not supported, expected Isolated, false", split.Behavior, split.Invert)
	}
	bl, err := parseComponent(c.Pretokenizers[1])
	if err != nil {
		return fmt.Errorf("pretokenizers[1]: %w", err)
	}
	switch {
	case bl.Type != "ByteLevel":
		return fmt.Errorf("pretokenizers[1]: type %q is not supported, expected ByteLevel", bl.Type)
	case bl.AddPrefixSpace:
		return errors.New("pretokenizers[1]: ByteLevel add_prefix_space is not supported")
	case bl.UseRegex == nil || *bl.UseRegex:
		return errors.New("pretokenizers[1]: ByteLevel must have use_regex false (the Split already splits)")
	}
	return nil
}

// checkByteLevelOrNull accepts an absent component or a ByteLevel one (which changes neither ids
// nor decoded text here).
func checkByteLevelOrNull(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	c, err := parseComponent(raw)
	if err != nil {
		return err
	}
	if c.Type != "ByteLevel" {
		return fmt.Errorf("type %q is not supported, expected ByteLevel or null", c.Type)
	}
	return nil
}

// parseModel reads and validates the BPE model: vocabulary, merges and options.
func (t *Tokenizer) parseModel(raw json.RawMessage, nAdded int) error {
	if isNull(raw) {
		return errors.New("missing")
	}
	var m struct {
		Type                    string           `json:"type"`
		Dropout                 *float64         `json:"dropout"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		Vocab                   map[string]int64 `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	switch {
	case m.Type != "" && m.Type != "BPE":
		return fmt.Errorf("type %q is not supported, expected BPE", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("dropout %v is not supported (it makes encoding random)", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return errors.New("continuing_subword_prefix is not supported")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return errors.New("end_of_word_suffix is not supported")
	case len(m.Vocab) == 0:
		return errors.New("vocab is missing or empty")
	case isNull(m.Merges):
		return errors.New("merges are missing")
	}

	// Ids index slices, so bound them by the number of entries: real vocabularies are dense.
	limit := int64(4*(len(m.Vocab)+nAdded) + 1024)
	size := 0
	for tok, id := range m.Vocab {
		switch {
		case tok == "":
			return errors.New("vocab has an empty token")
		case id < 0 || id >= limit:
			return fmt.Errorf("vocab token %q has id %d, outside 0..%d", tok, id, limit-1)
		}
		size = max(size, int(id)+1)
	}
	t.vocab = make(map[string]int, len(m.Vocab)+nAdded)
	t.tokens = make([]string, size)
	for tok, id := range m.Vocab {
		if prev := t.tokens[id]; prev != "" {
			return fmt.Errorf("vocab tokens %q and %q share id %d", prev, tok, id)
		}
		t.tokens[id] = tok
		t.vocab[tok] = int(id)
	}
	if m.IgnoreMerges {
		t.wholeWords = make(map[string]int, len(t.vocab))
		for tok, id := range t.vocab {
			t.wholeWords[tok] = id
		}
	}
	for b := 0; b < 256; b++ {
		id, ok := t.vocab[string(byteChar[b])]
		if !ok {
			return fmt.Errorf("vocab lacks the byte-level token %q for byte 0x%02X (not a byte-level BPE vocabulary?)", string(byteChar[b]), b)
		}
		t.byteID[b] = int32(id)
	}
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return err
	}
	t.merges = make(map[uint64]uint64, len(pairs))
	for rank, p := range pairs {
		left, okL := t.vocab[p[0]]
		right, okR := t.vocab[p[1]]
		result, okM := t.vocab[p[0]+p[1]]
		if !okL || !okR || !okM {
			return fmt.Errorf("merges[%d] %q %q: %s is not in the vocabulary", rank, p[0], p[1], missingPart(okL, okR, p))
		}
		// A repeated pair keeps its last rank, as the Hugging Face loader does.
		t.merges[mergeKey(int32(left), int32(right))] = mergeVal(uint32(rank), int32(result))
	}
	return nil
}

func missingPart(okL, okR bool, p [2]string) string {
	switch {
	case !okL:
		return fmt.Sprintf("%q", p[0])
	case !okR:
		return fmt.Sprintf("%q", p[1])
	}
	return fmt.Sprintf("the merged token %q", p[0]+p[1])
}

// parseMerges accepts both tokenizer.json spellings: [["a","b"], ...] and the older ["a b", ...].
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	var lists [][]string
	if err := json.Unmarshal(raw, &lists); err == nil {
		out := make([][2]string, len(lists))
		for i, l := range lists {
			if len(l) != 2 || l[0] == "" || l[1] == "" {
				return nil, fmt.Errorf("merges[%d]: want two non-empty tokens, got %q", i, l)
			}
			out[i] = [2]string{l[0], l[1]}
		}
		return out, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, errors.New(`merges: want a list of ["left", "right"] pairs or of "left right" strings`)
	}
	out := make([][2]string, len(lines))
	for i, line := range lines {
		l, r, ok := strings.Cut(line, " ")
		if !ok || l == "" || r == "" || strings.Contains(r, " ") {
			return nil, fmt.Errorf("merges[%d]: %q is not two tokens separated by one space", i, line)
		}
		out[i] = [2]string{l, r}
	}
	return out, nil
}

// addTokens registers the added tokens, checking them against the model vocabulary.
func (t *Tokenizer) addTokens(list []AddedToken) error {
	limit := 4*(len(t.tokens)+len(list)) + 1024
	size := len(t.tokens)
	for i, a := range list {
		switch {
		case a.Content == "":
			return fmt.Errorf("[%d]: empty content", i)
		case !utf8.ValidString(a.Content):
			return fmt.Errorf("[%d]: content is not valid UTF-8", i)
		case a.ID < 0 || a.ID >= limit:
			return fmt.Errorf("[%d] %q: id %d outside 0..%d", i, a.Content, a.ID, limit-1)
		}
		size = max(size, a.ID+1)
	}
	if size > len(t.tokens) {
		t.tokens = append(t.tokens, make([]string, size-len(t.tokens))...)
	}
	t.added = append([]AddedToken(nil), list...)
	t.special = make([]bool, size)
	seen := make(map[string]bool, len(list))
	for i, a := range list {
		if id, ok := t.vocab[a.Content]; ok && id != a.ID {
			return fmt.Errorf("[%d] %q: id %d, but the vocabulary has it as %d", i, a.Content, a.ID, id)
		}
		if prev := t.tokens[a.ID]; prev != "" && prev != a.Content {
			return fmt.Errorf("[%d] %q: id %d is already %q", i, a.Content, a.ID, prev)
		}
		t.tokens[a.ID] = a.Content
		t.vocab[a.Content] = a.ID
		t.special[a.ID] = t.special[a.ID] || a.Special
		if seen[a.Content] {
			continue
		}
		seen[a.Content] = true
		if a.Normalized {
			pattern := a.Content
			if t.useNFC {
				pattern = nfc(pattern)
			}
			t.normalized.add(a, pattern)
		} else {
			t.raw.add(a, a.Content)
		}
	}
	t.decoded = make([]string, len(t.tokens))
	for id, tok := range t.tokens {
		if tok != "" {
			t.decoded[id] = tokenBytes(tok)
		}
	}
	return nil
}

// padToken picks the pad token from the tokenizer.json padding section, else from the pad_token
// of tokenizer_config.json; "" when neither names one.
func padToken(padding json.RawMessage, config []byte) (string, error) {
	if !isNull(padding) {
		var p struct {
			PadToken string `json:"pad_token"`
		}
		if err := json.Unmarshal(padding, &p); err != nil {
			return "", fmt.Errorf("padding: %w", err)
		}
		if p.PadToken != "" {
			return p.PadToken, nil
		}
	}
	if len(bytes.TrimSpace(config)) == 0 {
		return "", nil
	}
	var c struct {
		PadToken json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return "", fmt.Errorf("tokenizer_config.json: %w", err)
	}
	if isNull(c.PadToken) {
		return "", nil
	}
	var name string
	if err := json.Unmarshal(c.PadToken, &name); err == nil {
		return name, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(c.PadToken, &obj); err != nil {
		return "", fmt.Errorf("tokenizer_config.json: pad_token: want a string or an object with content: %w", err)
	}
	return obj.Content, nil
}
