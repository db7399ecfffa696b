package tokenizer

import (
	"unicode/utf8"
)

// byteChar maps each byte value to the character GPT-2's byte-level alphabet uses for it:
// printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68
// byte values map to U+0100, U+0101, ... in increasing byte order (so ' ' is 'Ġ', '\n' is 'Ċ').
var byteChar [256]rune

// charByte is the inverse of byteChar.
var charByte = make(map[rune]byte, 256)

func init() {
	next := rune(0x100)
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			byteChar[b] = rune(b)
		} else {
			byteChar[b] = next
			next++
		}
		charByte[byteChar[b]] = byte(b)
	}
}

// byteLevel returns the byte-level spelling of s (each byte replaced by its alphabet character).
func byteLevel(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteChar[s[i]])
	}
	return string(buf)
}

// tokenBytes returns the bytes a token stands for when decoded, following the Hugging Face
// ByteLevel decoder: every character is mapped back through the byte-level alphabet, and a token
// holding any character outside that alphabet is taken verbatim.
func tokenBytes(tok string) string {
	buf := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := charByte[r]
		if !ok {
			return tok
		}
		buf = append(buf, b)
	}
	return string(buf)
}

// validUTF8 returns s with every maximal invalid UTF-8 subsequence replaced by one U+FFFD
// (Unicode's "maximal subpart" practice, as Python's errors="replace" and Rust's
// String::from_utf8_lossy do). It returns s itself when s is valid.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	buf := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			buf = append(buf, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			buf = append(buf, s[i:i+size]...)
			i += size
			continue
		}
		buf = append(buf, "\uFFFD"...)
		i += maximalSubpart(s[i:])
	}
	return string(buf)
}

// maximalSubpart returns the length (at least 1) of the invalid sequence starting at s[0]: the
// lead byte plus the continuation bytes that are still a valid prefix of some UTF-8 encoding.
func maximalSubpart(s string) int {
	var need int
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the first continuation byte
	switch c := s[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(s); k++ {
		c := s[n]
		if c < lo || c > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}
