package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/dypegraph/dypegraph/models/qwen3"
	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
)

func init() {
	commands["tokenize"] = command{summary: "print the Qwen3 token ids and tokens of a prompt (Z-Image template by default)", run: runTokenize}
}

// defaultTextEncoder is where ComfyUI's layout keeps the Z-Image text encoder; the tokenizer is
// looked for beside it when --tokenizer is not given.
var defaultTextEncoder = filepath.Join("models", "text_encoders", "qwen_3_4b.safetensors")

// tokenizeOutput is what `dypegraph tokenize` prints.
type tokenizeOutput struct {
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

func runTokenize(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tokPath := fs.String("tokenizer", "", "the Qwen3 tokenizer.json (or a folder holding it); default: looked for beside\n"+defaultTextEncoder)
	template := fs.String("template", tokenizer.TemplateZImage, "prompt template: "+strings.Join(tokenizer.Templates, " or ")+
		"\n(zimage: the ids ComfyUI's CLIPTextEncode feeds Z-Image's text encoder)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dypegraph tokenize [--tokenizer PATH] [--template zimage|none] [--] TEXT")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, `Prints {"ids": [...], "tokens": [...]} for TEXT as one JSON line.`)
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "dypegraph tokenize: want exactly one TEXT (quote it), got %d arguments\n\n", len(positional))
		fs.Usage()
		return 2
	}
	if *template != tokenizer.TemplateZImage && *template != tokenizer.TemplateNone {
		fmt.Fprintf(stderr, "dypegraph tokenize: unknown --template %q (want %s)\n\n", *template, strings.Join(tokenizer.Templates, " or "))
		fs.Usage()
		return 2
	}
	path, err := tokenizer.Find(defaultTextEncoder, *tokPath)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph tokenize: %v\n", err)
		return 1
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph tokenize: %v\n", err)
		return 1
	}
	text := positional[0]
	var ids []int
	if *template == tokenizer.TemplateZImage {
		if ids, err = qwen3.ZImageIDs(tok, text); err != nil {
			fmt.Fprintf(stderr, "dypegraph tokenize: %v\n", err)
			return 1
		}
	} else {
		ids = tok.Encode(text)
	}
	out := tokenizeOutput{IDs: ids, Tokens: []string{}}
	if out.IDs == nil {
		out.IDs = []int{}
	}
	if len(ids) > 0 {
		if out.Tokens, err = tok.Tokens(ids); err != nil {
			fmt.Fprintf(stderr, "dypegraph tokenize: %v\n", err)
			return 1
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "dypegraph tokenize: %v\n", err)
		return 1
	}
	return 0
}
