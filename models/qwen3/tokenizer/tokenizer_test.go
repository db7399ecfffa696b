package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/dypegraph/dypegraph/internal/golden"
)

// qwenPath is the Qwen3 tokenizer shipped in the shared folder.
func qwenPath(tb testing.TB) string {
	tb.Helper()
	shared, err := golden.SharedDir()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(shared, "tokenizer", "qwen3", FileName)
}

var qwenOnce struct {
	sync.Once
	tok *Tokenizer
	err error
}

// qwen loads the shared Qwen3 tokenizer once per test binary.
func qwen(tb testing.TB) *Tokenizer {
	tb.Helper()
	path := qwenPath(tb)
	qwenOnce.Do(func() { qwenOnce.tok, qwenOnce.err = Load(path) })
	if qwenOnce.err != nil {
		tb.Fatalf("loading the shared Qwen3 tokenizer: %v", qwenOnce.err)
	}
	return qwenOnce.tok
}

type goldenCase struct {
	Text    string  `json:"text"`
	IDs     []int   `json:"ids"`
	Decoded *string `json:"decoded"`
}

// goldenCases reads tokenizer_cases.json from the golden directory.
func goldenCases(tb testing.TB) []goldenCase {
	tb.Helper()
	dir, err := golden.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "tokenizer_cases.json")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("tokenizer cases: %v (set %s to a golden directory)", err, golden.EnvVar)
	}
	var file struct {
		Meta  map[string]any `json:"meta"`
		Cases []goldenCase   `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if len(file.Cases) == 0 {
		tb.Fatalf("%s: no cases", path)
	}
	if add, ok := file.Meta["add_special_tokens"].(bool); ok && add {
		tb.Fatalf("%s: cases were made with add_special_tokens=true; Encode adds none", path)
	}
	return file.Cases
}

// caseName makes a readable subtest name from a case's text.
func caseName(i int, text string) string {
	var b strings.Builder
	for _, r := range text {
		if b.Len() >= 40 {
			b.WriteString("…")
			break
		}
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	return fmt.Sprintf("%02d_%s", i, b.String())
}

func TestGoldenCases(t *testing.T) {
	tok := qwen(t)
	for i, c := range goldenCases(t) {
		t.Run(caseName(i, c.Text), func(t *testing.T) {
			got := tok.Encode(c.Text)
			if !slices.Equal(got, c.IDs) {
				toks, _ := tok.Tokens(got)
				t.Fatalf("Encode(%q)\n got %v %q\nwant %v", c.Text, got, toks, c.IDs)
			}
			want := c.Text
			if c.Decoded != nil {
				want = *c.Decoded
			}
			dec, err := tok.Decode(c.IDs)
			if err != nil {
				t.Fatal(err)
			}
			if dec != want {
				t.Fatalf("Decode(%v) = %q, want %q", c.IDs, dec, want)
			}
			if _, err := tok.Tokens(c.IDs); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGoldenZImageTemplate checks EncodeZImage against every golden case whose text is a
// prompt wrapped in the Z-Image template.
func TestGoldenZImageTemplate(t *testing.T) {
	tok := qwen(t)
	n := 0
	for i, c := range goldenCases(t) {
		prompt, ok := strings.CutPrefix(c.Text, zimagePrefix)
		if !ok {
			continue
		}
		if prompt, ok = strings.CutSuffix(prompt, zimageSuffix); !ok {
			continue
		}
		n++
		t.Run(caseName(i, prompt), func(t *testing.T) {
			if got := tok.EncodeZImage(prompt); !slices.Equal(got, c.IDs) {
				t.Fatalf("EncodeZImage(%q) = %v, want %v", prompt, got, c.IDs)
			}
		})
	}
	t.Logf("%d templated golden cases", n)
}

func TestZImageTemplateStructure(t *testing.T) {
	tok := qwen(t)
	id := func(s string) int {
		t.Helper()
		v, ok := tok.ID(s)
		if !ok {
			t.Fatalf("token %q missing", s)
		}
		return v
	}
	start, end := id("<|im_start|>"), id("<|im_end|>")
	nl := tok.Encode("\n")
	for _, prompt := range []string{"a cat", "猫", "Homer Simpson eating a donut", ""} {
		got := tok.EncodeZImage(prompt)
		want := []int{start}
		want = append(want, tok.Encode("user")...)
		want = append(want, nl...)
		want = append(want, tok.Encode(prompt)...)
		want = append(want, end)
		want = append(want, nl...)
		want = append(want, start)
		want = append(want, tok.Encode("assistant")...)
		want = append(want, nl...)
		if !slices.Equal(got, want) {
			t.Errorf("EncodeZImage(%q) = %v, want %v", prompt, got, want)
		}
	}
}

func TestApplyTemplate(t *testing.T) {
	tests := []struct {
		name, text, want string
		wantErr          bool
	}{
		{TemplateZImage, "a cat", "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n", false},
		{TemplateNone, "a cat", "a cat", false},
		{"chatml", "a cat", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplyTemplate(tc.name, tc.text)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ApplyTemplate(%q, %q) = %q, %v", tc.name, tc.text, got, err)
			}
		})
	}
}

// TestQwenFacts checks values the spec (zimage.md §2) states for the shipped tokenizer.
func TestQwenFacts(t *testing.T) {
	tok := qwen(t)
	pad, err := tok.PadID()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tok.Token(pad); got != "<|endoftext|>" || tok.PadToken() != "<|endoftext|>" {
		t.Errorf("pad token = %q / %q, want <|endoftext|>", got, tok.PadToken())
	}
	if id, _ := tok.ID("<|im_end|>"); !tok.IsSpecial(id) {
		t.Errorf("<|im_end|> (%d) not special", id)
	}
	if id, _ := tok.ID("<think>"); tok.IsSpecial(id) {
		t.Errorf("<think> (%d) special, want a plain added token", id)
	}
	if got := tok.VocabSize(); got <= pad {
		t.Errorf("VocabSize = %d, not above the pad id %d", got, pad)
	}
	for _, s := range []string{"Ġ", "Ċ", "Ġcat", "user", "assistant"} {
		id, ok := tok.ID(s)
		if !ok {
			t.Fatalf("%q missing", s)
		}
		if back, _ := tok.Token(id); back != s {
			t.Errorf("Token(ID(%q)) = %q", s, back)
		}
	}
	added := tok.AddedTokens()
	if len(added) == 0 {
		t.Fatal("no added tokens")
	}
	for _, a := range added {
		if id, ok := tok.ID(a.Content); !ok || id != a.ID || tok.IsSpecial(id) != a.Special {
			t.Errorf("added token %+v: ID = %d, %v; special %v", a, id, ok, tok.IsSpecial(id))
		}
		if ids := tok.Encode("x" + a.Content + "x"); len(ids) != 3 || ids[1] != a.ID {
			t.Errorf("%q inside text encodes to %v, want it whole as %d", a.Content, ids, a.ID)
		}
	}
	// Each single byte is its own token, whatever its value.
	for b := 0; b < 256; b++ {
		s := string([]byte{byte(b)})
		if !utf8.ValidString(s) {
			continue // replaced by U+FFFD first
		}
		if ids := tok.Encode(s); len(ids) != 1 || ids[0] != int(tok.byteID[b]) {
			t.Errorf("byte 0x%02X encodes to %v", b, ids)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := qwen(t)
	start, _ := tok.ID("<|im_start|>")
	cat := tok.Encode("a cat")
	// byteIDs returns the ids of the single-byte tokens spelling raw bytes.
	byteIDs := func(bs ...byte) []int {
		var out []int
		for _, b := range bs {
			id, ok := tok.ID(string(byteChar[b]))
			if !ok {
				t.Fatalf("no token for byte 0x%02X", b)
			}
			out = append(out, id)
		}
		return out
	}
	a := byteIDs('a')
	ids := append([]int{start}, cat...)
	tests := []struct {
		name    string
		ids     []int
		skip    bool
		want    string
		wantErr bool
	}{
		{"plain", cat, false, "a cat", false},
		{"special kept", ids, false, "<|im_start|>a cat", false},
		{"special skipped", ids, true, "a cat", false},
		{"empty", nil, false, "", false},
		{"negative id", []int{-1}, false, "", true},
		{"id past the end", []int{tok.VocabSize()}, false, "", true},
		// Invalid byte sequences: one U+FFFD per maximal invalid subsequence.
		{"truncated 3-byte sequence", append(byteIDs(0xE7, 0x8C), a...), false, "\uFFFDa", false},
		{"lone lead byte", append(byteIDs(0xE7), a...), false, "\uFFFDa", false},
		{"invalid lead bytes", byteIDs(0xC0, 0x80, 0xFF), false, "\uFFFD\uFFFD\uFFFD", false},
		{"surrogate", byteIDs(0xED, 0xA0, 0x80), false, "\uFFFD\uFFFD\uFFFD", false},
		{"bytes completing a character", byteIDs(0xE7, 0x8C, 0xAB), false, "猫", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			var err error
			if tc.skip {
				got, err = tok.DecodeSkipSpecial(tc.ids)
			} else {
				got, err = tok.Decode(tc.ids)
			}
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("decode %v = %q, %v; want %q (error %v)", tc.ids, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestEncodeLongMarkRun: a run of over 30 combining marks is normalised without the U+034F
// that x/text's stream-safe NFC would insert (Hugging Face inserts none).
func TestEncodeLongMarkRun(t *testing.T) {
	tok := qwen(t)
	in := "Zalgo a" + strings.Repeat("\u0301", 35) + " text"
	want := "Zalgo \u00e1" + strings.Repeat("\u0301", 34) + " text" // Python's unicodedata NFC
	got, err := tok.Decode(tok.Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Decode(Encode(%+q)) = %+q, want %+q", in, got, want)
	}
}

func TestEncodeConcurrent(t *testing.T) {
	tok := qwen(t)
	texts := []string{"Homer Simpson eating a donut", "一只在阳光下睡觉的猫", "don't stop", "  x  \n\n y"}
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s)
	}
	tok.ClearCache()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				i := (g + k) % len(texts)
				if got := tok.Encode(texts[i]); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("goroutine %d: Encode(%q) = %v, want %v", g, texts[i], got, want[i])
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
