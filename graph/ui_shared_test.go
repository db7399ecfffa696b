package graph

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// schemaOnly is a test fixture: a node class with ComfyUI's schema whose execution is not part of
// these tests (the model nodes live in other packages).
type schemaOnly struct{ s *nodes.Schema }

func (n schemaOnly) Schema() *nodes.Schema { return n.s }
func (n schemaOnly) Execute(context.Context, *nodes.Inputs, nodes.Runtime) (*nodes.Outputs, error) {
	return nil, errors.New("schema-only test fixture")
}

func combo(name string, options ...string) nodes.InputSpec {
	return nodes.InputSpec{Name: name, Type: nodes.TypeCombo, Options: options}
}

func link(name, typ string) nodes.InputSpec { return nodes.InputSpec{Name: name, Type: typ} }

// zimageRegistry holds the real SaveImage plus ComfyUI's schemas of the Z-Image example's nodes.
func zimageRegistry(t *testing.T) *nodes.Registry {
	reg := nodes.NewRegistry()
	save, _ := nodes.Default().Get("SaveImage")
	reg.Register(save)
	out := func(types ...string) []nodes.OutputSpec {
		var o []nodes.OutputSpec
		for _, ty := range types {
			o = append(o, nodes.OutputSpec{Type: ty})
		}
		return o
	}
	for _, s := range []*nodes.Schema{
		{Name: "KSampler", Outputs: out("LATENT"), Inputs: []nodes.InputSpec{
			link("model", "MODEL"),
			{Name: "seed", Type: nodes.TypeInt, Default: int64(0), Min: int64(0), Max: uint64(18446744073709551615), ControlAfterGenerate: true},
			{Name: "steps", Type: nodes.TypeInt, Default: int64(20), Min: int64(1), Max: int64(10000)},
			{Name: "cfg", Type: nodes.TypeFloat, Default: 8.0, Min: 0.0, Max: 100.0},
			combo("sampler_name", "euler", "res_multistep"), combo("scheduler", "simple", "beta"),
			link("positive", "CONDITIONING"), link("negative", "CONDITIONING"), link("latent_image", "LATENT"),
			{Name: "denoise", Type: nodes.TypeFloat, Default: 1.0, Min: 0.0, Max: 1.0},
		}},
		{Name: "CLIPTextEncode", DisplayName: "CLIP Text Encode (Prompt)", Outputs: out("CONDITIONING"), Inputs: []nodes.InputSpec{
			{Name: "text", Type: nodes.TypeString, Extra: []nodes.KV{{Key: "multiline", Value: true}}}, link("clip", "CLIP")}},
		{Name: "VAEDecode", DisplayName: "VAE Decode", Outputs: out("IMAGE"), Inputs: []nodes.InputSpec{link("samples", "LATENT"), link("vae", "VAE")}},
		{Name: "EmptySD3LatentImage", Outputs: out("LATENT"), Inputs: []nodes.InputSpec{
			{Name: "width", Type: nodes.TypeInt, Min: int64(16), Max: int64(16384)}, {Name: "height", Type: nodes.TypeInt, Min: int64(16), Max: int64(16384)},
			{Name: "batch_size", Type: nodes.TypeInt, Min: int64(1), Max: int64(4096)}}},
		{Name: "UNETLoader", DisplayName: "Load Diffusion Model", Outputs: out("MODEL"), Inputs: []nodes.InputSpec{
			combo("unet_name", "z_image_turbo_bf16.safetensors"), combo("weight_dtype", "default", "fp8_e4m3fn")}},
		{Name: "VAELoader", DisplayName: "Load VAE", Outputs: out("VAE"), Inputs: []nodes.InputSpec{combo("vae_name", "ae.safetensors")}},
		{Name: "CLIPLoader", DisplayName: "Load CLIP", Outputs: out("CLIP"), Inputs: []nodes.InputSpec{
			combo("clip_name", "qwen_3_4b.safetensors"), combo("type", "stable_diffusion", "lumina2"), {Name: "device", Type: nodes.TypeCombo, Options: []string{"default", "cpu"}, Optional: true}}},
		{Name: "ModelSamplingAuraFlow", Outputs: out("MODEL"), Inputs: []nodes.InputSpec{link("model", "MODEL"), {Name: "shift", Type: nodes.TypeFloat, Default: 1.73}}},
	} {
		reg.Register(schemaOnly{s})
	}
	return reg
}

// normalized renders a prompt with input keys sorted and without _meta, after validation wrote
// the converted literals back, so two prompts that ComfyUI would execute identically compare equal.
func normalized(t *testing.T, wf *Workflow, reg *nodes.Registry) string {
	t.Helper()
	res := Validate(wf, reg, nodes.Env{}, nil)
	if !res.OK() {
		t.Fatalf("validation failed: %s", mustJSON(res.ErrorResponse(wf.Order)))
	}
	ids := append([]string(nil), wf.Order...)
	sortIDs(ids)
	out := ojson.NewObject()
	for _, id := range ids {
		n := wf.Nodes[id]
		raw, _ := n.Raw.Get("inputs")
		in := raw.(*ojson.Object)
		keys := append([]string(nil), in.Keys()...)
		sort.Strings(keys)
		sorted := ojson.NewObject()
		for _, k := range keys {
			v, _ := in.Get(k)
			sorted.Set(k, v)
		}
		out.Set(id, ojson.NewObject().Set("class_type", n.ClassType).Set("title", n.Title).Set("inputs", sorted))
	}
	return string(mustJSON(out))
}

// TestSharedZImagePNGWorkflowMatchesItsPrompt converts the UI workflow embedded in the official
// Z-Image example PNG (with a Note and a bypassed ModelSamplingAuraFlow) and compares it with the
// API prompt ComfyUI embedded next to it.
func TestSharedZImagePNGWorkflowMatchesItsPrompt(t *testing.T) {
	shared, err := golden.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(shared, "workflows", "comfyui_examples_z_image_turbo.png"))
	if err != nil {
		t.Fatalf("the shared example PNG is part of shared/workflows: %v", err)
	}
	texts, err := nodes.ReadPNGText(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	reg := zimageRegistry(t)
	fromUI, err := Parse([]byte(texts["workflow"]), reg, nodes.Env{})
	if err != nil {
		t.Fatal(err)
	}
	fromPrompt, err := Parse([]byte(texts["prompt"]), reg, nodes.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := normalized(t, fromUI, reg), normalized(t, fromPrompt, reg); got != want {
		t.Fatalf("converted UI workflow differs from the embedded prompt:\n got %s\nwant %s", got, want)
	}
	seed, _ := fromUI.Nodes["3"].Raw.Get("inputs")
	if v, _ := seed.(*ojson.Object).Get("seed"); mustJSONString(v) != "47447417949230" {
		t.Fatalf("seed %v", v)
	}
}

func mustJSONString(v any) string { return string(mustJSON(v)) }
