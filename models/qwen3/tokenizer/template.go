package tokenizer

import (
	"fmt"
	"strings"
)

// Prompt templates, by the names a --template flag accepts.
const (
	TemplateZImage = "zimage" // Z-Image's chat template (ZImagePrompt)
	TemplateNone   = "none"   // the text as given
)

// Templates lists the template names ApplyTemplate accepts.
var Templates = []string{TemplateZImage, TemplateNone}

// The parts of the Z-Image chat template. ComfyUI hard-codes it; the official pipeline and
// diffusers render the same string with apply_chat_template(add_generation_prompt=True,
// enable_thinking=True).
const (
	zimagePrefix = "<|im_start|>user\n"
	zimageSuffix = "<|im_end|>\n<|im_start|>assistant\n"
)

// ZImagePrompt wraps a prompt in the chat template Z-Image's text encoder was trained with:
// "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n".
func ZImagePrompt(prompt string) string {
	return zimagePrefix + prompt + zimageSuffix
}

// ApplyTemplate renders text with the named template (see Templates).
func ApplyTemplate(name, text string) (string, error) {
	switch name {
	case TemplateZImage:
		return ZImagePrompt(text), nil
	case TemplateNone:
		return text, nil
	}
	return "", fmt.Errorf("qwen3 tokenizer: unknown template %q (want one of %s)", name, strings.Join(Templates, ", "))
}

// EncodeZImage returns the ids of ZImagePrompt(prompt): for Qwen3, 151644 872 198, the prompt's
// tokens, then 151645 198 151644 77091 198.
func (t *Tokenizer) EncodeZImage(prompt string) []int {
	return t.Encode(ZImagePrompt(prompt))
}
