package detect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dypegraph/dypegraph/internal/golden"
	"github.com/dypegraph/dypegraph/models/safetensors"
)

// keysFile reads one of golden/keys/*.tsv: column 1 is the single-file name and column 2 its
// shape; column 3 (when present) holds the diffusers name(s), parsed by alt.
func keysFile(t *testing.T, name string) (main Shapes, alt Shapes) {
	t.Helper()
	dir, err := golden.Dir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keys", name)
	fh, err := os.Open(path)
	if os.IsNotExist(err) {
		t.Fatalf("no %s in the golden directory", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	main, alt = Shapes{}, Shapes{}
	rowsRe := regexp.MustCompile(`^(\S+) <- rows \[(\d+):(\d+)\]$`)
	withShapeRe := regexp.MustCompile(`^(\S+) (\[[0-9, ]*\])$`)
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) < 2 {
			t.Fatalf("%s: bad line %q", path, line)
		}
		shape := parseShape(t, cols[1])
		main[cols[0]] = shape
		if len(cols) < 3 {
			continue
		}
		for _, part := range strings.Split(cols[2], "; ") {
			switch {
			case rowsRe.MatchString(part): // a row block of a fused matrix
				m := rowsRe.FindStringSubmatch(part)
				lo, _ := strconv.Atoi(m[2])
				hi, _ := strconv.Atoi(m[3])
				alt[m[1]] = append([]int{hi - lo}, shape[1:]...)
			case withShapeRe.MatchString(part):
				m := withShapeRe.FindStringSubmatch(part)
				alt[m[1]] = parseShape(t, m[2])
			default:
				alt[part] = shape
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return main, alt
}

func parseShape(t *testing.T, s string) []int {
	t.Helper()
	var shape []int
	if err := json.Unmarshal([]byte(s), &shape); err != nil {
		t.Fatalf("shape %q: %v", s, err)
	}
	return shape
}

// wantConfig checks the listed keys of r.Config (by JSON value).
func wantConfig(t *testing.T, r Result, model string, want map[string]any) {
	t.Helper()
	if r.Model != model {
		t.Fatalf("model %q (%s), want %q", r.Model, r.Reason, model)
	}
	for k, v := range want {
		got, ok := r.Config[k]
		if !ok {
			t.Errorf("config has no %q", k)
			continue
		}
		if !sameJSON(got, v) {
			t.Errorf("config %q = %s, want %s", k, compact(got), compact(v))
		}
	}
}

func withPrefix(s Shapes, prefix string) Shapes {
	out := Shapes{}
	for k, v := range s {
		out[prefix+k] = v
	}
	return out
}

// The released checkpoints (zimage.md §3, §4.1, §6.2), detected from their full key lists.
var (
	realDiT = map[string]any{
		"dim": 3840, "n_layers": 30, "n_refiner_layers": 2, "n_heads": 30, "n_kv_heads": 30,
		"head_dim": 128, "cap_feat_dim": 2560, "ffn_hidden": 10240, "t_embedder_hidden": 1024,
		"patch_size": 2, "in_channels": 16, "qk_norm": true, "axes_dims": []int{32, 48, 48},
		"z_image_modulation": true, "pad_tokens_multiple": 32,
	}
	realQwen3 = map[string]any{
		"vocab_size": 151936, "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
		"num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": true,
	}
	realVAE = map[string]any{
		"ch": 128, "ch_mult": []int{1, 2, 4, 4}, "num_res_blocks": 2, "z_channels": 16,
		"in_channels": 3, "out_ch": 3, "double_z": true, "attn_resolutions": []int{},
	}
)

func TestDetectRealCheckpointKeys(t *testing.T) {
	dit, ditDiffusers := keysFile(t, "dit_keys.tsv")
	qwen, _ := keysFile(t, "qwen3_4b_keys.tsv")
	vae, vaeDiffusers := keysFile(t, "vae_keys.tsv")
	combined := Shapes{}
	for _, part := range []Shapes{withPrefix(dit, "model.diffusion_model."), withPrefix(vae, "first_stage_model."), withPrefix(qwen, "text_encoders.qwen3_4b.transformer.")} {
		for k, v := range part {
			combined[k] = v
		}
	}
	vaeDecoderOnly := Shapes{}
	for k, v := range vae {
		if strings.HasPrefix(k, "decoder.") {
			vaeDecoderOnly[k] = v
		}
	}
	dropKeys := func(r map[string]any, keys ...string) map[string]any {
		out := map[string]any{}
		for k, v := range r {
			out[k] = v
		}
		for _, k := range keys {
			delete(out, k)
		}
		return out
	}
	cases := []struct {
		name   string
		shapes Shapes
		model  string
		want   map[string]any
		extra  map[string]any
	}{
		{"dit comfyui", dit, ZImageDiT, realDiT, map[string]any{"layout": "comfyui"}},
		{"dit with model.diffusion_model.", withPrefix(dit, "model.diffusion_model."), ZImageDiT, realDiT, map[string]any{"key_prefix": "model.diffusion_model."}},
		{"dit with diffusion_model.", withPrefix(dit, "diffusion_model."), ZImageDiT, realDiT, map[string]any{"key_prefix": "diffusion_model."}},
		{"dit diffusers", ditDiffusers, ZImageDiT, realDiT, map[string]any{"layout": "diffusers"}},
		{"qwen3-4b", qwen, Qwen3, realQwen3, map[string]any{"layout": "hf"}},
		{"qwen3-4b in a combined file", withPrefix(qwen, "text_encoders.qwen3_4b.transformer."), Qwen3, realQwen3, map[string]any{"key_prefix": "text_encoders.qwen3_4b.transformer."}},
		{"flux vae", vae, FluxVAE, realVAE, map[string]any{"layout": "ldm"}},
		{"flux vae diffusers", vaeDiffusers, FluxVAE, realVAE, map[string]any{"layout": "diffusers"}},
		{"flux vae with vae.", withPrefix(vae, "vae."), FluxVAE, realVAE, map[string]any{"key_prefix": "vae."}},
		{"flux vae decoder only", vaeDecoderOnly, FluxVAE, dropKeys(realVAE, "in_channels", "double_z", "attn_resolutions"), map[string]any{"has_encoder": false, "has_decoder": true}},
		{"combined checkpoint reports the DiT", combined, ZImageDiT, realDiT, map[string]any{"key_prefix": "model.diffusion_model."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Detect(tc.shapes)
			wantConfig(t, r, tc.model, tc.want)
			wantConfig(t, r, tc.model, tc.extra)
			if len(r.Missing) != 0 {
				t.Errorf("missing %v", r.Missing)
			}
			// Prefix-free keys must not report a prefix.
			if _, ok := tc.extra["key_prefix"]; !ok {
				if p, ok := r.Config["key_prefix"]; ok {
					t.Errorf("key_prefix %v reported for unprefixed keys", p)
				}
			}
		})
	}
	if len(dit) != 453 || len(qwen) != 398 || len(vae) != 244 {
		t.Logf("key lists hold %d / %d / %d tensors (zimage.md: 453 / 398 / 244)", len(dit), len(qwen), len(vae))
	}
}

// TestDetectGoldenWeights detects every weights file that has a sidecar in the golden directory:
// the model must be the sidecar's, every value inferred from shapes must equal the sidecar's, and
// merging the sidecar must leave nothing missing or in conflict.
func TestDetectGoldenWeights(t *testing.T) {
	m := golden.MustLoad(t)
	sidecars, err := filepath.Glob(filepath.Join(m.Dir, "*"+SidecarSuffix))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, sc := range sidecars {
		weights := strings.TrimSuffix(sc, SidecarSuffix) + ".safetensors"
		if _, err := os.Stat(weights); err != nil {
			continue
		}
		t.Run(filepath.Base(weights), func(t *testing.T) {
			cfg, err := ReadSidecar(sc)
			if err != nil {
				t.Fatal(err)
			}
			src, err := safetensors.OpenSet(weights)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			r := Detect(ShapesOf(src))
			if want, _ := cfg["model"].(string); r.Model != want {
				t.Fatalf("detected %q (%s), sidecar says %q", r.Model, r.Reason, want)
			}
			compared := 0
			for k, v := range r.Config {
				sv, ok := cfg[k]
				if !ok || containsString(r.Defaults, k) {
					continue
				}
				compared++
				if !sameJSON(v, sv) {
					t.Errorf("%s: inferred %s, sidecar %s", k, compact(v), compact(sv))
				}
			}
			if compared < 5 {
				t.Errorf("only %d inferred keys could be compared with the sidecar", compared)
			}
			merged, err := DetectPath(weights, src)
			if err != nil {
				t.Fatal(err)
			}
			if merged.Sidecar != sc || len(merged.Missing) != 0 || len(merged.Conflicts) != 0 {
				t.Errorf("merged: sidecar %q, missing %v, conflicts %v", merged.Sidecar, merged.Missing, merged.Conflicts)
			}
			for k, v := range cfg {
				if k != "model" && !sameJSON(merged.Config[k], v) {
					t.Errorf("merged %s = %s, sidecar %s", k, compact(merged.Config[k]), compact(v))
				}
			}
			checked++
		})
	}
	if checked == 0 {
		t.Fatalf("no weights file with a sidecar in %s", m.Dir)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// synthDiT builds the ComfyUI key set of a NextDiT with the given sizes.
func synthDiT(dim, heads, kvHeads, layers, refiners, ffn, capDim, patch int, adaLN string) Shapes {
	hd := dim / heads
	s := Shapes{
		"x_embedder.weight":                     {dim, patch * patch * 16},
		"final_layer.linear.weight":             {patch * patch * 16, dim},
		"cap_embedder.0.weight":                 {capDim},
		"cap_embedder.1.weight":                 {dim, capDim},
		"t_embedder.mlp.0.weight":               {min(dim, 1024), 256},
		"x_pad_token":                           {1, dim},
		"cap_pad_token":                         {1, dim},
		"final_layer.linear.bias":               {patch * patch * 16},
		"t_embedder.mlp.2.weight":               {256, min(dim, 1024)},
		"cap_embedder.1.bias":                   {dim},
		"final_layer.adaLN_modulation.1.weight": {dim, 256},
	}
	block := func(stem string, modulated bool) {
		s[stem+"attention.qkv.weight"] = []int{(heads + 2*kvHeads) * hd, dim}
		s[stem+"attention.q_norm.weight"] = []int{hd}
		s[stem+"attention.k_norm.weight"] = []int{hd}
		s[stem+"feed_forward.w1.weight"] = []int{ffn, dim}
		if modulated {
			s[stem+"adaLN_modulation."+adaLN+".weight"] = []int{4 * dim, 256}
		}
	}
	for i := range layers {
		block(fmt.Sprintf("layers.%d.", i), true)
	}
	for i := range refiners {
		block(fmt.Sprintf("noise_refiner.%d.", i), true)
		block(fmt.Sprintf("context_refiner.%d.", i), false)
	}
	return s
}

func TestDetectSynthetic(t *testing.T) {
	sdVAE := Shapes{
		"encoder.conv_in.weight":              {128, 3, 3, 3},
		"encoder.down.0.block.0.conv1.weight": {128, 128, 3, 3},
		"encoder.conv_out.weight":             {8, 512, 3, 3},
		"decoder.conv_in.weight":              {512, 4, 3, 3},
		"decoder.conv_out.weight":             {3, 128, 3, 3},
		"quant_conv.weight":                   {8, 8, 1, 1},
	}
	qwen2 := Shapes{
		"model.embed_tokens.weight":              {1000, 64},
		"model.layers.0.self_attn.q_proj.weight": {64, 64},
		"model.layers.0.self_attn.k_proj.weight": {16, 64},
	}
	qwen3Bare := Shapes{
		"embed_tokens.weight":              {500, 96},
		"layers.0.self_attn.q_proj.weight": {6 * 24, 96},
		"layers.0.self_attn.k_proj.weight": {2 * 24, 96},
		"layers.0.self_attn.q_norm.weight": {24},
		"layers.0.mlp.gate_proj.weight":    {200, 96},
		"layers.1.self_attn.q_norm.weight": {24},
		"layers.2.self_attn.q_norm.weight": {24},
		"lm_head.weight":                   {500, 96},
	}
	cases := []struct {
		name    string
		shapes  Shapes
		model   string
		want    map[string]any
		missing []string
		reason  string
	}{
		{"empty", Shapes{}, Unknown, nil, nil, "no tensor layout"},
		{"unrelated tensors", Shapes{"foo.weight": {3, 3}, "bar": {1}}, Unknown, nil, nil, "no tensor layout"},
		{"gqa dit with a small head", synthDiT(384, 6, 2, 3, 1, 1024, 80, 2, "0"), ZImageDiT,
			map[string]any{"dim": 384, "n_heads": 6, "n_kv_heads": 2, "head_dim": 64, "n_layers": 3, "n_refiner_layers": 1,
				"ffn_hidden": 1024, "cap_feat_dim": 80, "patch_size": 2, "t_embedder_hidden": 384}, []string{"axes_dims"}, ""},
		{"patch 4", synthDiT(256, 2, 2, 1, 1, 512, 32, 4, "0"), ZImageDiT, map[string]any{"patch_size": 4, "head_dim": 128, "axes_dims": []int{32, 48, 48}}, nil, ""},
		{"lumina 2 style modulation", synthDiT(256, 2, 2, 1, 1, 512, 32, 2, "1"), Unknown, nil, nil, "Lumina 2"},
		{"qwen2 (no q_norm)", qwen2, Unknown, nil, nil, "not a Qwen3"},
		{"bare qwen3 model with lm_head", qwen3Bare, Qwen3,
			map[string]any{"layout": "qwen3model", "hidden_size": 96, "vocab_size": 500, "num_hidden_layers": 3, "num_attention_heads": 6,
				"num_key_value_heads": 2, "head_dim": 24, "intermediate_size": 200, "tie_word_embeddings": false}, nil, ""},
		{"sd vae", sdVAE, Unknown, nil, nil, "quant convs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Detect(tc.shapes)
			wantConfig(t, r, tc.model, tc.want)
			if strings.Join(r.Missing, ",") != strings.Join(tc.missing, ",") {
				t.Errorf("missing %v, want %v", r.Missing, tc.missing)
			}
			if !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", r.Reason, tc.reason)
			}
			if r.Model == Unknown && len(r.Config) != 0 {
				t.Errorf("unknown model with config %v", r.Config)
			}
		})
	}
}

func TestSidecarPath(t *testing.T) {
	cases := map[string]string{
		"/m/dit_tiny_weights.safetensors": "/m/dit_tiny_weights.config.json",
		"/m/model.safetensors.index.json": "/m/model.config.json",
		"rel/ae.safetensors":              "rel/ae.config.json",
		"/m/weights.bin":                  "/m/weights.bin.config.json",
	}
	for in, want := range cases {
		if got := SidecarPath(in); got != want {
			t.Errorf("SidecarPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	base := Detect(synthDiT(384, 6, 2, 3, 1, 1024, 80, 2, "0"))
	cases := []struct {
		name      string
		base      Result
		sidecar   map[string]any
		model     string
		err       string
		conflicts []string
		missing   []string
	}{
		{"fills the missing axes", base, map[string]any{"model": ZImageDiT, "axes_dims": []any{16, 24, 24}}, ZImageDiT, "", nil, nil},
		{"overrides a default silently", base, map[string]any{"rope_theta": json.Number("10000.0")}, ZImageDiT, "", nil, []string{"axes_dims"}},
		{"contradicting a shape is recorded", base, map[string]any{"n_heads": json.Number("3"), "axes_dims": []any{}}, ZImageDiT, "", []string{"n_heads: sidecar 3, shapes 6"}, nil},
		{"equal numbers are no conflict", base, map[string]any{"n_heads": json.Number("6.0"), "axes_dims": []any{}}, ZImageDiT, "", nil, nil},
		{"other model", base, map[string]any{"model": FluxVAE}, "", "says \"flux_vae\" but the tensors are a zimage_dit", nil, nil},
		{"model not a string", base, map[string]any{"model": 3}, "", "must be a string", nil, nil},
		{"unknown model name", base, map[string]any{"model": "sdxl"}, "", "unknown model", nil, nil},
		{"names the model of undetectable tensors", Detect(Shapes{}), map[string]any{"model": Qwen3, "hidden_size": 8}, Qwen3, "", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Merge(tc.base, tc.sidecar, "x.config.json")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "x.config.json") {
					t.Fatalf("error %v, want one naming the sidecar containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Model != tc.model || r.Sidecar != "x.config.json" {
				t.Errorf("model %q sidecar %q", r.Model, r.Sidecar)
			}
			if strings.Join(r.Conflicts, "|") != strings.Join(tc.conflicts, "|") {
				t.Errorf("conflicts %q, want %q", r.Conflicts, tc.conflicts)
			}
			if strings.Join(r.Missing, ",") != strings.Join(tc.missing, ",") {
				t.Errorf("missing %v, want %v", r.Missing, tc.missing)
			}
			for k, v := range tc.sidecar {
				if k != "model" && !sameJSON(r.Config[k], v) {
					t.Errorf("%s = %v, want %v", k, r.Config[k], v)
				}
				if containsString(r.Defaults, k) {
					t.Errorf("%s still listed as a default", k)
				}
			}
		})
	}
	if _, ok := base.Config["axes_dims"]; ok || len(base.Missing) != 1 {
		t.Error("Merge modified its input")
	}
}

func TestDetectPathAndDecode(t *testing.T) {
	dir := t.TempDir()
	entries := map[string]safetensors.Entry{}
	for name, shape := range synthDiT(256, 4, 4, 2, 1, 768, 64, 2, "0") {
		n := 2
		for _, d := range shape {
			n *= d
		}
		entries[name] = safetensors.Entry{DType: safetensors.BF16, Shape: shape, Data: make([]byte, n)}
	}
	weights := filepath.Join(dir, "tiny.safetensors")
	if err := safetensors.WriteFile(weights, entries, nil); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenSet(weights)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	r, err := DetectPath(weights, src)
	if err != nil || r.Sidecar != "" || strings.Join(r.Missing, ",") != "axes_dims" {
		t.Fatalf("without sidecar: %+v, %v", r, err)
	}
	sc := filepath.Join(dir, "tiny.config.json")
	if err := os.WriteFile(sc, []byte(`{"model":"zimage_dit","axes_dims":[16,24,24],"rope_theta":256.0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = DetectPath(weights, src)
	if err != nil || r.Sidecar != sc || len(r.Missing) != 0 {
		t.Fatalf("with sidecar: %+v, %v", r, err)
	}
	var cfg struct {
		Dim       int     `json:"dim"`
		NHeads    int     `json:"n_heads"`
		AxesDims  []int   `json:"axes_dims"`
		RopeTheta float64 `json:"rope_theta"`
		NormEps   float64 `json:"norm_eps"`
	}
	if err := r.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Dim != 256 || cfg.NHeads != 4 || fmt.Sprint(cfg.AxesDims) != "[16 24 24]" || cfg.RopeTheta != 256 || cfg.NormEps != 1e-5 {
		t.Errorf("decoded %+v", cfg)
	}
	var wrong struct {
		Dim string `json:"dim"`
	}
	if err := r.Decode(&wrong); err == nil {
		t.Error("decoding dim into a string succeeded")
	}

	for _, bad := range []string{`[1]`, `{"model":`, `null`, `{} {}`} {
		if err := os.WriteFile(sc, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := DetectPath(weights, src); err == nil || !strings.Contains(err.Error(), sc) {
			t.Errorf("sidecar %q: error %v, want one naming the sidecar", bad, err)
		}
	}
}
