package tokenizer

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// pieces splits s with nextPiece.
func pieces(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := nextPiece(s, i)
		if j <= i || j > len(s) {
			panic("nextPiece made no progress")
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// Unicode White_Space spelled out, so that the oracle does not share classify's code.
const oracleSpace = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`

// The alternatives of QwenPattern as Go regexps anchored at the current position; \s is spelled
// as oracleSpace because Go's \s is ASCII-only. The look-ahead branch \s+(?!\S) has no Go
// equivalent and is emulated in oracleSplit from the definition of look-ahead.
var oracleAlts = []*regexp.Regexp{
	regexp.MustCompile(`^(?i:'s|'t|'re|'ve|'m|'ll|'d)`),
	regexp.MustCompile(`^[^\r\n\p{L}\p{N}]?\p{L}+`),
	regexp.MustCompile(`^\p{N}`),
	regexp.MustCompile(`^ ?[^` + oracleSpace + `\p{L}\p{N}]+[\r\n]*`),
	regexp.MustCompile(`^[` + oracleSpace + `]*[\r\n]+`),
	nil, // \s+(?!\S)
	regexp.MustCompile(`^[` + oracleSpace + `]+`),
}

var oracleNonSpace = regexp.MustCompile(`^[^` + oracleSpace + `]`)

// oracleMatch returns the end of the pattern's match at s[i:], or -1. Go's regexp reports the
// match a backtracking engine would prefer (leftmost-first), so trying the alternatives in order
// reproduces the pattern's alternation.
func oracleMatch(s string, i int) int {
	rest := s[i:]
	for _, re := range oracleAlts {
		if re == nil {
			// \s+(?!\S): the longest whitespace prefix after which no non-space follows.
			run := oracleAlts[6].FindStringIndex(rest)
			if run == nil {
				continue
			}
			for end := run[1]; end > 0; {
				if !oracleNonSpace.MatchString(rest[end:]) {
					return i + end
				}
				_, n := utf8.DecodeLastRuneInString(rest[:end])
				end -= n
			}
			continue
		}
		if loc := re.FindStringIndex(rest); loc != nil {
			return i + loc[1]
		}
	}
	return -1
}

// oracleSplit is the Isolated split: matches and the gaps between them (there should be none).
func oracleSplit(s string) []string {
	var out []string
	gap := -1
	for i := 0; i < len(s); {
		if end := oracleMatch(s, i); end > i {
			if gap >= 0 {
				out = append(out, s[gap:i])
				gap = -1
			}
			out = append(out, s[i:end])
			i = end
			continue
		}
		if gap < 0 {
			gap = i
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	if gap >= 0 {
		out = append(out, s[gap:])
	}
	return out
}

func TestPiecesTable(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello, my dog", []string{"Hello", ",", " my", " dog"}},
		{"don't I'LL we've", []string{"don", "'t", " I", "'LL", " we", "'ve"}},
		{"'sa", []string{"'s", "a"}},
		{"'ſ", []string{"'ſ"}}, // long s folds to s
		{"'x", []string{"'x"}},
		{"12 345", []string{"1", "2", " ", "3", "4", "5"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a   ", []string{"a", "   "}},
		{"x \n\n  y", []string{"x", " \n\n", " ", " y"}},
		{"line\r\nnext", []string{"line", "\r\n", "next"}},
		{"\tand", []string{"\tand"}},
		{"\t!", []string{"\t", "!"}},
		{" !!!\n\nx", []string{" !!!\n\n", "x"}},
		{"!abc", []string{"!abc"}},
		{"a.b", []string{"a", ".b"}},
		{"\u00a0non", []string{"\u00a0non"}},
		{"a\u3000b", []string{"a", "\u3000b"}},
		{"x\u0301y", []string{"x", "\u0301y"}},
		{"猫が", []string{"猫が"}},
		{"🐱\u200d👤", []string{"🐱\u200d👤"}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := pieces(tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("pieces(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := oracleSplit(tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("oracle(%q) = %q, want %q (the table is wrong)", tc.in, got, tc.want)
			}
		})
	}
}

// pieceAlphabet holds runes from every class the pattern distinguishes, plus the case-folding
// and whitespace corner cases.
var pieceAlphabet = []rune{
	' ', ' ', ' ', '\t', '\n', '\r', '\v', '\f', 0x1c, 0x85, 0xa0, 0x2003, 0x3000, 0x2028, 0x200b, 0xfeff,
	'a', 'Z', 's', 'S', 0x17f, 't', 'T', 'r', 'R', 'e', 'E', 'v', 'l', 'L', 'm', 'M', 'd', 'D', 0x212a, 'k',
	'\'', '\'', 0x2019, '"', '0', '7', 0x663, 0x216b, 0xbd, '!', '.', '-', '_', '<', '|', '>',
	0xe9, 0x301, 0x732b, 0x3042, 0xac00, 0x1f431, 0x200d, 0xdf, 0x0627,
}

func randomPieceText(r *rand.Rand) string {
	n := r.IntN(24)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(pieceAlphabet[r.IntN(len(pieceAlphabet))])
	}
	return b.String()
}

func TestPiecesMatchOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := []string{}
	for _, c := range goldenCases(t) {
		inputs = append(inputs, c.Text)
	}
	for i := 0; i < 20000; i++ {
		inputs = append(inputs, randomPieceText(r))
	}
	for _, s := range inputs {
		if got, want := pieces(s), oracleSplit(s); !slices.Equal(got, want) {
			t.Fatalf("pieces(%q) = %q, oracle %q", s, got, want)
		}
	}
}

func FuzzPieces(f *testing.F) {
	for _, s := range []string{"", "don't", "a  b\n\n c", "x\u0301", "'ſ", "\u00a0\u3000x", "1e10 !!\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // nextPiece requires valid UTF-8; Encode ensures it
		}
		if got, want := pieces(s), oracleSplit(s); !slices.Equal(got, want) {
			t.Fatalf("pieces(%q) = %q, oracle %q", s, got, want)
		}
	})
}
