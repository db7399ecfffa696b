package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// referenceText is what decode(encode(s)) must give: s with invalid UTF-8 replaced, added tokens
// (found naively, longest first at the leftmost position) kept verbatim, and every stretch
// between them NFC-normalised on its own (as the Hugging Face pipeline normalises only the text
// between added tokens). For text without added tokens this is NFC(s). It uses x/text's NFC,
// so it reports false when that inserted a U+034F into a run of over 30 combining marks (the
// case nfc.go handles, tested against Python's unicodedata in TestNFC).
func referenceText(tok *Tokenizer, s string) (string, bool) {
	s = validUTF8(s)
	var b strings.Builder
	seg := 0
	for i := 0; i < len(s); {
		best := ""
		for _, c := range tok.raw.pattern {
			if strings.HasPrefix(s[i:], c) && len(c) > len(best) {
				best = c
			}
		}
		if best == "" {
			i++
			continue
		}
		b.WriteString(norm.NFC.String(s[seg:i]))
		b.WriteString(best)
		i += len(best)
		seg = i
	}
	b.WriteString(norm.NFC.String(s[seg:]))
	out := b.String()
	return out, strings.Count(out, cgj) == strings.Count(s, cgj)
}

func FuzzEncode(f *testing.F) {
	tok := qwen(f)
	for _, c := range goldenCases(f) {
		f.Add(c.Text)
	}
	for _, s := range []string{"\xff\xfe", "a\xe7\x8cb", "<|im_start|>\xc0", "e\u0301<|im_end|>\u0301", "<|im_<|im_end|>", "a" + strings.Repeat("\u0316\u0301", 20), "'ſ\u00a0\n\n \t", strings.Repeat("ab", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		got, err := tok.Decode(ids)
		if err != nil {
			t.Fatalf("Encode(%q) gave ids Decode rejects: %v", s, err)
		}
		want, exact := referenceText(tok, s)
		if exact && got != want {
			t.Fatalf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
		if exact && utf8.ValidString(s) && !strings.Contains(s, "<") {
			if want := norm.NFC.String(s); got != want {
				t.Fatalf("Decode(Encode(%q)) = %q, want NFC %q", s, got, want)
			}
		}
		if again := tok.Encode(got); !slices.Equal(again, ids) {
			t.Fatalf("Encode(Decode(Encode(%q))) = %v, want %v", s, again, ids)
		}
		if cached := tok.Encode(s); !slices.Equal(cached, ids) {
			t.Fatalf("second Encode(%q) = %v, first %v", s, cached, ids)
		}
	})
}

func TestNFC(t *testing.T) {
	many := func(s string, n int) string { return strings.Repeat(s, n) }
	// Expectations from Python 3.11's unicodedata.normalize("NFC", ...), which, like Rust's
	// unicode-normalization, has no 30-mark limit.
	tests := []struct{ name, in, want string }{
		{"ascii", "plain text", "plain text"},
		{"compose", "e\u0301", "\u00e9"},
		{"reorder and compose", "a\u0301\u0323", "\u1ea1\u0301"},
		{"hangul", "\u1100\u1161\u11a8", "\uac01"},
		{"35 acutes", "a" + many("\u0301", 35), "\u00e1" + many("\u0301", 34)},
		{"interleaved classes", "a" + many("\u0316\u0301", 20), "\u00e1" + many("\u0316", 20) + many("\u0301", 19)},
		{"two classes then a starter", "e" + many("\u0301\u0323", 17) + "x", "\u1eb9" + many("\u0323", 16) + many("\u0301", 17) + "x"},
		{"composite starter", "\u1ea1" + many("\u0306", 40), "\u1eb7" + many("\u0306", 39)},
		{"leading marks", many("\u0301", 40) + "a", many("\u0301", 40) + "a"},
		{"three classes", "o" + many("\u031b", 3) + many("\u0323", 30) + "\u0302\u0301", "\u1ee3" + many("\u031b", 2) + many("\u0323", 29) + "\u0302\u0301"},
		{"existing CGJ kept", "a\u034f\u0301", "a\u034f\u0301"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := nfc(tc.in); got != tc.want {
				t.Fatalf("nfc(%+q) = %+q, want %+q", tc.in, got, tc.want)
			}
			if got := exactNFC(tc.in); got != tc.want {
				t.Fatalf("exactNFC(%+q) = %+q, want %+q", tc.in, got, tc.want)
			}
		})
	}
}

// markAlphabet mixes starters, composable letters and marks of several classes.
var markAlphabet = []rune{'a', 'e', 'o', 'u', 'A', 'x', ' ', 0x1ea1, 0xe9, 0x1100, 0x1161, 0x11a8, 0xac00,
	0x301, 0x300, 0x302, 0x306, 0x308, 0x323, 0x316, 0x31b, 0x327, 0x328, 0x344, 0x345, 0x34f, 0x5b0, 0x93c, 0x94d, 0x3099, 0x304b}

// TestExactNFCMatchesXText checks the exact algorithm against x/text wherever x/text's run limit
// does not apply.
func TestExactNFCMatchesXText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		for n := r.IntN(20); n > 0; n-- {
			b.WriteRune(markAlphabet[r.IntN(len(markAlphabet))])
		}
		s := b.String()
		want := norm.NFC.String(s)
		if strings.Count(want, cgj) != strings.Count(s, cgj) {
			continue
		}
		if got := exactNFC(s); got != want {
			t.Fatalf("exactNFC(%+q) = %+q, x/text %+q", s, got, want)
		}
	}
}

func FuzzNFC(f *testing.F) {
	f.Add("e\u0301\u0323")
	f.Add("a" + strings.Repeat("\u0316\u0301", 20))
	f.Fuzz(func(t *testing.T, s string) {
		got := nfc(s)
		if want := norm.NFC.String(s); strings.Count(want, cgj) == strings.Count(s, cgj) && got != want {
			t.Fatalf("nfc(%+q) = %+q, x/text %+q", s, got, want)
		}
		if again := nfc(got); again != got {
			t.Fatalf("nfc not idempotent on %+q: %+q then %+q", s, got, again)
		}
	})
}

func FuzzParse(f *testing.F) {
	valid := mustJSON(f, synthetic([][2]string{{"a", "b"}, {"ab", "c"}, {"Ġ", "a"}},
		AddedToken{ID: 400, Content: "<|endoftext|>", Special: true},
		AddedToken{ID: 401, Content: "<x>", LStrip: true, RStrip: true},
		AddedToken{ID: 402, Content: "é", Normalized: true, SingleWord: true}))
	f.Add(valid, []byte(`{"pad_token": "<x>"}`))
	f.Add(valid, []byte(nil))
	f.Add(valid[:len(valid)/2], []byte(nil))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}}`), []byte(`{"pad_token": {"content": 1}}`))
	f.Add([]byte(`{"model": {"vocab": {"a": 99999999999}, "merges": []}}`), []byte(`[`))
	f.Add([]byte(`null`), []byte(`null`))
	f.Fuzz(func(t *testing.T, data, config []byte) {
		tok, err := Parse(data, config)
		if err != nil {
			if tok != nil {
				t.Fatal("Parse returned both a tokenizer and an error")
			}
			return
		}
		_, _ = tok.PadID()
		for _, s := range []string{"", "abc ab", "<|endoftext|> x <x>  é", "\xff猫\n\n"} {
			ids := tok.Encode(s)
			if _, err := tok.Decode(ids); err != nil {
				t.Fatalf("Encode(%q) gave ids Decode rejects: %v", s, err)
			}
			if _, err := tok.Tokens(ids); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tok.Decode([]int{-1, tok.VocabSize(), 1 << 40}); err == nil {
			t.Fatal("Decode accepted unknown ids")
		}
	})
}

func TestValidUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc 猫", "abc 猫"},
		{"\uFFFD", "\uFFFD"},
		// The example of Unicode §3.9 (U+FFFD substitution of maximal subparts).
		{"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd"},
		{"\xE0\x80\x80", "\uFFFD\uFFFD\uFFFD"},           // overlong: E0 needs A0..BF next
		{"\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"},           // surrogate
		{"\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"}, // above U+10FFFF
		{"\xF0\x9F\x90", "\uFFFD"},                       // truncated emoji
		{"\xF0\x9F\x90x", "\uFFFDx"},
	}
	for _, tc := range tests {
		if got := validUTF8(tc.in); got != tc.want {
			t.Errorf("validUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
