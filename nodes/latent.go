package nodes

import (
	"context"
	"math"
)

// Latent is ComfyUI's LATENT: {"samples": float32 [B, C, H, W], "downscale_ratio_spacial": 8},
// kept on the host between nodes like ComfyUI's intermediate device.
type Latent struct {
	B, C, H, W int
	Samples    []float32
	// DownscaleRatio is the pixel size of one latent cell (8 for Z-Image / Flux).
	DownscaleRatio int
	// NoiseMask, when set, is [B or 1, H, W] (img2img inpainting masks; not produced yet).
	NoiseMask []float32
}

// NewLatent allocates a zeroed latent.
func NewLatent(b, c, h, w int) *Latent {
	return &Latent{B: b, C: c, H: h, W: w, Samples: make([]float32, b*c*h*w), DownscaleRatio: 8}
}

// IsAllZero reports whether every sample is zero (ComfyUI then widens an empty 4-channel latent
// to the model's channel count).
func (l *Latent) IsAllZero() bool {
	for _, v := range l.Samples {
		if v != 0 {
			return false
		}
	}
	return true
}

func latentDims(in *Inputs) (w, h, b int64) {
	return in.Int("width"), in.Int("height"), in.Int("batch_size")
}

func newEmptyLatent(w, h, b int64, channels int) (*Outputs, error) {
	lh, lw := h/8, w/8
	if lh*lw*b*int64(channels) > maxImageElements {
		return nil, Errorf("ValueError", "latent %dx%d with batch %d is too large", w, h, b)
	}
	return &Outputs{Values: []any{NewLatent(int(b), channels, int(lh), int(lw))}}, nil
}

// ---- EmptyLatentImage (SD-style 4 channels; samplers widen all-zero latents to the model's)

type emptyLatentImage struct{}

func (emptyLatentImage) Schema() *Schema {
	return &Schema{
		Name: "EmptyLatentImage", DisplayName: "Empty Latent Image", Category: "model/latent",
		Description: "Create a new batch of empty latent images to be denoised via sampling.",
		Inputs: []InputSpec{
			{Name: "width", Type: TypeInt, Default: int64(512), Min: int64(16), Max: MaxResolution, Step: int64(8), Extra: []KV{{"tooltip", "The width of the latent images in pixels."}}},
			{Name: "height", Type: TypeInt, Default: int64(512), Min: int64(16), Max: MaxResolution, Step: int64(8), Extra: []KV{{"tooltip", "The height of the latent images in pixels."}}},
			{Name: "batch_size", Type: TypeInt, Default: int64(1), Min: int64(1), Max: int64(4096), Extra: []KV{{"tooltip", "The number of latent images in the batch."}}},
		},
		Outputs:        []OutputSpec{{Type: TypeLatent}},
		OutputTooltips: []string{"The empty latent image batch."},
		SearchAliases:  []string{"empty", "empty latent", "new latent", "create latent", "blank latent", "blank"},
	}
}

func (emptyLatentImage) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	w, h, b := latentDims(in)
	return newEmptyLatent(w, h, b, 4)
}

// ---- EmptySD3LatentImage (16 channels: SD3, Flux, Z-Image)

type emptySD3LatentImage struct{}

func (emptySD3LatentImage) Schema() *Schema {
	return &Schema{
		Name: "EmptySD3LatentImage", Category: "model/latent/stable diffusion",
		PythonModule: "comfy_extras.nodes_sd3", V3: true,
		Inputs: []InputSpec{
			{Name: "width", Type: TypeInt, Default: int64(1024), Min: int64(16), Max: MaxResolution, Step: int64(16)},
			{Name: "height", Type: TypeInt, Default: int64(1024), Min: int64(16), Max: MaxResolution, Step: int64(16)},
			{Name: "batch_size", Type: TypeInt, Default: int64(1), Min: int64(1), Max: int64(4096)},
		},
		Outputs: []OutputSpec{{Type: TypeLatent}},
	}
}

func (emptySD3LatentImage) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	w, h, b := latentDims(in)
	return newEmptyLatent(w, h, b, 16)
}

// ---- ImageScaleToTotalPixels

type imageScaleToTotalPixels struct{}

func (imageScaleToTotalPixels) Schema() *Schema {
	return &Schema{
		Name: "ImageScaleToTotalPixels", DisplayName: "Scale Image to Total Pixels", Category: "image/upscaling",
		PythonModule: "comfy_extras.nodes_post_processing", V3: true,
		Inputs: []InputSpec{
			imageInput("image"),
			{Name: "upscale_method", Type: TypeCombo, Options: upscaleMethods},
			{Name: "megapixels", Type: TypeFloat, Default: 1.0, Min: 0.01, Max: 16.0, Step: 0.01},
			{Name: "resolution_steps", Type: TypeInt, Default: int64(1), Min: int64(1), Max: int64(256), Extra: []KV{{"advanced", true}}},
		},
		Outputs: []OutputSpec{{Type: TypeImage}},
	}
}

func (imageScaleToTotalPixels) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	src, err := inputImage(in, "image")
	if err != nil {
		return nil, err
	}
	steps := in.Int("resolution_steps")
	if steps < 1 {
		steps = 1
	}
	total := in.Float("megapixels") * 1024 * 1024
	scale := math.Sqrt(total / float64(src.W*src.H))
	width := int64(roundHalfEven(float64(src.W)*scale/float64(steps))) * steps
	height := int64(roundHalfEven(float64(src.H)*scale/float64(steps))) * steps
	if width < 1 || height < 1 {
		return nil, Errorf("ValueError", "scaling %dx%d to %v megapixels in steps of %d gives an empty image", src.W, src.H, in.Float("megapixels"), steps)
	}
	out, err := scaleImage(src, width, height, in.String("upscale_method"), false)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{out}}, nil
}

func init() {
	register(emptyLatentImage{})
	register(emptySD3LatentImage{})
	register(imageScaleToTotalPixels{})
}
