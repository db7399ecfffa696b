package tokenizer

import (
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// cgj is U+034F COMBINING GRAPHEME JOINER.
const cgj = "\u034f"

// nfc returns the NFC form of s as Unicode defines it (what Rust's unicode-normalization, used
// by Hugging Face tokenizers, and Python's unicodedata produce).
//
// golang.org/x/text/unicode/norm differs in one respect: it follows the Stream-Safe Text Format
// and inserts a U+034F after every 30 consecutive non-starters (combining marks), reordering
// only within those chunks. That happens only in such "Zalgo" runs, and always leaves an extra
// U+034F behind, so its output is used unless it gained one; then exactNFC recomputes it.
func nfc(s string) string {
	out := norm.NFC.String(s)
	if strings.Contains(out, cgj) && strings.Count(out, cgj) != strings.Count(s, cgj) {
		return exactNFC(s)
	}
	return out
}

// ccc returns the canonical combining class of r.
func ccc(r rune) uint8 {
	if r < utf8.RuneSelf {
		return 0
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	return norm.NFD.Properties(buf[:n]).CCC()
}

// exactNFC is the textbook algorithm of Unicode §3.11 without any run-length limit: full
// canonical decomposition, canonical ordering of every run of non-starters, then canonical
// composition. It leans on x/text only for per-rune data (decompositions, combining classes)
// and for composing a single pair, where no run limit applies. It is slow and used rarely.
func exactNFC(s string) string {
	var rs []rune
	var cs []uint8
	for _, r := range s {
		for _, d := range norm.NFD.String(string(r)) {
			rs = append(rs, d)
			cs = append(cs, ccc(d))
		}
	}
	// Canonical ordering: a stable sort by combining class of each maximal run of non-starters.
	for i := 0; i < len(rs); {
		if cs[i] == 0 {
			i++
			continue
		}
		j := i
		for j < len(rs) && cs[j] != 0 {
			j++
		}
		sort.Stable(markRun{rs[i:j], cs[i:j]})
		i = j
	}
	// Canonical composition: each character joins the last starter when not blocked from it (no
	// character between them, or the last one between has a lower, non-zero class) and the pair
	// has a primary composite.
	starter, w := -1, 0
	var lastCCC uint8
	for k := range rs {
		r, c := rs[k], cs[k]
		if starter >= 0 && (w-1 == starter || (lastCCC != 0 && lastCCC < c)) {
			if comp, ok := composePair(rs[starter], r); ok {
				rs[starter] = comp
				continue
			}
		}
		if c == 0 {
			starter = w
		}
		rs[w], cs[w] = r, c
		lastCCC = c
		w++
	}
	return string(rs[:w])
}

// composePair returns the primary composite of a starter and the next character, if any. The
// NFC of the two alone is a single rune exactly when they compose (composition exclusions
// included).
func composePair(starter, next rune) (rune, bool) {
	out := norm.NFC.String(string(starter) + string(next))
	r, n := utf8.DecodeRuneInString(out)
	if n == 0 || n != len(out) {
		return 0, false
	}
	return r, true
}

// markRun sorts a run of non-starters by combining class.
type markRun struct {
	rs []rune
	cs []uint8
}

func (m markRun) Len() int           { return len(m.rs) }
func (m markRun) Less(i, j int) bool { return m.cs[i] < m.cs[j] }
func (m markRun) Swap(i, j int) {
	m.rs[i], m.rs[j] = m.rs[j], m.rs[i]
	m.cs[i], m.cs[j] = m.cs[j], m.cs[i]
}
