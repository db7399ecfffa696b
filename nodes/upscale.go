package nodes

import (
	"context"
	"strings"
	"sync"

	"github.com/dypegraph/dypegraph/models/upscale"
)

// The upscale model nodes (ComfyUI's comfy_extras/nodes_upscale_model.py, V3 nodes):
// UpscaleModelLoader and ImageUpscaleWithModel, for the ESRGAN family that models/upscale runs.

// TypeUpscaleModel is the type of UpscaleModelLoader's output.
const TypeUpscaleModel = "UPSCALE_MODEL"

// UpscaleModel is ComfyUI's UPSCALE_MODEL: a loaded image upscale model.
type UpscaleModel struct {
	m    *loadedUpscale
	Name string
}

type loadedUpscale struct {
	m   *upscale.Model
	ref *sharedModel
}

// Model returns the loaded network.
func (u *UpscaleModel) Model() *upscale.Model { return u.m.m }

// Retain and Release count the executor's cached references (see Releaser).
func (u *UpscaleModel) Retain()  { u.m.ref.retain() }
func (u *UpscaleModel) Release() { u.m.ref.release() }

const upscaleModule = "comfy_extras.nodes_upscale_model"

// ---- UpscaleModelLoader

type upscaleModelLoader struct{}

func listUpscaleModels(env Env) []string { return ListModels(env, "upscale_models") }

func (upscaleModelLoader) Schema() *Schema {
	return &Schema{
		Name: "UpscaleModelLoader", DisplayName: "Load Upscale Model", Category: "model/loaders",
		PythonModule: upscaleModule, V3: true,
		Inputs:  []InputSpec{{Name: "model_name", Type: TypeCombo, OptionsFrom: listUpscaleModels}},
		Outputs: []OutputSpec{{Type: TypeUpscaleModel}},
	}
}

func (upscaleModelLoader) Fingerprint(in *Inputs, env Env) (string, error) {
	path, err := ModelPath(env, "upscale_models", in.String("model_name"))
	if err != nil {
		return "", err
	}
	return fileIdentity(path)
}

func (upscaleModelLoader) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	env := rt.Env()
	name := in.String("model_name")
	path, err := ModelPath(env, "upscale_models", name)
	if err != nil {
		return nil, Errorf("FileNotFoundError", "%v", err)
	}
	be, err := env.ComputeBackend()
	if err != nil {
		return nil, err
	}
	m, err := upscale.LoadFile(path, be)
	if err != nil {
		return nil, Errorf("ValueError", "UpscaleModelLoader: %v (supported: ESRGAN, BSRGAN and Real-ESRGAN RRDBNet models)", err)
	}
	lu := &loadedUpscale{m: m, ref: newSharedModel(m.Close)}
	return &Outputs{Values: []any{&UpscaleModel{m: lu, Name: name}}}, nil
}

// ---- ImageUpscaleWithModel

type imageUpscaleWithModel struct{}

func (imageUpscaleWithModel) Schema() *Schema {
	return &Schema{
		Name: "ImageUpscaleWithModel", DisplayName: "Upscale Image (using Model)", Category: "image/upscaling",
		PythonModule: upscaleModule, V3: true,
		SearchAliases: []string{"upscale", "upscaler", "upsc", "enlarge image", "super resolution", "hires", "superres", "increase resolution"},
		Inputs: []InputSpec{
			{Name: "upscale_model", Type: TypeUpscaleModel},
			imageInput("image"),
		},
		Outputs: []OutputSpec{{Type: TypeImage}},
	}
}

// isOutOfMemory recognises the backends' out-of-memory errors (the CUDA backend's say "out of
// memory"), after which the node retries with smaller tiles like ComfyUI.
func isOutOfMemory(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "out of memory")
}

func (imageUpscaleWithModel) Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	u, ok := in.Value("upscale_model").(*UpscaleModel)
	if !ok || u == nil {
		return nil, Errorf("TypeError", "input \"upscale_model\" is not an UPSCALE_MODEL")
	}
	im, err := inputImage(in, "image")
	if err != nil {
		return nil, err
	}
	m := u.Model()
	cfg := m.Config()
	if im.C != cfg.InChannels {
		return nil, Errorf("RuntimeError", "the image has %d channels but the upscale model %s takes %d", im.C, u.Name, cfg.InChannels)
	}
	s := int64(cfg.Scale)
	if int64(im.B)*int64(im.H)*s*int64(im.W)*s*int64(cfg.OutChannels) > maxImageElements {
		return nil, Errorf("ValueError", "upscaling a %dx%d image (batch %d) by %d is too large (more than %d values)", im.W, im.H, im.B, s, int64(maxImageElements))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		progErr error
	)
	opts := upscale.Options{
		IsOOM: isOutOfMemory,
		Progress: func(done, total int) {
			if err := rt.Progress(done, total); err != nil {
				mu.Lock()
				if progErr == nil {
					progErr = err
				}
				mu.Unlock()
				cancel()
			}
		},
	}
	out, err := m.Upscale(ctx, upscale.Image{B: im.B, H: im.H, W: im.W, C: im.C, Pix: im.Pix}, opts)
	mu.Lock()
	perr := progErr
	mu.Unlock()
	if perr != nil {
		return nil, perr
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Errorf("RuntimeError", "ImageUpscaleWithModel: %v", err)
	}
	return &Outputs{Values: []any{&Image{B: out.B, H: out.H, W: out.W, C: out.C, Pix: out.Pix}}}, nil
}

func init() {
	register(upscaleModelLoader{})
	register(imageUpscaleWithModel{})
}
