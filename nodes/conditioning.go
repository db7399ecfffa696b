package nodes

import (
	"context"
	"fmt"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/qwen3"
	"github.com/dypegraph/dypegraph/models/qwen3/tokenizer"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// Text encoding for Z-Image: CLIPLoader, CLIPTextEncode, ConditioningZeroOut.

// Clip is ComfyUI's CLIP: a loaded text encoder with its tokenizer.
type Clip struct {
	enc  *loadedEncoder
	Tok  *tokenizer.Tokenizer
	Type string
	Name string
	// lora holds the LoRA patches (LoraLoader) and the patched encoder built from them; nil
	// without LoRA. Clones share it.
	lora *loraState[*qwen3.Encoder]
}

// Encoder returns the loaded Qwen3 encoder, without LoRA patches; CLIPTextEncode runs
// PatchedEncoder.
func (c *Clip) Encoder() *qwen3.Encoder { return c.enc.enc }

// loadedEncoder owns an encoder's memory map; it is closed when the last cached CLIP handle
// that refers to it is released.
type loadedEncoder struct {
	enc *qwen3.Encoder
	ref *sharedModel
}

// Retain and Release count the executor's cached references (see Releaser), of the loaded
// encoder and of the LoRA-patched one.
func (c *Clip) Retain() {
	c.enc.ref.retain()
	if c.lora != nil {
		c.lora.ref.retain()
	}
}

func (c *Clip) Release() {
	if c.lora != nil {
		c.lora.ref.release()
	}
	c.enc.ref.release()
}

// CondEntry is one conditioning: the caption features [1, Tokens, Dim] on the host, and
// ComfyUI's attention mask (1 = valid) beside them.
type CondEntry struct {
	Tokens, Dim int
	Hidden      []float32
	Mask        []int
}

// Conditioning is ComfyUI's CONDITIONING: a list of entries.
type Conditioning struct {
	Entries []CondEntry
}

var clipTypes = []string{"stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2", "ovis", "longcat_image", "cogvideox", "lens", "pixeldit", "ideogram4", "boogu", "krea2", "joyimage", "mage", "minimax"}

// ---- CLIPLoader

type clipLoader struct{}

func listTextEncoders(env Env) []string { return ListModels(env, "text_encoders") }

func (clipLoader) Schema() *Schema {
	return &Schema{
		Name: "CLIPLoader", DisplayName: "Load CLIP", Category: "model/loaders",
		Description: "Recipes:\nsd: clip-l\nstable cascade: clip-g\nsd3: t5 xxl / clip-g / clip-l\nstable audio: t5 base\nmochi: t5 xxl\ncogvideox: t5 xxl (226-token padding)\ncosmos: old t5 xxl\nlumina2: gemma 2 2B\nwan: umt5 xxl\nhidream: llama-3.1 (Recommend) or t5\nomnigen2: qwen vl 2.5 3B\njoyimage: qwen3-vl 8B\nlens: gpt-oss-20b\npixeldit: gemma 2 2B elm\nminimax: MiniMax H3 Qwen3-VL or Music3 Qwen/RVQ",
		Inputs: []InputSpec{
			{Name: "clip_name", Type: TypeCombo, OptionsFrom: listTextEncoders},
			{Name: "type", Type: TypeCombo, Options: clipTypes},
			{Name: "device", Type: TypeCombo, Options: []string{"default", "cpu"}, Optional: true, Extra: []KV{{"advanced", true}}},
		},
		Outputs: []OutputSpec{{Type: TypeClip}},
	}
}

func (clipLoader) Fingerprint(in *Inputs, env Env) (string, error) {
	path, err := ModelPath(env, "text_encoders", in.String("clip_name"))
	if err != nil {
		return "", err
	}
	return fileIdentity(path)
}

func (clipLoader) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	env := rt.Env()
	name := in.String("clip_name")
	path, err := ModelPath(env, "text_encoders", name)
	if err != nil {
		return nil, Errorf("FileNotFoundError", "%v", err)
	}
	if err := requireFamily(path, detect.Qwen3, "CLIPLoader", "a Qwen3 text encoder (qwen_3_4b.safetensors for Z-Image)"); err != nil {
		return nil, err
	}
	be, err := env.ComputeBackend()
	if err != nil {
		return nil, err
	}
	tokPath, err := tokenizer.Find(path, "")
	if err != nil {
		return nil, Errorf("FileNotFoundError", "CLIPLoader: %v", err)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, Errorf("ValueError", "CLIPLoader: %v", err)
	}
	enc, err := qwen3.Load(path, be, qwen3.Options{})
	if err != nil {
		return nil, Errorf("ValueError", "CLIPLoader: %v", err)
	}
	le := &loadedEncoder{enc: enc, ref: newSharedModel(enc.Close)}
	return &Outputs{Values: []any{&Clip{enc: le, Tok: tok, Type: in.String("type"), Name: name}}}, nil
}

// requireFamily checks a checkpoint's model family from its header before loading it, so a
// wrong file in a loader gives a message that says what belongs there.
func requireFamily(path, family, node, what string) error {
	src, err := safetensors.OpenSet(path)
	if err != nil {
		return Errorf("ValueError", "%s: %v (only .safetensors checkpoints are supported)", node, err)
	}
	defer src.Close()
	res := detect.Detect(detect.ShapesOf(src))
	if res.Model != family {
		return Errorf("ValueError", "%s: %s holds a %s model, not %s", node, path, res.Model, what)
	}
	return nil
}

// ---- CLIPTextEncode

type clipTextEncode struct{}

func (clipTextEncode) Schema() *Schema {
	return &Schema{
		Name: "CLIPTextEncode", DisplayName: "CLIP Text Encode (Prompt)", Category: "model/conditioning",
		Description: "Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images.",
		Inputs: []InputSpec{
			{Name: "text", Type: TypeString, Extra: []KV{{"multiline", true}, {"dynamicPrompts", true}, {"tooltip", "The text to be encoded."}}},
			{Name: "clip", Type: TypeClip, Extra: []KV{{"tooltip", "The CLIP model used for encoding the text."}}},
		},
		Outputs:        []OutputSpec{{Type: TypeConditioning}},
		OutputTooltips: []string{"A conditioning containing the embedded text used to guide the diffusion model."},
		SearchAliases:  []string{"text", "prompt", "text prompt", "positive prompt", "negative prompt", "encode text", "text encoder", "encode prompt"},
	}
}

func (clipTextEncode) Execute(ctx context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	clip, ok := in.Value("clip").(*Clip)
	if !ok || clip == nil {
		return nil, Errorf("RuntimeError", "ERROR: clip input is invalid: None")
	}
	encoder, err := clip.PatchedEncoder(ctx)
	if err != nil {
		return nil, Errorf("ValueError", "CLIPTextEncode: %v", err)
	}
	enc, err := encoder.EncodeZImage(ctx, clip.Tok, in.String("text"))
	if err != nil {
		return nil, Errorf("ValueError", "CLIPTextEncode: %v", err)
	}
	be := encoder.Backend()
	defer be.Free(enc.Hidden)
	shape := enc.Hidden.Shape()
	if len(shape) != 3 || shape[0] != 1 {
		return nil, fmt.Errorf("CLIPTextEncode: unexpected hidden shape %v", shape)
	}
	host := make([]float32, shape[1]*shape[2])
	if err := be.Read(host, enc.Hidden); err != nil {
		return nil, fmt.Errorf("CLIPTextEncode: read hidden state: %w", err)
	}
	cond := &Conditioning{Entries: []CondEntry{{Tokens: shape[1], Dim: shape[2], Hidden: host, Mask: enc.Mask}}}
	return &Outputs{Values: []any{cond}}, nil
}

// ---- ConditioningZeroOut

type conditioningZeroOut struct{}

func (conditioningZeroOut) Schema() *Schema {
	return &Schema{
		Name: "ConditioningZeroOut", DisplayName: "Conditioning Zero Out", Category: "model/conditioning/transform",
		Inputs:        []InputSpec{{Name: "conditioning", Type: TypeConditioning}},
		Outputs:       []OutputSpec{{Type: TypeConditioning}},
		SearchAliases: []string{"null conditioning", "clear conditioning"},
	}
}

func (conditioningZeroOut) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	src, ok := in.Value("conditioning").(*Conditioning)
	if !ok || src == nil {
		return nil, Errorf("TypeError", "conditioning input is not a CONDITIONING")
	}
	out := &Conditioning{}
	for _, e := range src.Entries {
		out.Entries = append(out.Entries, CondEntry{Tokens: e.Tokens, Dim: e.Dim, Hidden: make([]float32, len(e.Hidden)), Mask: append([]int(nil), e.Mask...)})
	}
	return &Outputs{Values: []any{out}}, nil
}

// hostTensor wraps host data as an F32 tensor on the backend.
func hostTensor(be tensor.Backend, data []float32, shape ...int) (*tensor.Tensor, error) {
	t, err := tensor.FromFloat32(data, shape...)
	if err != nil {
		return nil, err
	}
	return be.ToDevice(t)
}

func init() {
	register(clipLoader{})
	register(clipTextEncode{})
	register(conditioningZeroOut{})
}
