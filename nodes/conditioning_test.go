package nodes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
)

// linkFile places a golden file into the models folder under a new name.
func linkFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tinyClipEnv puts the golden tiny Qwen3 weights (with their sidecar) and the byte-level fixture
// tokenizer into a models folder.
func tinyClipEnv(t *testing.T) Env {
	t.Helper()
	m := golden.MustLoad(t)
	env := tempEnv(t)
	dir := filepath.Join(env.ModelsDir, "text_encoders")
	linkFile(t, m.Path("qwen3_tiny_weights.safetensors"), filepath.Join(dir, "tiny.safetensors"))
	linkFile(t, m.Path("qwen3_tiny_weights.config.json"), filepath.Join(dir, "tiny.config.json"))
	tok, err := tokenizer.FixtureJSON()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tiny.tokenizer.json"), tok, 0o644)
	return env
}

func TestTextEncodingNodes(t *testing.T) {
	env := tinyClipEnv(t)
	if got := ListModels(env, "text_encoders"); len(got) != 1 || got[0] != "tiny.safetensors" {
		t.Fatalf("text encoders %v", got)
	}
	in := NewInputs()
	in.Set("clip_name", "tiny.safetensors")
	in.Set("type", "lumina2")
	clip := exec(t, "CLIPLoader", in, env).Values[0].(*Clip)
	enc := NewInputs()
	enc.Set("clip", clip)
	enc.Set("text", "a cat")
	cond := exec(t, "CLIPTextEncode", enc, env).Values[0].(*Conditioning)
	ids := clip.Tok.EncodeZImage("a cat")
	e := cond.Entries[0]
	if e.Tokens != len(ids) || e.Dim != clip.Encoder().Config().HiddenSize || len(e.Hidden) != e.Tokens*e.Dim {
		t.Fatalf("conditioning %d x %d for %d ids", e.Tokens, e.Dim, len(ids))
	}
	nonzero := false
	for _, v := range e.Hidden {
		if v != v {
			t.Fatal("NaN in hidden state")
		}
		nonzero = nonzero || v != 0
	}
	if !nonzero {
		t.Fatal("hidden state is all zeros")
	}
	z := NewInputs()
	z.Set("conditioning", cond)
	zero := exec(t, "ConditioningZeroOut", z, env).Values[0].(*Conditioning)
	for _, v := range zero.Entries[0].Hidden {
		if v != 0 {
			t.Fatal("ConditioningZeroOut left a non-zero value")
		}
	}
	stillNonzero := false
	for _, v := range cond.Entries[0].Hidden {
		stillNonzero = stillNonzero || v != 0
	}
	if !stillNonzero {
		t.Fatal("ConditioningZeroOut modified its input")
	}
}

func TestCLIPLoaderRefusesOtherModels(t *testing.T) {
	m := golden.MustLoad(t)
	env := tempEnv(t)
	linkFile(t, m.Path("vae_tiny_weights.safetensors"), filepath.Join(env.ModelsDir, "text_encoders", "vae.safetensors"))
	in := NewInputs()
	in.Set("clip_name", "vae.safetensors")
	in.Set("type", "lumina2")
	n, _ := Default().Get("CLIPLoader")
	_, err := n.Execute(context.Background(), in, testRuntime{env})
	if err == nil || !strings.Contains(err.Error(), "flux_vae") {
		t.Fatalf("want a wrong-family error, got %v", err)
	}
}
