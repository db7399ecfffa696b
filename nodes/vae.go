package nodes

import (
	"context"

	"github.com/dypegraph/dypegraph/models/detect"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor/resample"
)

// The VAE and latent nodes: VAELoader, VAEDecode, VAEDecodeTiled, VAEEncode, VAEEncodeTiled,
// LatentUpscale and LatentUpscaleBy. LATENTs between nodes are in the VAE's space (the sampler
// applies the latent format), as in ComfyUI.

// VAE is ComfyUI's VAE.
type VAE struct {
	v    *loadedVAE
	Name string
}

// Model returns the loaded autoencoder.
func (v *VAE) Model() *vae.VAE { return v.v.v }

type loadedVAE struct {
	v   *vae.VAE
	ref *sharedModel
}

// Retain and Release count the executor's cached references (see Releaser).
func (v *VAE) Retain()  { v.v.ref.retain() }
func (v *VAE) Release() { v.v.ref.release() }

func inputVAE(in *Inputs) (*vae.VAE, error) {
	v, ok := in.Value("vae").(*VAE)
	if !ok || v == nil {
		return nil, Errorf("TypeError", "input \"vae\" is not a VAE")
	}
	return v.Model(), nil
}

func inputLatent(in *Inputs, name string) (*Latent, error) {
	l, ok := in.Value(name).(*Latent)
	if !ok || l == nil {
		return nil, Errorf("TypeError", "input %q is not a LATENT", name)
	}
	return l, nil
}

func toVAELatent(l *Latent) *vae.Latent {
	return &vae.Latent{B: l.B, C: l.C, H: l.H, W: l.W, Data: l.Samples}
}

func fromVAELatent(l *vae.Latent, downscale int) *Latent {
	return &Latent{B: l.B, C: l.C, H: l.H, W: l.W, Samples: l.Data, DownscaleRatio: downscale}
}

func toVAEImage(im *Image) *vae.Image {
	return &vae.Image{B: im.B, H: im.H, W: im.W, C: im.C, Pix: im.Pix}
}

func fromVAEImage(im *vae.Image) *Image {
	return &Image{B: im.B, H: im.H, W: im.W, C: im.C, Pix: im.Pix}
}

// ---- VAELoader

type vaeLoader struct{}

func listVAEs(env Env) []string { return ListModels(env, "vae") }

func (vaeLoader) Schema() *Schema {
	return &Schema{
		Name: "VAELoader", DisplayName: "Load VAE", Category: "model/loaders",
		Inputs:  []InputSpec{{Name: "vae_name", Type: TypeCombo, OptionsFrom: listVAEs}},
		Outputs: []OutputSpec{{Type: TypeVAE}},
	}
}

func (vaeLoader) Fingerprint(in *Inputs, env Env) (string, error) {
	path, err := ModelPath(env, "vae", in.String("vae_name"))
	if err != nil {
		return "", err
	}
	return fileIdentity(path)
}

func (vaeLoader) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	env := rt.Env()
	name := in.String("vae_name")
	path, err := ModelPath(env, "vae", name)
	if err != nil {
		return nil, Errorf("FileNotFoundError", "%v", err)
	}
	if err := requireFamily(path, detect.FluxVAE, "VAELoader", "the 16-channel Flux VAE (ae.safetensors)"); err != nil {
		return nil, err
	}
	be, err := env.ComputeBackend()
	if err != nil {
		return nil, err
	}
	m, err := vae.Load(path, be, vae.Options{})
	if err != nil {
		return nil, Errorf("ValueError", "VAELoader: %v", err)
	}
	lv := &loadedVAE{v: m, ref: newSharedModel(m.Close)}
	return &Outputs{Values: []any{&VAE{v: lv, Name: name}}}, nil
}

// ---- VAEDecode / VAEDecodeTiled

type vaeDecode struct{ tiled bool }

func (d vaeDecode) Schema() *Schema {
	if d.tiled {
		return &Schema{
			Name: "VAEDecodeTiled", DisplayName: "VAE Decode (Tiled)", Category: "model/latent",
			Inputs: []InputSpec{
				{Name: "samples", Type: TypeLatent}, {Name: "vae", Type: TypeVAE},
				{Name: "tile_size", Type: TypeInt, Default: int64(512), Min: int64(64), Max: int64(4096), Step: int64(32), Extra: []KV{{"advanced", true}}},
				{Name: "overlap", Type: TypeInt, Default: int64(64), Min: int64(0), Max: int64(4096), Step: int64(32), Extra: []KV{{"advanced", true}}},
				{Name: "temporal_size", Type: TypeInt, Default: int64(64), Min: int64(8), Max: int64(4096), Step: int64(4), Extra: []KV{{"tooltip", "Only used for video VAEs: Amount of frames to decode at a time."}, {"advanced", true}}},
				{Name: "temporal_overlap", Type: TypeInt, Default: int64(8), Min: int64(4), Max: int64(4096), Step: int64(4), Extra: []KV{{"tooltip", "Only used for video VAEs: Amount of frames to overlap."}, {"advanced", true}}},
			},
			Outputs: []OutputSpec{{Type: TypeImage}},
		}
	}
	return &Schema{
		Name: "VAEDecode", DisplayName: "VAE Decode", Category: "model/latent",
		Description: "Decodes latent images back into pixel space images.",
		Inputs: []InputSpec{
			{Name: "samples", Type: TypeLatent, Extra: []KV{{"tooltip", "The latent to be decoded."}}},
			{Name: "vae", Type: TypeVAE, Extra: []KV{{"tooltip", "The VAE model used for decoding the latent."}}},
		},
		Outputs:        []OutputSpec{{Type: TypeImage}},
		OutputTooltips: []string{"The decoded image."},
		SearchAliases:  []string{"decode", "decode latent", "latent to image", "render latent"},
	}
}

func (d vaeDecode) Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	v, err := inputVAE(in)
	if err != nil {
		return nil, err
	}
	l, err := inputLatent(in, "samples")
	if err != nil {
		return nil, err
	}
	if l.C != v.LatentChannels() {
		return nil, Errorf("ValueError", "the latent has %d channels but the VAE expects %d", l.C, v.LatentChannels())
	}
	var im *vae.Image
	if d.tiled {
		opts := vae.DecodeTilesFromPixels(int(in.Int("tile_size")), int(in.Int("overlap")), v.Downscale())
		opts.Progress = func(done, total int) { _ = rt.Progress(done, total) }
		im, err = v.DecodeTiled(ctx, toVAELatent(l), opts)
	} else {
		im, err = v.Decode(ctx, toVAELatent(l))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Errorf("RuntimeError", "VAE decode: %v", err)
	}
	return &Outputs{Values: []any{fromVAEImage(im)}}, nil
}

// ---- VAEEncode / VAEEncodeTiled

type vaeEncode struct{ tiled bool }

func (e vaeEncode) Schema() *Schema {
	if e.tiled {
		return &Schema{
			Name: "VAEEncodeTiled", DisplayName: "VAE Encode (Tiled)", Category: "model/latent",
			Inputs: []InputSpec{
				{Name: "pixels", Type: TypeImage}, {Name: "vae", Type: TypeVAE},
				{Name: "tile_size", Type: TypeInt, Default: int64(512), Min: int64(64), Max: int64(4096), Step: int64(64), Extra: []KV{{"advanced", true}}},
				{Name: "overlap", Type: TypeInt, Default: int64(64), Min: int64(0), Max: int64(4096), Step: int64(32), Extra: []KV{{"advanced", true}}},
				{Name: "temporal_size", Type: TypeInt, Default: int64(64), Min: int64(8), Max: int64(4096), Step: int64(4), Extra: []KV{{"tooltip", "Only used for video VAEs: Amount of frames to encode at a time."}, {"advanced", true}}},
				{Name: "temporal_overlap", Type: TypeInt, Default: int64(8), Min: int64(4), Max: int64(4096), Step: int64(4), Extra: []KV{{"tooltip", "Only used for video VAEs: Amount of frames to overlap."}, {"advanced", true}}},
			},
			Outputs: []OutputSpec{{Type: TypeLatent}},
		}
	}
	return &Schema{
		Name: "VAEEncode", DisplayName: "VAE Encode", Category: "model/latent",
		Inputs:        []InputSpec{{Name: "pixels", Type: TypeImage}, {Name: "vae", Type: TypeVAE}},
		Outputs:       []OutputSpec{{Type: TypeLatent}},
		SearchAliases: []string{"encode", "encode image", "image to latent"},
	}
}

func (e vaeEncode) Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	v, err := inputVAE(in)
	if err != nil {
		return nil, err
	}
	im, err := inputImage(in, "pixels")
	if err != nil {
		return nil, err
	}
	if im.H < v.Downscale() || im.W < v.Downscale() {
		return nil, Errorf("ValueError", "a %dx%d image is smaller than one latent cell (%d px)", im.W, im.H, v.Downscale())
	}
	var l *vae.Latent
	if e.tiled {
		opts := vae.TileOptions{TileX: int(in.Int("tile_size")), TileY: int(in.Int("tile_size")), Overlap: int(in.Int("overlap")),
			Progress: func(done, total int) { _ = rt.Progress(done, total) }}
		l, err = v.EncodeTiled(ctx, toVAEImage(im), opts)
	} else {
		l, err = v.Encode(ctx, toVAEImage(im))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Errorf("RuntimeError", "VAE encode: %v", err)
	}
	return &Outputs{Values: []any{fromVAELatent(l, v.Downscale())}}, nil
}

// ---- LatentUpscale / LatentUpscaleBy

var latentUpscaleMethods = []string{"nearest-exact", "bilinear", "area", "bicubic", "bislerp"}

// upscaleLatent is comfy.utils.common_upscale on a latent: optional center crop, then the
// method (bislerp or torch's interpolate modes).
func upscaleLatent(l *Latent, width, height int, method string, center bool) (*Latent, error) {
	if width < 1 || height < 1 {
		return nil, Errorf("ValueError", "cannot scale a latent to %dx%d", width, height)
	}
	if int64(width)*int64(height)*int64(l.B*l.C) > maxImageElements {
		return nil, Errorf("ValueError", "a %dx%d latent is too large", width, height)
	}
	// Treat the latent planes as a 1-channel image batch to reuse the crop.
	planes := &Image{B: l.B * l.C, H: l.H, W: l.W, C: 1, Pix: l.Samples}
	if center {
		oldW, oldH := float64(l.W), float64(l.H)
		oldAspect, newAspect := oldW/oldH, float64(width)/float64(height)
		x, y := 0, 0
		if oldAspect > newAspect {
			x = int(roundHalfEven((oldW - oldW*(newAspect/oldAspect)) / 2))
		} else if oldAspect < newAspect {
			y = int(roundHalfEven((oldH - oldH*(oldAspect/newAspect)) / 2))
		}
		if x > 0 || y > 0 {
			planes = planes.crop(x, y, l.W-2*x, l.H-2*y)
		}
	}
	out := &Latent{B: l.B, C: l.C, H: height, W: width, DownscaleRatio: l.DownscaleRatio}
	if method == "bislerp" {
		data, err := vae.Bislerp(planes.Pix, l.B, l.C, planes.H, planes.W, height, width)
		if err != nil {
			return nil, Errorf("ValueError", "bislerp: %v", err)
		}
		out.Samples = data
		return out, nil
	}
	m, err := resample.ParseMethod(method)
	if err != nil || m == resample.Lanczos {
		return nil, Errorf("ValueError", "unknown latent upscale method %q", method)
	}
	out.Samples = make([]float32, l.B*l.C*height*width)
	if err := resample.Planes(out.Samples, planes.Pix, l.B*l.C, planes.H, planes.W, height, width, m); err != nil {
		return nil, Errorf("ValueError", "%v", err)
	}
	return out, nil
}

type latentUpscale struct{}

func (latentUpscale) Schema() *Schema {
	return &Schema{
		Name: "LatentUpscale", DisplayName: "Upscale Latent", Category: "model/latent",
		Inputs: []InputSpec{
			{Name: "samples", Type: TypeLatent},
			{Name: "upscale_method", Type: TypeCombo, Options: latentUpscaleMethods},
			{Name: "width", Type: TypeInt, Default: int64(512), Min: int64(0), Max: MaxResolution, Step: int64(8)},
			{Name: "height", Type: TypeInt, Default: int64(512), Min: int64(0), Max: MaxResolution, Step: int64(8)},
			{Name: "crop", Type: TypeCombo, Options: []string{"disabled", "center"}},
		},
		Outputs:       []OutputSpec{{Type: TypeLatent}},
		SearchAliases: []string{"enlarge latent", "resize latent"},
	}
}

func (latentUpscale) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	l, err := inputLatent(in, "samples")
	if err != nil {
		return nil, err
	}
	width, height := in.Int("width"), in.Int("height")
	if width == 0 && height == 0 {
		return &Outputs{Values: []any{l}}, nil
	}
	switch {
	case width == 0:
		height = max(64, height)
		width = max(64, int64(roundHalfEven(float64(l.W)*float64(height)/float64(l.H))))
	case height == 0:
		width = max(64, width)
		height = max(64, int64(roundHalfEven(float64(l.H)*float64(width)/float64(l.W))))
	default:
		width, height = max(64, width), max(64, height)
	}
	out, err := upscaleLatent(l, int(width/8), int(height/8), in.String("upscale_method"), in.String("crop") == "center")
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{out}}, nil
}

type latentUpscaleBy struct{}

func (latentUpscaleBy) Schema() *Schema {
	return &Schema{
		Name: "LatentUpscaleBy", DisplayName: "Upscale Latent By", Category: "model/latent",
		Inputs: []InputSpec{
			{Name: "samples", Type: TypeLatent},
			{Name: "upscale_method", Type: TypeCombo, Options: latentUpscaleMethods},
			{Name: "scale_by", Type: TypeFloat, Default: 1.5, Min: 0.01, Max: 8.0, Step: 0.01},
		},
		Outputs:       []OutputSpec{{Type: TypeLatent}},
		SearchAliases: []string{"enlarge latent", "resize latent", "scale latent"},
	}
}

func (latentUpscaleBy) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	l, err := inputLatent(in, "samples")
	if err != nil {
		return nil, err
	}
	s := in.Float("scale_by")
	out, err := upscaleLatent(l, int(roundHalfEven(float64(l.W)*s)), int(roundHalfEven(float64(l.H)*s)), in.String("upscale_method"), false)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{out}}, nil
}

func init() {
	register(vaeLoader{})
	register(vaeDecode{})
	register(vaeDecode{tiled: true})
	register(vaeEncode{})
	register(vaeEncode{tiled: true})
	register(latentUpscale{})
	register(latentUpscaleBy{})
}
