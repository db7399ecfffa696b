package tokenizer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// NotFoundError says that no tokenizer was found for a text encoder, and where it was looked for.
type NotFoundError struct {
	TextEncoder string   // the text-encoder path the search started from
	Looked      []string // every path tried, in order
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "qwen3 tokenizer: no %s found for text encoder %q; looked at:\n", FileName, e.TextEncoder)
	for _, p := range e.Looked {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	b.WriteString("put the Qwen3 tokenizer.json (the tokenizer/tokenizer.json of the Tongyi-MAI/Z-Image-Turbo " +
		"or Qwen/Qwen3-4B repositories; vocab.json and merges.txt alone are not enough) at one of these paths, " +
		"or give its path with --tokenizer")
	return b.String()
}

// Candidates returns, in the order Find tries them, the places a tokenizer for the text encoder
// at textEncoder (a weights file, a shard, or a folder) may live:
//
//   - for a file DIR/STEM.EXT: DIR/STEM.tokenizer.json, DIR/tokenizer.json, DIR/tokenizer/tokenizer.json;
//   - for a folder DIR: DIR/tokenizer.json, DIR/tokenizer/tokenizer.json (a diffusers root);
//   - when the file or folder is inside (or is) a diffusers text_encoder/ folder:
//     the tokenizer/tokenizer.json beside that text_encoder/ folder.
func Candidates(textEncoder string) []string {
	var out []string
	add := func(p string) {
		p = filepath.Clean(p)
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	dir := textEncoder
	if fi, err := os.Stat(textEncoder); err != nil || !fi.IsDir() {
		dir = filepath.Dir(textEncoder)
		base := filepath.Base(textEncoder)
		stem := strings.TrimSuffix(base, filepath.Ext(base))
		add(filepath.Join(dir, stem+"."+FileName))
	}
	add(filepath.Join(dir, FileName))
	add(filepath.Join(dir, "tokenizer", FileName))
	// The nearest text_encoder folder at or above dir (diffusers layout: ROOT/text_encoder/*.safetensors
	// beside ROOT/tokenizer/tokenizer.json).
	for d := filepath.Clean(dir); ; {
		if filepath.Base(d) == "text_encoder" {
			add(filepath.Join(filepath.Dir(d), "tokenizer", FileName))
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return out
}

// Find returns the tokenizer.json to use with the text encoder at textEncoder. A non-empty
// explicit path (a --tokenizer flag; a file or a folder holding tokenizer.json) wins and must
// exist. Otherwise the Candidates are tried in order; when none exists the error is a
// *NotFoundError naming them all.
func Find(textEncoder, explicit string) (string, error) {
	if explicit != "" {
		p := explicit
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			p = filepath.Join(p, FileName)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("qwen3 tokenizer: --tokenizer %s: %w", explicit, err)
		}
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("qwen3 tokenizer: --tokenizer %s: not a regular file", p)
		}
		return p, nil
	}
	looked := Candidates(textEncoder)
	for _, p := range looked {
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", fmt.Errorf("qwen3 tokenizer: %w", err)
		}
	}
	return "", &NotFoundError{TextEncoder: textEncoder, Looked: looked}
}

// LoadFor finds (see Find) and loads the tokenizer for a text encoder.
func LoadFor(textEncoder, explicit string) (*Tokenizer, error) {
	p, err := Find(textEncoder, explicit)
	if err != nil {
		return nil, err
	}
	return Load(p)
}
