package build

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// Example is one bundled example workflow (a file of package workflows) and the settings it is
// built from.
type Example struct {
	File        string
	Description string
	Params      Params
}

// examplePrompt is the example workflows' prompt.
const examplePrompt = "a red fox sitting in a snowy birch forest at dawn, soft golden light, detailed fur, " +
	"photograph, 85mm lens"

// Examples returns the bundled Z-Image Turbo example workflows, sorted by file name. The JSON
// files in workflows/ are exactly ExampleJSON of these (a test keeps them in step).
func Examples() []Example {
	// The official template (comfyui-protocol §5.1(b)): 8 steps, res_multistep, simple, shift 3,
	// cfg 1, negative = ConditioningZeroOut(positive).
	official := func() Params {
		p := Defaults()
		p.Prompt = examplePrompt
		p.Steps = 8
		p.Sampler = "res_multistep"
		p.Scheduler = "simple"
		p.Seed = 0
		// The examples leave position_mode out: ComfyUI-DyPE's own (comfy) behaviour, so the
		// files run unchanged in ComfyUI with the DyPE node installed.
		p.DyPE.Mode = ""
		return p
	}
	withDyPE := func(size int, exponent float64, prefix string) Params {
		p := official()
		p.Width, p.Height = size, size
		p.DyPE.Enabled = true
		p.DyPE.Exponent = exponent
		p.TiledVAE = true
		p.FilenamePrefix = prefix
		return p
	}
	txt2img := official()
	txt2img.FilenamePrefix = "z-image-turbo"
	twopass := withDyPE(2048, 2, "z-image-dype-twopass")
	twopass.Multipass = TwoPass
	threepass := withDyPE(4096, 2, "z-image-dype-threepass")
	threepass.Multipass = ThreePass
	ex := []Example{
		{"z_image_turbo_txt2img.json", "Z-Image Turbo text to image at 1024² (the official ComfyUI template)", txt2img},
		{"z_image_turbo_dype_2k.json", "2048² in one pass with DyPE (vision_yarn, exponent 1 as advised for 2-3K) and tiled VAE decoding",
			withDyPE(2048, 1, "z-image-dype-2k")},
		{"z_image_turbo_dype_4k.json", "4096² in one pass with DyPE (vision_yarn, exponent 2 as advised for 4K) and tiled VAE decoding",
			withDyPE(4096, 2, "z-image-dype-4k")},
		{"z_image_turbo_dype_twopass.json", "2048² in two passes: 1024² text to image, upscale, then img2img at denoise 0.5 with DyPE", twopass},
		{"z_image_turbo_dype_threepass.json", "4096² in three passes: 1024², 2048² (denoise 0.6) and 4096² (denoise 0.5), DyPE above 1024", threepass},
	}
	slices.SortFunc(ex, func(a, b Example) int {
		if a.File < b.File {
			return -1
		}
		if a.File > b.File {
			return 1
		}
		return 0
	})
	return ex
}

// ExampleJSON renders an example's workflow as the bundled file: one node per line, keys in
// order.
func ExampleJSON(e Example) ([]byte, error) {
	prompt, err := Build(e.Params)
	if err != nil {
		return nil, fmt.Errorf("example %s: %w", e.File, err)
	}
	return PrettyJSON(prompt)
}

// PrettyJSON writes an API prompt with one node per line (the layout of the bundled examples and
// of `generate --save-workflow`).
func PrettyJSON(prompt *ojson.Object) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	for i, id := range prompt.Keys() {
		v, _ := prompt.Get(id)
		node, err := ojson.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		var pretty bytes.Buffer
		if err := json.Compact(&pretty, node); err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		key, _ := json.Marshal(id)
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %s: %s", key, spaced(pretty.Bytes()))
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// spaced adds a space after the ':' and ',' separators of compact JSON outside strings.
func spaced(compact []byte) []byte {
	var out bytes.Buffer
	inString, escaped := false, false
	for _, c := range compact {
		out.WriteByte(c)
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ':' || c == ','):
			out.WriteByte(' ')
		}
	}
	return out.Bytes()
}
