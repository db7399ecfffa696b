package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// synthetic returns a small, valid tokenizer.json as a generic JSON tree: the 256 byte-level
// tokens (ids 0..255 in byte order), one token per merge (ids from 256 on, in merge order), and
// the given added tokens. Tests mutate the tree to make it invalid.
func synthetic(merges [][2]string, added ...AddedToken) map[string]any {
	vocab := map[string]any{}
	next := 0
	for b := 0; b < 256; b++ {
		vocab[string(byteChar[b])] = next
		next++
	}
	ms := []any{}
	for _, m := range merges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = next
			next++
		}
		ms = append(ms, []any{m[0], m[1]})
	}
	at := []any{}
	for _, a := range added {
		at = append(at, map[string]any{
			"id": a.ID, "content": a.Content, "single_word": a.SingleWord, "lstrip": a.LStrip,
			"rstrip": a.RStrip, "normalized": a.Normalized, "special": a.Special,
		})
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	return map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": at,
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": QwenPattern}, "behavior": "Isolated", "invert": false},
			byteLevel,
		}},
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": ms,
		},
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func mustParse(tb testing.TB, tree map[string]any, config []byte) *Tokenizer {
	tb.Helper()
	tok, err := Parse(mustJSON(tb, tree), config)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// sub returns the object at key inside a JSON tree.
func sub(tree map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		tree = tree[k].(map[string]any)
	}
	return tree
}

// tokensOf encodes s and spells the ids as tokens.
func tokensOf(tb testing.TB, tok *Tokenizer, s string) []string {
	tb.Helper()
	toks, err := tok.Tokens(tok.Encode(s))
	if err != nil {
		tb.Fatal(err)
	}
	return toks
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		raw     string                    // used instead of the synthetic tree when set
		mutate  func(tree map[string]any) // applied to a valid synthetic tree
		wantErr string
	}{
		{name: "not JSON", raw: "{", wantErr: "tokenizer.json"},
		{name: "JSON array", raw: "[]", wantErr: "tokenizer.json"},
		{name: "empty object", raw: "{}", wantErr: "pre_tokenizer"},
		{name: "missing model", mutate: func(m map[string]any) { delete(m, "model") }, wantErr: "model: missing"},
		{name: "null model", mutate: func(m map[string]any) { m["model"] = nil }, wantErr: "model: missing"},
		{name: "model not an object", mutate: func(m map[string]any) { m["model"] = 3 }, wantErr: "model"},
		{name: "other model type", mutate: func(m map[string]any) { sub(m, "model")["type"] = "WordPiece" }, wantErr: "BPE"},
		{name: "missing vocab", mutate: func(m map[string]any) { delete(sub(m, "model"), "vocab") }, wantErr: "vocab"},
		{name: "vocab not an object", mutate: func(m map[string]any) { sub(m, "model")["vocab"] = []any{1} }, wantErr: "model"},
		{name: "fractional id", mutate: func(m map[string]any) { sub(m, "model", "vocab")["x"] = 1.5 }, wantErr: "model"},
		{name: "negative id", mutate: func(m map[string]any) { sub(m, "model", "vocab")["x"] = -1 }, wantErr: "id -1"},
		{name: "huge id", mutate: func(m map[string]any) { sub(m, "model", "vocab")["x"] = 1 << 40 }, wantErr: "outside"},
		{name: "shared id", mutate: func(m map[string]any) { sub(m, "model", "vocab")["xy"] = 0 }, wantErr: "share id 0"},
		{name: "empty token", mutate: func(m map[string]any) { sub(m, "model", "vocab")[""] = 300 }, wantErr: "empty token"},
		{name: "missing byte token", mutate: func(m map[string]any) { delete(sub(m, "model", "vocab"), "Ġ") }, wantErr: "byte 0x20"},
		{name: "missing merges", mutate: func(m map[string]any) { delete(sub(m, "model"), "merges") }, wantErr: "merges are missing"},
		{name: "merges not a list", mutate: func(m map[string]any) { sub(m, "model")["merges"] = "a b" }, wantErr: "merges"},
		{name: "merge of three", mutate: func(m map[string]any) { sub(m, "model")["merges"] = []any{[]any{"a", "b", "c"}} }, wantErr: "merges[0]"},
		{name: "merge string without space", mutate: func(m map[string]any) { sub(m, "model")["merges"] = []any{"ab"} }, wantErr: "merges[0]"},
		{name: "merge string with two spaces", mutate: func(m map[string]any) { sub(m, "model")["merges"] = []any{"a b c"} }, wantErr: "merges[0]"},
		{name: "merge of unknown token", mutate: func(m map[string]any) { sub(m, "model")["merges"] = []any{[]any{"a", "zz"}} }, wantErr: `"zz"`},
		{name: "merge result not in vocab", mutate: func(m map[string]any) { sub(m, "model")["merges"] = []any{[]any{"x", "y"}} }, wantErr: `merged token "xy"`},
		{name: "dropout", mutate: func(m map[string]any) { sub(m, "model")["dropout"] = 0.1 }, wantErr: "dropout"},
		{name: "subword prefix", mutate: func(m map[string]any) { sub(m, "model")["continuing_subword_prefix"] = "##" }, wantErr: "continuing_subword_prefix"},
		{name: "word suffix", mutate: func(m map[string]any) { sub(m, "model")["end_of_word_suffix"] = "</w>" }, wantErr: "end_of_word_suffix"},
		{name: "NFKC normalizer", mutate: func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFKC"} }, wantErr: "normalizer"},
		{name: "normalizer without type", mutate: func(m map[string]any) { m["normalizer"] = map[string]any{} }, wantErr: "normalizer"},
		{name: "lowercase in sequence", mutate: func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Lowercase"}}}
		}, wantErr: "normalizers[0]"},
		{name: "no pre-tokenizer", mutate: func(m map[string]any) { m["pre_tokenizer"] = nil }, wantErr: "pre_tokenizer"},
		{name: "GPT-2 byte level", mutate: func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}
		}, wantErr: "pre_tokenizer"},
		{name: "other pattern", mutate: func(m map[string]any) {
			sub(m, "pre_tokenizer")["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": `\s+`}
		}, wantErr: "pattern"},
		{name: "string pattern", mutate: func(m map[string]any) {
			sub(m, "pre_tokenizer")["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"String": " "}
		}, wantErr: "Regex"},
		{name: "removed behaviour", mutate: func(m map[string]any) {
			sub(m, "pre_tokenizer")["pretokenizers"].([]any)[0].(map[string]any)["behavior"] = "Removed"
		}, wantErr: "behavior"},
		{name: "byte level with regex", mutate: func(m map[string]any) {
			sub(m, "pre_tokenizer")["pretokenizers"].([]any)[1].(map[string]any)["use_regex"] = true
		}, wantErr: "use_regex"},
		{name: "byte level with prefix space", mutate: func(m map[string]any) {
			sub(m, "pre_tokenizer")["pretokenizers"].([]any)[1].(map[string]any)["add_prefix_space"] = true
		}, wantErr: "add_prefix_space"},
		{name: "template post-processor", mutate: func(m map[string]any) {
			m["post_processor"] = map[string]any{"type": "TemplateProcessing"}
		}, wantErr: "post_processor"},
		{name: "other decoder", mutate: func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }, wantErr: "decoder"},
		{name: "added token without content", mutate: func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 400, "content": ""}}
		}, wantErr: "empty content"},
		{name: "added token with negative id", mutate: func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": -3, "content": "<x>"}}
		}, wantErr: "id -3"},
		{name: "added token on a taken id", mutate: func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 0, "content": "<x>"}}
		}, wantErr: "already"},
		{name: "added token moving a vocab token", mutate: func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 400, "content": "a"}}
		}, wantErr: "vocabulary has it"},
		{name: "added tokens not a list", mutate: func(m map[string]any) { m["added_tokens"] = "x" }, wantErr: "tokenizer.json"},
		{name: "padding not an object", mutate: func(m map[string]any) { m["padding"] = 1 }, wantErr: "padding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				tree := synthetic([][2]string{{"a", "b"}})
				tc.mutate(tree)
				data = mustJSON(t, tree)
			}
			tok, err := Parse(data, nil)
			if err == nil {
				t.Fatalf("Parse succeeded (%d tokens), want an error containing %q", tok.VocabSize(), tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(tree map[string]any)
	}{
		{"as built", func(map[string]any) {}},
		{"legacy merge strings", func(m map[string]any) { sub(m, "model")["merges"] = []any{"a b"} }},
		{"no normalizer", func(m map[string]any) { m["normalizer"] = nil }},
		{"normalizer sequence", func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFC"}}}
		}},
		{"no decoder or post-processor", func(m map[string]any) { delete(m, "decoder"); m["post_processor"] = nil }},
		{"untyped model", func(m map[string]any) { delete(sub(m, "model"), "type") }},
		{"zero dropout", func(m map[string]any) { sub(m, "model")["dropout"] = 0.0 }},
		{"unknown fields", func(m map[string]any) { m["extra"] = []any{1, 2}; sub(m, "model")["extra"] = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree := synthetic([][2]string{{"a", "b"}})
			tc.mutate(tree)
			tok := mustParse(t, tree, nil)
			if got := tokensOf(t, tok, "abc"); !slices.Equal(got, []string{"ab", "c"}) {
				t.Fatalf("tokens of abc = %q", got)
			}
		})
	}
}

func TestBPEMergeOrder(t *testing.T) {
	tests := []struct {
		name   string
		merges [][2]string
		text   string
		want   []string
	}{
		{"no merges", nil, "abc", []string{"a", "b", "c"}},
		{"lowest rank first", [][2]string{{"b", "c"}, {"a", "b"}}, "abc", []string{"a", "bc"}},
		{"rank beats position", [][2]string{{"a", "b"}, {"b", "c"}}, "abc", []string{"ab", "c"}},
		{"chained merges", [][2]string{{"a", "b"}, {"ab", "c"}}, "abcab", []string{"abc", "ab"}},
		{"equal rank leftmost first", [][2]string{{"a", "a"}}, "aaa", []string{"aa", "a"}},
		{"repeated pairs", [][2]string{{"a", "a"}, {"aa", "aa"}}, "aaaaa", []string{"aaaa", "a"}},
		{"merge needs its rank turn", [][2]string{{"c", "d"}, {"b", "c"}, {"a", "b"}, {"ab", "cd"}}, "abcd", []string{"abcd"}},
		{"stale entry skipped", [][2]string{{"b", "c"}, {"a", "b"}, {"c", "d"}}, "abcd", []string{"a", "bc", "d"}},
		{"space prefix is a byte", [][2]string{{"Ġ", "a"}}, " a a", []string{"Ġa", "Ġa"}},
		{"multi-byte characters", [][2]string{{"ç", "Į"}}, "猫", []string{"çĮ", "«"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := mustParse(t, synthetic(tc.merges), nil)
			for pass := 0; pass < 2; pass++ { // the second pass is served by the word cache
				if got := tokensOf(t, tok, tc.text); !slices.Equal(got, tc.want) {
					t.Fatalf("pass %d: tokens of %q = %q, want %q", pass, tc.text, got, tc.want)
				}
			}
		})
	}
}

func TestIgnoreMerges(t *testing.T) {
	tree := synthetic([][2]string{{"a", "b"}, {"b", "c"}})
	// "abc" is a vocabulary entry that no merge produces.
	sub(tree, "model", "vocab")["abc"] = 1000
	tok := mustParse(t, tree, nil)
	if got := tokensOf(t, tok, "abc"); !slices.Equal(got, []string{"ab", "c"}) {
		t.Fatalf("merging: %q", got)
	}
	sub(tree, "model")["ignore_merges"] = true
	tok = mustParse(t, tree, nil)
	if got := tokensOf(t, tok, "abc"); !slices.Equal(got, []string{"abc"}) {
		t.Fatalf("ignore_merges: %q", got)
	}
}

func TestAddedTokenOptions(t *testing.T) {
	const id = 500
	tests := []struct {
		name  string
		token AddedToken
		text  string
		want  []string
	}{
		{"plain", AddedToken{Content: "<x>"}, "a<x>b", []string{"a", "<x>", "b"}},
		{"longest wins", AddedToken{Content: "<x><x>"}, "<x><x>", []string{"<x><x>"}},
		{"adjacent", AddedToken{Content: "<x>"}, "<x><x>", []string{"<x>", "<x>"}},
		{"spaces stay without strip", AddedToken{Content: "<x>"}, "a <x> b", []string{"a", "Ġ", "<x>", "Ġ", "b"}},
		{"lstrip", AddedToken{Content: "<x>", LStrip: true}, "a  <x> b", []string{"a", "<x>", "Ġ", "b"}},
		{"rstrip", AddedToken{Content: "<x>", RStrip: true}, "a <x>  b", []string{"a", "Ġ", "<x>", "b"}},
		{"lstrip and rstrip", AddedToken{Content: "<x>", LStrip: true, RStrip: true}, "a \t<x>\n b", []string{"a", "<x>", "b"}},
		{"single word inside a word", AddedToken{Content: "ab", SingleWord: true}, "cab", []string{"c", "a", "b"}},
		{"single word alone", AddedToken{Content: "ab", SingleWord: true}, "c ab.", []string{"c", "Ġ", "ab", "."}},
		{"single word after a digit", AddedToken{Content: "ab", SingleWord: true}, "1ab", []string{"1", "a", "b"}},
		{"raw match before NFC", AddedToken{Content: "e\u0301"}, "e\u0301", []string{"e\u0301"}},
		{"normalized match after NFC", AddedToken{Content: "e\u0301", Normalized: true}, "e\u0301", []string{"e\u0301"}},
		{"normalized token matches composed text", AddedToken{Content: "e\u0301", Normalized: true}, "\u00e9", []string{"e\u0301"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.token.ID = id
			tok := mustParse(t, synthetic(nil, tc.token), nil)
			got := tokensOf(t, tok, tc.text)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("tokens of %q = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestPadToken(t *testing.T) {
	base := func() map[string]any {
		return synthetic(nil,
			AddedToken{ID: 300, Content: "<|endoftext|>", Special: true},
			AddedToken{ID: 301, Content: "<pad>", Special: true})
	}
	tests := []struct {
		name    string
		tree    map[string]any
		config  string
		want    int
		wantErr bool
	}{
		{"default endoftext", base(), "", 300, false},
		{"config string", base(), `{"pad_token": "<pad>"}`, 301, false},
		{"config object", base(), `{"pad_token": {"content": "<pad>", "special": true}}`, 301, false},
		{"config null", base(), `{"pad_token": null}`, 300, false},
		{"padding section wins", func() map[string]any {
			m := base()
			m["padding"] = map[string]any{"pad_token": "<pad>", "pad_id": 301}
			return m
		}(), `{"pad_token": "<|endoftext|>"}`, 301, false},
		{"unknown pad token", base(), `{"pad_token": "<nope>"}`, 0, true},
		{"no pad token at all", synthetic(nil), "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := mustParse(t, tc.tree, []byte(tc.config))
			got, err := tok.PadID()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("PadID() = %d, %v; want %d (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
	for _, bad := range []string{`{`, `{"pad_token": 3}`} {
		if _, err := Parse(mustJSON(t, base()), []byte(bad)); err == nil {
			t.Errorf("config %s: want an error", bad)
		}
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	tree := synthetic(nil, AddedToken{ID: 300, Content: "<|endoftext|>", Special: true}, AddedToken{ID: 301, Content: "<pad>"})
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(FileName, string(mustJSON(t, tree)))
	write(ConfigFileName, `{"pad_token": "<pad>"}`)
	write("enc.tokenizer.json", string(mustJSON(t, tree)))
	write("broken.tokenizer.json", string(mustJSON(t, tree)))
	write("broken.tokenizer_config.json", `{"pad_token": [`)
	write("bad.json", `{"model": null}`)
	tests := []struct {
		path    string
		wantPad int
		wantErr string
	}{
		{filepath.Join(dir, FileName), 301, ""},
		{dir, 301, ""},                                      // a folder means its tokenizer.json
		{filepath.Join(dir, "enc.tokenizer.json"), 300, ""}, // enc.tokenizer_config.json absent
		{filepath.Join(dir, "broken.tokenizer.json"), 0, "tokenizer_config.json"},
		{filepath.Join(dir, "bad.json"), 0, "bad.json"},
		{filepath.Join(dir, "missing.json"), 0, "missing.json"},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			tok, err := Load(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pad, err := tok.PadID(); err != nil || pad != tc.wantPad {
				t.Fatalf("PadID() = %d, %v; want %d", pad, err, tc.wantPad)
			}
		})
	}
}
