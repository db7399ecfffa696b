package qwen3

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/lora"
	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// Options configures loading.
type Options struct {
	// LayerIdx overrides the configured hidden layer (see Config.LayerIdx): the decoder layer
	// whose output Hidden returns, negative values counting from the end. Nil keeps the
	// config's value (a sidecar's "layer_idx"), else DefaultLayerIdx.
	LayerIdx *int
	// Full also loads the decoder layers after the hidden layer and the final norm, so that
	// Forward can return any layer's output and the final-normed state. By default only the
	// layers the hidden state needs are loaded (every tensor is still checked).
	Full bool
}

// layerWeights are the tensors of one decoder layer.
type layerWeights struct {
	inNorm, postNorm *tensor.Tensor // [hidden]
	q, k, v, o       *tensor.Tensor // [heads·head_dim, hidden], [kv·head_dim, hidden] ×2, [hidden, heads·head_dim]
	qNorm, kNorm     *tensor.Tensor // [head_dim]
	gate, up, down   *tensor.Tensor // [inter, hidden] ×2, [hidden, inter]
}

// Encoder is a loaded Qwen3 decoder. It is immutable and safe for concurrent use until Close.
type Encoder struct {
	cfg     Config
	be      tensor.Backend
	name    string
	set     *safetensors.Set // owned when loaded from a path
	embed   *tensor.Tensor   // [vocab, hidden]
	layers  []layerWeights   // the loaded layers, 0..len-1
	norm    *tensor.Tensor   // final norm; nil unless Options.Full
	hidden  int              // resolved layer whose output Hidden returns
	weights []*tensor.Tensor // everything to hand back on Close
	close   sync.Once

	// base and patches are set on a patched view (WithPatches): the unpatched encoder whose
	// tensors the view shares, and the patches that the view's own tensors (weights) carry.
	base    *Encoder
	patches []lora.Patch
}

// Load opens the Qwen3 weights at path (a .safetensors file, a *.safetensors.index.json, or a
// folder of shards such as a diffusers text_encoder/), infers the configuration from the tensor
// shapes, lays a sidecar <weights>.config.json over it (for a folder or index without one, the
// Hugging Face config.json beside the shards), and prepares the weights on be without converting
// them. The file stays memory-mapped until Close.
func Load(path string, be tensor.Backend, opts Options) (*Encoder, error) {
	if be == nil {
		return nil, errors.New("qwen3: no backend")
	}
	path = filepath.Clean(path)
	set, err := safetensors.OpenSet(path)
	if err != nil {
		return nil, fmt.Errorf("qwen3: %w", err)
	}
	r, err := detectWithConfig(path, set)
	if err != nil {
		set.Close()
		return nil, err
	}
	d, err := configFrom(r, path, opts.LayerIdx)
	if err != nil {
		set.Close()
		return nil, err
	}
	e, err := build(path, set, d, be, opts)
	if err != nil {
		set.Close()
		return nil, err
	}
	e.set = set
	return e, nil
}

// New prepares an encoder over tensors already open (a safetensors File, Set or View), with the
// configuration inferred from their shapes alone. The caller keeps src open until Close.
func New(src safetensors.Source, be tensor.Backend, opts Options) (*Encoder, error) {
	if be == nil {
		return nil, errors.New("qwen3: no backend")
	}
	name := "weights"
	if p, ok := src.(interface{ Path() string }); ok && p.Path() != "" {
		name = p.Path()
	}
	d, err := configFrom(detectQwen3(src), name, opts.LayerIdx)
	if err != nil {
		return nil, err
	}
	return build(name, src, d, be, opts)
}

// detectQwen3 finds the Qwen3 decoder among the tensors: the whole set, or, in a combined
// checkpoint whose diffusion model detection would report first, the tensors under the prefix of
// an embed_tokens.weight.
func detectQwen3(src safetensors.Source) detect.Result {
	shapes := detect.ShapesOf(src)
	first := detect.Detect(shapes)
	if first.Model == detect.Qwen3 {
		return first
	}
	var prefixes []string
	for name := range shapes {
		if p, ok := strings.CutSuffix(name, "embed_tokens.weight"); ok && (p == "" || strings.HasSuffix(p, ".")) {
			prefixes = append(prefixes, p)
		}
	}
	slices.SortFunc(prefixes, func(a, b string) int { return len(a) - len(b) })
	for _, p := range prefixes {
		sub := detect.Shapes{}
		for name, s := range shapes {
			if strings.HasPrefix(name, p) {
				sub[name] = s
			}
		}
		if r := detect.Detect(sub); r.Model == detect.Qwen3 {
			return r
		}
	}
	return first
}

// detectWithConfig detects the model and merges the sidecar, or for a folder of shards (or its
// index file) without a sidecar, a Hugging Face config.json beside the shards.
func detectWithConfig(path string, src safetensors.Source) (detect.Result, error) {
	r := detectQwen3(src)
	sc := detect.SidecarPath(path)
	cfg, err := detect.ReadSidecar(sc)
	if errors.Is(err, fs.ErrNotExist) {
		cfg, sc, err = hfConfig(path)
		if cfg == nil && err == nil {
			return r, nil
		}
	}
	if err != nil {
		return r, fmt.Errorf("qwen3: %w", err)
	}
	if r.Model != detect.Qwen3 {
		return r, nil // configFrom reports why
	}
	merged, err := detect.Merge(r, cfg, sc)
	if err != nil {
		return r, fmt.Errorf("qwen3: %w", err)
	}
	return merged, nil
}

// hfConfig reads the config.json of a diffusers/Hugging Face folder: path is the folder or its
// index file. It returns nil, "", nil when there is none (or path is a single file).
func hfConfig(path string) (map[string]any, string, error) {
	dir := ""
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		dir = path
	} else if strings.HasSuffix(path, safetensors.IndexSuffix) {
		dir = filepath.Dir(path)
	}
	if dir == "" {
		return nil, "", nil
	}
	p := filepath.Join(dir, "config.json")
	cfg, err := detect.ReadSidecar(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if mt, ok := cfg["model_type"]; ok && mt != "qwen3" {
		return nil, "", fmt.Errorf("%s: model_type %v is not qwen3", p, mt)
	}
	// Keep only the keys this package reads: the rest of an HF config (architectures, dtype,
	// token ids, tie_word_embeddings ...) says nothing about the arithmetic and would show up as
	// conflicts.
	keep := map[string]any{}
	for _, k := range []string{"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
		"num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
		"hidden_act", "attention_bias", "rope_scaling"} {
		if v, ok := cfg[k]; ok {
			keep[k] = v
		}
	}
	return keep, p, nil
}

// quantSuffixes end the names of the scale tensors of quantised checkpoints (ComfyUI scaled FP8,
// comfy_quant mixed precision), which this package does not implement.
var quantSuffixes = []string{".scale_weight", ".weight_scale", ".scale_input", ".input_scale", ".comfy_quant", ".weight_scale_2"}

// build checks every tensor of the decoder and prepares the ones Options asks for.
func build(name string, src safetensors.Source, d detected, be tensor.Backend, opts Options) (*Encoder, error) {
	cfg := d.Config
	hidden, err := cfg.resolveLayer(cfg.layerIdx())
	if err != nil {
		return nil, fmt.Errorf("qwen3: %s: %w", name, err)
	}
	prefix := d.tensorPrefix()
	if err := checkExtras(name, src, prefix); err != nil {
		return nil, err
	}
	H, D, I := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize
	qDim, kvDim := cfg.NumAttentionHeads*D, cfg.NumKeyValueHeads*D
	layerShapes := func(l int) []spec {
		p := fmt.Sprintf("%slayers.%d.", prefix, l)
		return []spec{
			{p + "input_layernorm.weight", []int{H}},
			{p + "post_attention_layernorm.weight", []int{H}},
			{p + "self_attn.q_proj.weight", []int{qDim, H}},
			{p + "self_attn.k_proj.weight", []int{kvDim, H}},
			{p + "self_attn.v_proj.weight", []int{kvDim, H}},
			{p + "self_attn.o_proj.weight", []int{H, qDim}},
			{p + "self_attn.q_norm.weight", []int{D}},
			{p + "self_attn.k_norm.weight", []int{D}},
			{p + "mlp.gate_proj.weight", []int{I, H}},
			{p + "mlp.up_proj.weight", []int{I, H}},
			{p + "mlp.down_proj.weight", []int{H, I}},
		}
	}
	// Check every tensor's presence, dtype and shape first, without touching data.
	all := []spec{{prefix + "embed_tokens.weight", []int{cfg.VocabSize, H}}}
	for l := range cfg.NumHiddenLayers {
		all = append(all, layerShapes(l)...)
	}
	if opts.Full {
		all = append(all, spec{prefix + "norm.weight", []int{H}})
	}
	var problems []string
	for _, s := range all {
		if err := s.check(src); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		if len(problems) > 8 {
			problems = append(problems[:8], fmt.Sprintf("and %d more", len(problems)-8))
		}
		if d.conflicts != "" {
			problems = append([]string{d.conflicts}, problems...)
		}
		return nil, fmt.Errorf("qwen3: %s: not a %d-layer Qwen3 decoder (hidden %d, %d/%d heads of %d, MLP %d): %s",
			name, cfg.NumHiddenLayers, H, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, D, I, strings.Join(problems, "; "))
	}

	e := &Encoder{cfg: cfg, be: be, name: name, hidden: hidden}
	ld := loader{src: src, be: be, e: e, file: name}
	e.embed = ld.get(all[0])
	nLoad := hidden + 1
	if opts.Full {
		nLoad = cfg.NumHiddenLayers
		e.norm = ld.get(all[len(all)-1])
	}
	for l := range nLoad {
		s := layerShapes(l)
		e.layers = append(e.layers, layerWeights{
			inNorm: ld.get(s[0]), postNorm: ld.get(s[1]),
			q: ld.get(s[2]), k: ld.get(s[3]), v: ld.get(s[4]), o: ld.get(s[5]),
			qNorm: ld.get(s[6]), kNorm: ld.get(s[7]),
			gate: ld.get(s[8]), up: ld.get(s[9]), down: ld.get(s[10]),
		})
	}
	if ld.err != nil {
		be.Free(e.weights...)
		return nil, ld.err
	}
	return e, nil
}

// checkExtras rejects tensors under the decoder's prefix that would change the arithmetic if
// ignored: biases (Qwen3 has none) and quantisation scales.
func checkExtras(file string, src safetensors.Source, prefix string) error {
	for _, n := range src.Names() {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok || !strings.HasPrefix(rest, "layers.") {
			continue
		}
		for _, suf := range quantSuffixes {
			if strings.HasSuffix(rest, suf) {
				return fmt.Errorf("qwen3: %s: tensor %q: quantised (scaled FP8) text encoders are not supported; use the bf16 qwen_3_4b.safetensors", file, n)
			}
		}
		if strings.HasSuffix(rest, ".bias") {
			return fmt.Errorf("qwen3: %s: tensor %q: Qwen3 layers have no biases (is this a Qwen2 model?)", file, n)
		}
	}
	return nil
}

// spec is a tensor a model needs: its stored name and shape.
type spec struct {
	name  string
	shape []int
}

func (s spec) check(src safetensors.Source) error {
	info, ok := src.Info(s.name)
	if !ok {
		return fmt.Errorf("tensor %q missing", s.name)
	}
	if !slices.Equal(info.Shape, s.shape) {
		return fmt.Errorf("tensor %q has shape %v, want %v", s.name, info.Shape, s.shape)
	}
	if _, err := tensor.ParseDType(string(info.DType)); err != nil {
		return fmt.Errorf("tensor %q has dtype %s, want F32, BF16, F16 or FP8", s.name, info.DType)
	}
	return nil
}

// loader wraps tensors of src for the backend, recording the first error.
type loader struct {
	src  safetensors.Source
	be   tensor.Backend
	e    *Encoder
	file string
	err  error
}

func (l *loader) get(s spec) *tensor.Tensor {
	if l.err != nil {
		return nil
	}
	info, _ := l.src.Info(s.name)
	fail := func(err error) *tensor.Tensor {
		l.err = fmt.Errorf("qwen3: %s: tensor %q: %w", l.file, s.name, err)
		return nil
	}
	dt, err := tensor.ParseDType(string(info.DType))
	if err != nil {
		return fail(err)
	}
	data, err := l.src.Data(s.name)
	if err != nil {
		return fail(err)
	}
	host, err := tensor.FromBytes(data, dt, s.shape...)
	if err != nil {
		return fail(err)
	}
	t, err := l.be.ToDevice(host)
	if err != nil {
		return fail(err)
	}
	l.e.weights = append(l.e.weights, t)
	return t
}

// Config returns the configuration (LayerIdx set to the hidden layer in use).
func (e *Encoder) Config() Config {
	c := e.cfg
	idx := e.hidden
	c.LayerIdx = &idx
	return c
}

// HiddenLayer returns the index (0-based, non-negative) of the decoder layer whose output Hidden
// returns.
func (e *Encoder) HiddenLayer() int { return e.hidden }

// Backend returns the backend the encoder runs on.
func (e *Encoder) Backend() tensor.Backend { return e.be }

// Name returns the path (or source name) the weights came from.
func (e *Encoder) Name() string { return e.name }

// String describes the encoder for logs.
func (e *Encoder) String() string {
	c := e.cfg
	return fmt.Sprintf("qwen3(%s: hidden %d, %d layers, %d/%d heads × %d, MLP %d, vocab %d, output of layer %d)",
		e.name, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim,
		c.IntermediateSize, c.VocabSize, e.hidden)
}

// Close hands the weights back to the backend and unmaps the file when Load opened it (for a
// patched view: frees the view's patched tensors only). Using the encoder afterwards gives
// errors (tensor.ErrFreed). Closing twice is a no-op.
func (e *Encoder) Close() error {
	var err error
	e.close.Do(func() {
		e.be.Free(e.weights...)
		e.weights = nil
		if e.set != nil {
			err = e.set.Close()
		}
	})
	return err
}
