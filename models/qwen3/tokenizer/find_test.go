package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layout creates the given files (paths relative to root, "/"-separated) and returns root.
func layout(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFind(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		encoder  string // relative to the layout root
		explicit string // relative to the layout root; "" for none
		want     string // relative to the layout root; "" when an error is expected
	}{
		{
			name:    "ComfyUI stem sidecar",
			files:   []string{"text_encoders/qwen_3_4b.safetensors", "text_encoders/qwen_3_4b.tokenizer.json", "text_encoders/tokenizer.json"},
			encoder: "text_encoders/qwen_3_4b.safetensors",
			want:    "text_encoders/qwen_3_4b.tokenizer.json",
		},
		{
			name:    "same folder",
			files:   []string{"text_encoders/qwen_3_4b.safetensors", "text_encoders/tokenizer.json"},
			encoder: "text_encoders/qwen_3_4b.safetensors",
			want:    "text_encoders/tokenizer.json",
		},
		{
			name:    "tokenizer folder beside the file",
			files:   []string{"te/qwen.safetensors", "te/tokenizer/tokenizer.json"},
			encoder: "te/qwen.safetensors",
			want:    "te/tokenizer/tokenizer.json",
		},
		{
			name:    "diffusers shard",
			files:   []string{"zimage/text_encoder/model-00001-of-00003.safetensors", "zimage/tokenizer/tokenizer.json"},
			encoder: "zimage/text_encoder/model-00001-of-00003.safetensors",
			want:    "zimage/tokenizer/tokenizer.json",
		},
		{
			name:    "diffusers text_encoder folder",
			files:   []string{"zimage/text_encoder/config.json", "zimage/tokenizer/tokenizer.json"},
			encoder: "zimage/text_encoder",
			want:    "zimage/tokenizer/tokenizer.json",
		},
		{
			name:    "diffusers root folder",
			files:   []string{"zimage/text_encoder/config.json", "zimage/tokenizer/tokenizer.json"},
			encoder: "zimage",
			want:    "zimage/tokenizer/tokenizer.json",
		},
		{
			name:    "text_encoder further up",
			files:   []string{"zimage/text_encoder/bf16/model.safetensors", "zimage/tokenizer/tokenizer.json"},
			encoder: "zimage/text_encoder/bf16/model.safetensors",
			want:    "zimage/tokenizer/tokenizer.json",
		},
		{
			name:    "encoder file not created yet",
			files:   []string{"te/tokenizer.json"},
			encoder: "te/absent.safetensors",
			want:    "te/tokenizer.json",
		},
		{
			name:     "explicit file wins",
			files:    []string{"te/qwen.safetensors", "te/tokenizer.json", "elsewhere/my.json"},
			encoder:  "te/qwen.safetensors",
			explicit: "elsewhere/my.json",
			want:     "elsewhere/my.json",
		},
		{
			name:     "explicit folder",
			files:    []string{"te/qwen.safetensors", "tok/tokenizer.json"},
			encoder:  "te/qwen.safetensors",
			explicit: "tok",
			want:     "tok/tokenizer.json",
		},
		{
			name:     "explicit but missing",
			files:    []string{"te/qwen.safetensors", "te/tokenizer.json"},
			encoder:  "te/qwen.safetensors",
			explicit: "nope.json",
		},
		{
			name:     "explicit folder without tokenizer.json",
			files:    []string{"te/qwen.safetensors", "tok/vocab.json"},
			encoder:  "te/qwen.safetensors",
			explicit: "tok",
		},
		{
			name:    "a folder named like the sidecar is not a file",
			files:   []string{"te/qwen.safetensors", "te/tokenizer.json/x"},
			encoder: "te/qwen.safetensors",
		},
		{
			name:    "nothing",
			files:   []string{"te/qwen.safetensors", "te/vocab.json", "te/merges.txt"},
			encoder: "te/qwen.safetensors",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := layout(t, tc.files...)
			explicit := ""
			if tc.explicit != "" {
				explicit = filepath.Join(root, tc.explicit)
			}
			got, err := Find(filepath.Join(root, tc.encoder), explicit)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Find = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, filepath.FromSlash(tc.want)); got != want {
				t.Fatalf("Find = %q, want %q", got, want)
			}
		})
	}
}

func TestFindNotFoundNamesEveryPlace(t *testing.T) {
	root := layout(t, "models/zimage/text_encoder/model.safetensors")
	enc := filepath.Join(root, "models/zimage/text_encoder/model.safetensors")
	_, err := Find(enc, "")
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v is not a *NotFoundError", err)
	}
	want := []string{
		filepath.Join(root, "models/zimage/text_encoder/model.tokenizer.json"),
		filepath.Join(root, "models/zimage/text_encoder/tokenizer.json"),
		filepath.Join(root, "models/zimage/text_encoder/tokenizer/tokenizer.json"),
		filepath.Join(root, "models/zimage/tokenizer/tokenizer.json"),
	}
	if strings.Join(nf.Looked, "\n") != strings.Join(want, "\n") {
		t.Fatalf("looked at\n%s\nwant\n%s", strings.Join(nf.Looked, "\n"), strings.Join(want, "\n"))
	}
	msg := err.Error()
	for _, p := range want {
		if !strings.Contains(msg, p) {
			t.Errorf("message lacks %s:\n%s", p, msg)
		}
	}
	for _, hint := range []string{"--tokenizer", "tokenizer.json", enc} {
		if !strings.Contains(msg, hint) {
			t.Errorf("message lacks %q:\n%s", hint, msg)
		}
	}
}

func TestLoadFor(t *testing.T) {
	root := t.TempDir()
	enc := filepath.Join(root, "qwen.safetensors")
	if _, err := LoadFor(enc, ""); err == nil {
		t.Fatal("want an error with no tokenizer")
	}
	if err := os.WriteFile(filepath.Join(root, "qwen.tokenizer.json"), mustJSON(t, synthetic(nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadFor(enc, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("hi"); len(got) != 2 {
		t.Fatalf("Encode(hi) = %v", got)
	}
}
