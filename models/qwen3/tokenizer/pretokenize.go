package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// QwenPattern is the pre-tokenizer pattern of Qwen2, Qwen2.5 and Qwen3 tokenizer.json files. It
// is never compiled: nextPiece implements it by hand (Go's regexp has no look-ahead), and the
// loader only checks that a tokenizer.json asks for exactly this pattern.
const QwenPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// Character classes the pattern distinguishes. \p{L}, \p{N} and \s (Unicode White_Space, as in
// Oniguruma and Rust's regex) are disjoint, so one class per rune is enough.
const (
	clsOther  uint8 = iota // none of the below: punctuation, symbols, marks, controls ...
	clsLetter              // \p{L}
	clsNumber              // \p{N}
	clsSpace               // \s
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for c := 0; c < utf8.RuneSelf; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			asciiClass[c] = clsLetter
		case c >= '0' && c <= '9':
			asciiClass[c] = clsNumber
		case c == ' ', c >= '\t' && c <= '\r':
			asciiClass[c] = clsSpace
		}
	}
}

func classify(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r): // White_Space outside Latin-1, the same set inside it
		return clsSpace
	}
	return clsOther
}

// runeAt decodes the rune at s[i]; s must be valid UTF-8 and i < len(s).
func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// nextPiece returns the end of the pre-tokenizer piece that starts at s[i] (i < len(s)), i.e. the
// match the pattern's leftmost-first alternation finds there. s must be valid UTF-8. Every rune
// belongs to some alternative, so pieces tile the text with no gaps and are never empty.
func nextPiece(s string, i int) int {
	r, n := runeAt(s, i)
	c := classify(r)

	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' && i+n < len(s) {
		if l := contraction(s, i+n); l > 0 {
			return i + n + l
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+ : the optional prefix is greedy, so try it first.
	if c == clsLetter {
		return scanClass(s, i+n, clsLetter)
	}
	if c != clsNumber && r != '\r' && r != '\n' && i+n < len(s) {
		if r2, n2 := runeAt(s, i+n); classify(r2) == clsLetter {
			return scanClass(s, i+n+n2, clsLetter)
		}
	}
	// \p{N}
	if c == clsNumber {
		return i + n
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	if c == clsOther {
		return scanNewlines(s, scanClass(s, i+n, clsOther))
	}
	if r == ' ' && i+n < len(s) {
		if r2, n2 := runeAt(s, i+n); classify(r2) == clsOther {
			return scanNewlines(s, scanClass(s, i+n+n2, clsOther))
		}
	}
	// Here r is whitespace. Measure the whole whitespace run once for the last three branches.
	end, lastNL, lastStart := i, -1, i
	for end < len(s) {
		r2, n2 := runeAt(s, end)
		if classify(r2) != clsSpace {
			break
		}
		if r2 == '\r' || r2 == '\n' {
			lastNL = end
		}
		lastStart = end
		end += n2
	}
	// \s*[\r\n]+ : \s* backtracks to the last line break of the run; [\r\n]+ then ends right
	// after it, since everything between it and the run's end is other whitespace.
	if lastNL >= 0 {
		return lastNL + 1
	}
	// \s+(?!\S) : the whole run at the end of the text, else the run minus its last rune (which
	// leaves that rune to start the next piece), provided that is not empty.
	if end == len(s) {
		return end
	}
	if lastStart > i {
		return lastStart
	}
	// \s+
	return end
}

// scanClass returns the end of the run of runes of class cls starting at s[i].
func scanClass(s string, i int, cls uint8) int {
	for i < len(s) {
		r, n := runeAt(s, i)
		if classify(r) != cls {
			break
		}
		i += n
	}
	return i
}

// scanNewlines returns the end of the run of '\r' and '\n' starting at s[i].
func scanNewlines(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

// contraction returns the byte length of the contraction suffix (s, t, re, ve, m, ll or d, case
// insensitive under Unicode simple case folding, so 'ſ' counts as 's') at s[i], or 0.
func contraction(s string, i int) int {
	r1, n1 := runeAt(s, i)
	switch {
	case foldsTo(r1, 's'), foldsTo(r1, 't'), foldsTo(r1, 'm'), foldsTo(r1, 'd'):
		return n1
	}
	var second rune
	switch {
	case foldsTo(r1, 'r'), foldsTo(r1, 'v'):
		second = 'e'
	case foldsTo(r1, 'l'):
		second = 'l'
	default:
		return 0
	}
	if i+n1 >= len(s) {
		return 0
	}
	if r2, n2 := runeAt(s, i+n1); foldsTo(r2, second) {
		return n1 + n2
	}
	return 0
}

// foldsTo reports whether r equals the ASCII lower-case letter lower under simple case folding.
func foldsTo(r, lower rune) bool {
	if r == lower || r == lower-'a'+'A' {
		return true
	}
	if r < utf8.RuneSelf {
		return false
	}
	for f := unicode.SimpleFold(lower); f != lower; f = unicode.SimpleFold(f) {
		if f == r {
			return true
		}
	}
	return false
}
