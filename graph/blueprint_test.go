//go:build blueprints

package graph

import (
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// blueprintsEnv names a folder holding ComfyUI's blueprints/*.json (the official Z-Image
// subgraph blueprints). They are not part of this repository; extract them from a ComfyUI
// checkout (v0.18+) and run the test with the blueprints build tag (it is not part of the
// default test run, which has no ComfyUI checkout), e.g.
//
//	mkdir -p /tmp/bp && git -C ComfyUI archive HEAD blueprints | tar -x -C /tmp/bp
//	DYPEGRAPH_COMFYUI_BLUEPRINTS=/tmp/bp/blueprints go test -tags blueprints -run Blueprint ./graph/
const blueprintsEnv = "DYPEGRAPH_COMFYUI_BLUEPRINTS"

// addToBlueprint wires extra root nodes to the blueprint's subgraph instance: each link is
// [id, origin, origin slot, target, target slot, type], and the instance's input/output slots
// named in them are updated so the workflow is what the editor would save.
func addToBlueprint(t *testing.T, doc *ojson.Object, extraNodes string, links [][]any) {
	t.Helper()
	nv, _ := doc.Get("nodes")
	list := nv.([]any)
	extra, err := ojson.Decode([]byte(extraNodes))
	if err != nil {
		t.Fatal(err)
	}
	list = append(list, extra.([]any)...)
	doc.Set("nodes", list)
	byID := map[string]*ojson.Object{}
	for _, n := range list {
		obj := n.(*ojson.Object)
		id, _ := obj.Get("id")
		s, _ := idString(id)
		byID[s] = obj
	}
	lv, _ := doc.Get("links")
	all, _ := lv.([]any)
	for _, l := range links {
		id, origin, oslot, target, tslot := l[0], l[1].(string), l[2].(int), l[3].(string), l[4].(int)
		num := func(i int) any { return json.Number(strconv.Itoa(i)) }
		all = append(all, []any{num(id.(int)), num(mustAtoi(t, origin)), num(oslot), num(mustAtoi(t, target)), num(tslot), l[5]})
		outs, _ := byID[origin].Get("outputs")
		slot := outs.([]any)[oslot].(*ojson.Object)
		prev, _ := slot.Get("links")
		prevList, _ := prev.([]any)
		slot.Set("links", append(prevList, num(id.(int))))
		ins, _ := byID[target].Get("inputs")
		ins.([]any)[tslot].(*ojson.Object).Set("link", num(id.(int)))
	}
	doc.Set("links", all)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOfficialBlueprintsConvertAndValidate flattens ComfyUI's Z-Image blueprints (each a
// workflow with one subgraph instance), wired to a SaveImage (and a LoadImage for the upscaler)
// as a user would, compares the result with the prompt derived by hand from the frontend's
// rules, and validates it with this repository's node schemas.
func TestOfficialBlueprintsConvertAndValidate(t *testing.T) {
	dir := os.Getenv(blueprintsEnv)
	if dir == "" {
		t.Fatalf("set %s to ComfyUI's blueprints folder (see blueprintsEnv)", blueprintsEnv)
	}
	cases := []struct {
		file  string
		nodes string
		links [][]any
		want  string
	}{
		{
			file:  "Text to Image (Z-Image-Turbo).json",
			nodes: `[{"id": 100, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": null}], "outputs": [], "widgets_values": ["t2i"]}]`,
			links: [][]any{{200, "57", 0, "100", 0, "IMAGE"}},
			want: `{
"57:30": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "lumina2", "device": "default"}},
"57:29": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
"57:33": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["57:27", 0]}},
"57:8": {"class_type": "VAEDecode", "inputs": {"samples": ["57:3", 0], "vae": ["57:29", 0]}},
"57:28": {"class_type": "UNETLoader", "inputs": {"unet_name": "z_image_turbo_bf16.safetensors", "weight_dtype": "default"}},
"57:27": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["57:30", 0]}},
"57:13": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
"57:11": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["57:28", 0], "shift": 3}},
"57:3": {"class_type": "KSampler", "inputs": {"model": ["57:11", 0], "seed": 0, "steps": 8, "cfg": 1, "sampler_name": "res_multistep", "scheduler": "simple",
  "positive": ["57:27", 0], "negative": ["57:33", 0], "latent_image": ["57:13", 0], "denoise": 1}},
"100": {"class_type": "SaveImage", "inputs": {"images": ["57:8", 0], "filename_prefix": "t2i"}}}`,
		},
		{
			file: "Image Upscale(Z-image-Turbo).json",
			nodes: `[{"id": 100, "type": "LoadImage", "mode": 0, "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}, {"name": "MASK", "type": "MASK", "links": []}], "widgets_values": ["example.png", "image"]},
			         {"id": 101, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": null}], "outputs": [], "widgets_values": ["upscaled"]}]`,
			links: [][]any{{200, "100", 0, "87", 0, "IMAGE"}, {201, "87", 0, "101", 0, "IMAGE"}},
			// The instance's own widgets ("-1" entries of proxyWidgets) supply unet_name,
			// clip_name, vae_name, model_name and denoise; text and seed stay on the inner nodes.
			want: `{
"87:71": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["87:62", 0]}},
"87:79": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["87:76", 0], "image": ["87:78", 0]}},
"87:80": {"class_type": "VAEEncode", "inputs": {"pixels": ["87:81", 0], "vae": ["87:63", 0]}},
"87:81": {"class_type": "ImageScaleBy", "inputs": {"image": ["87:79", 0], "upscale_method": "lanczos", "scale_by": 0.5}},
"87:66": {"class_type": "UNETLoader", "inputs": {"unet_name": "z_image_turbo_bf16.safetensors", "weight_dtype": "default"}},
"87:62": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "lumina2", "device": "default"}},
"87:67": {"class_type": "CLIPTextEncode", "inputs": {"text": "masterpiece, 8k", "clip": ["87:62", 0]}},
"87:63": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
"87:76": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x4plus.safetensors"}},
"87:70": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["87:66", 0], "shift": 3}},
"87:65": {"class_type": "VAEDecode", "inputs": {"samples": ["87:69", 0], "vae": ["87:63", 0]}},
"87:78": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["100", 0], "upscale_method": "lanczos", "megapixels": 1, "resolution_steps": 1}},
"87:69": {"class_type": "KSampler", "inputs": {"model": ["87:70", 0], "seed": 1098688918602660, "steps": 5, "cfg": 1, "sampler_name": "dpmpp_2m_sde", "scheduler": "beta",
  "positive": ["87:67", 0], "negative": ["87:71", 0], "latent_image": ["87:80", 0], "denoise": 0.33}},
"100": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
"101": {"class_type": "SaveImage", "inputs": {"images": ["87:65", 0], "filename_prefix": "upscaled"}}}`,
		},
	}
	env := testEnv(t)
	for folder, name := range map[string]string{"diffusion_models": "z_image_turbo_bf16.safetensors", "text_encoders": "qwen_3_4b.safetensors",
		"vae": "ae.safetensors", "upscale_models": "RealESRGAN_x4plus.safetensors"} {
		writeFile(t, filepath.Join(env.ModelsDir, folder, name), nil)
	}
	if err := os.MkdirAll(env.InputDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(env.InputDir, "example.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	reg := nodes.Default()
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			v, err := ojson.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			doc := v.(*ojson.Object)
			addToBlueprint(t, doc, tc.nodes, tc.links)
			wf, err := ConvertUI(doc, reg, env)
			if err != nil {
				t.Fatal(err)
			}
			got := ojson.NewObject()
			for _, id := range wf.Order {
				in, _ := wf.Nodes[id].Raw.Get("inputs")
				got.Set(id, ojson.NewObject().Set("class_type", wf.Nodes[id].ClassType).Set("inputs", in))
			}
			gotData := mustJSON(got)
			if g, w := decodeForCompare(t, gotData), decodeForCompare(t, []byte(tc.want)); !reflect.DeepEqual(g, w) {
				t.Fatalf("got  %s\nwant %s", gotData, tc.want)
			}
			res := Validate(wf, reg, env, nil)
			t.Logf("converted %d nodes: %s; validation: %s", len(wf.Order), gotData, mustJSON(res.ErrorResponse(wf.Order)))
			if !res.OK() {
				t.Fatalf("does not validate: %s", mustJSON(res.ErrorResponse(wf.Order)))
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
