package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of the tokenizer.json "added_tokens" list: text matched verbatim before
// BPE and never split.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"` // only match when not inside a word
	LStrip     bool   `json:"lstrip"`      // also swallow the whitespace on its left
	RStrip     bool   `json:"rstrip"`      // also swallow the whitespace on its right
	Normalized bool   `json:"normalized"`  // match against the normalised text, not the raw text
	Special    bool   `json:"special"`     // skipped by DecodeSkipSpecial
}

// addedSet finds added tokens in text with leftmost-longest matching (what the Hugging Face
// AddedVocabulary's Aho-Corasick automaton does).
type addedSet struct {
	tokens  []AddedToken
	pattern []string     // what is matched: the content, NFC-normalised for normalized tokens
	byFirst [256][]int32 // indices into tokens by the pattern's first byte, longest first
	firsts  []byte       // the distinct first bytes of the patterns
}

func (a *addedSet) empty() bool { return len(a.tokens) == 0 }

func (a *addedSet) add(tok AddedToken, pattern string) {
	a.tokens = append(a.tokens, tok)
	a.pattern = append(a.pattern, pattern)
	b := pattern[0]
	if len(a.byFirst[b]) == 0 {
		a.firsts = append(a.firsts, b)
	}
	a.byFirst[b] = append(a.byFirst[b], int32(len(a.tokens)-1))
	list := a.byFirst[b]
	sort.SliceStable(list, func(i, j int) bool { return len(a.pattern[list[i]]) > len(a.pattern[list[j]]) })
}

// find returns the leftmost-longest match starting at or after from.
func (a *addedSet) find(s string, from int) (start, end, idx int, ok bool) {
	for i := from; i < len(s); i++ {
		if len(a.firsts) == 1 { // the usual case: every added token starts with '<'
			j := strings.IndexByte(s[i:], a.firsts[0])
			if j < 0 {
				break
			}
			i += j
		}
		for _, k := range a.byFirst[s[i]] {
			p := a.pattern[k]
			if len(s)-i >= len(p) && s[i:i+len(p)] == p {
				return i, i + len(p), int(k), true
			}
		}
	}
	return 0, 0, 0, false
}

// split walks s, calling text for every non-empty stretch outside added tokens and token for
// every added token, in order. It follows the Hugging Face rules: a single_word token inside a
// word is ignored, lstrip/rstrip tokens absorb the whitespace beside them, and the search resumes
// after each match. A match that would overlap text already consumed by an rstrip is skipped.
func (a *addedSet) split(s string, text func(string), token func(id int)) {
	done := 0 // s[:done] has been emitted
	for pos := 0; pos < len(s); {
		start, end, k, ok := a.find(s, pos)
		if !ok {
			break
		}
		pos = end
		tok := &a.tokens[k]
		if start < done {
			continue
		}
		if tok.SingleWord && (endsWithWord(s[:start]) || startsWithWord(s[end:])) {
			continue
		}
		if tok.LStrip {
			start = max(trailingSpaceStart(s[:start]), done)
		}
		if tok.RStrip {
			end += leadingSpaceLen(s[end:])
		}
		if done < start {
			text(s[done:start])
		}
		token(tok.ID)
		done = end
	}
	if done < len(s) {
		text(s[done:])
	}
}

// isWordRune is Rust regex's Unicode \w: alphabetic, marks, decimal digits, connector
// punctuation and join controls.
func isWordRune(r rune) bool {
	return unicode.In(r, unicode.L, unicode.Nl, unicode.Other_Alphabetic, unicode.M, unicode.Nd,
		unicode.Pc, unicode.Join_Control)
}

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordRune(r)
}

// trailingSpaceStart returns where the run of whitespace that ends s begins.
func trailingSpaceStart(s string) int {
	i := len(s)
	for i > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:i])
		if !unicode.IsSpace(r) {
			break
		}
		i -= n
	}
	return i
}

// leadingSpaceLen returns the length of the run of whitespace that begins s.
func leadingSpaceLen(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return i
}
