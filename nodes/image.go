package nodes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	_ "image/gif" // LoadImage formats
	_ "image/jpeg"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/tensor/resample"
)

// The image nodes of ComfyUI's nodes.py: EmptyImage, ImageInvert, ImageScale, ImageScaleBy,
// LoadImage, SaveImage and PreviewImage.

// MaxResolution is ComfyUI's MAX_RESOLUTION.
const MaxResolution = int64(16384)

var upscaleMethods = []string{"nearest-exact", "bilinear", "area", "bicubic", "lanczos"}

func imageInput(name string, extra ...KV) InputSpec {
	return InputSpec{Name: name, Type: TypeImage, Extra: extra}
}

// ---- EmptyImage

type emptyImage struct{}

func (emptyImage) Schema() *Schema {
	return &Schema{
		Name: "EmptyImage", DisplayName: "Empty Image", Category: "image",
		Inputs: []InputSpec{
			{Name: "width", Type: TypeInt, Default: int64(512), Min: int64(1), Max: MaxResolution, Step: int64(1)},
			{Name: "height", Type: TypeInt, Default: int64(512), Min: int64(1), Max: MaxResolution, Step: int64(1)},
			{Name: "batch_size", Type: TypeInt, Default: int64(1), Min: int64(1), Max: int64(4096)},
			{Name: "color", Type: TypeInt, Default: int64(0), Min: int64(0), Max: int64(0xFFFFFF), Step: int64(1), Extra: []KV{{"display", "color"}}},
		},
		Outputs: []OutputSpec{{Type: TypeImage}},
	}
}

// maxImageElements bounds what one node may allocate (4096 batch × 16384² would be absurd).
const maxImageElements = 1 << 31

func (emptyImage) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	w, h, b, c := in.Int("width"), in.Int("height"), in.Int("batch_size"), in.Int("color")
	if w*h*b*3 > maxImageElements {
		return nil, Errorf("ValueError", "EmptyImage %dx%d with batch %d is too large (more than %d values)", w, h, b, int64(maxImageElements))
	}
	im := NewImage(int(b), int(h), int(w), 3)
	rgb := [3]float32{
		float32(float64((c>>16)&0xFF) / 0xFF),
		float32(float64((c>>8)&0xFF) / 0xFF),
		float32(float64(c&0xFF) / 0xFF),
	}
	for i := 0; i < len(im.Pix); i += 3 {
		im.Pix[i], im.Pix[i+1], im.Pix[i+2] = rgb[0], rgb[1], rgb[2]
	}
	return &Outputs{Values: []any{im}}, nil
}

// ---- ImageInvert

type imageInvert struct{}

func (imageInvert) Schema() *Schema {
	return &Schema{
		Name: "ImageInvert", DisplayName: "Invert Image Colors", Category: "image/color",
		Inputs:        []InputSpec{imageInput("image")},
		Outputs:       []OutputSpec{{Type: TypeImage}},
		SearchAliases: []string{"reverse colors"}, EssentialsCategory: "Image Tools",
	}
}

func (imageInvert) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	src, err := inputImage(in, "image")
	if err != nil {
		return nil, err
	}
	out := &Image{B: src.B, H: src.H, W: src.W, C: src.C, Pix: make([]float32, len(src.Pix))}
	for i, v := range src.Pix {
		out.Pix[i] = 1 - v
	}
	return &Outputs{Values: []any{out}}, nil
}

func inputImage(in *Inputs, name string) (*Image, error) {
	im, ok := in.Value(name).(*Image)
	if !ok || im == nil {
		return nil, Errorf("TypeError", "input %q is not an IMAGE (got %T)", name, in.Value(name))
	}
	return im, nil
}

// ---- ImageScale

type imageScale struct{}

func (imageScale) Schema() *Schema {
	return &Schema{
		Name: "ImageScale", DisplayName: "Upscale Image", Category: "image/upscaling",
		Inputs: []InputSpec{
			imageInput("image"),
			{Name: "upscale_method", Type: TypeCombo, Options: upscaleMethods},
			{Name: "width", Type: TypeInt, Default: int64(512), Min: int64(0), Max: MaxResolution, Step: int64(1)},
			{Name: "height", Type: TypeInt, Default: int64(512), Min: int64(0), Max: MaxResolution, Step: int64(1)},
			{Name: "crop", Type: TypeCombo, Options: []string{"disabled", "center"}},
		},
		Outputs:            []OutputSpec{{Type: TypeImage}},
		EssentialsCategory: "Image Tools",
		SearchAliases:      []string{"resize", "resize image", "scale image", "image resize", "zoom", "zoom in", "change size"},
	}
}

func (imageScale) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	src, err := inputImage(in, "image")
	if err != nil {
		return nil, err
	}
	width, height := in.Int("width"), in.Int("height")
	if width == 0 && height == 0 {
		return &Outputs{Values: []any{src}}, nil
	}
	if width == 0 {
		width = max(1, int64(roundHalfEven(float64(src.W)*float64(height)/float64(src.H))))
	} else if height == 0 {
		height = max(1, int64(roundHalfEven(float64(src.H)*float64(width)/float64(src.W))))
	}
	out, err := scaleImage(src, width, height, in.String("upscale_method"), in.String("crop") == "center")
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{out}}, nil
}

func scaleImage(src *Image, width, height int64, method string, center bool) (*Image, error) {
	m, err := resample.ParseMethod(method)
	if err != nil {
		return nil, Errorf("ValueError", "%v", err)
	}
	if width*height*int64(src.B*src.C) > maxImageElements {
		return nil, Errorf("ValueError", "scaling to %dx%d would need more than %d values", width, height, int64(maxImageElements))
	}
	out, err := src.Resize(int(width), int(height), m, center)
	if err != nil {
		return nil, Errorf("ValueError", "%v", err)
	}
	return out, nil
}

// ---- ImageScaleBy

type imageScaleBy struct{}

func (imageScaleBy) Schema() *Schema {
	return &Schema{
		Name: "ImageScaleBy", DisplayName: "Upscale Image By", Category: "image/upscaling",
		Inputs: []InputSpec{
			imageInput("image"),
			{Name: "upscale_method", Type: TypeCombo, Options: upscaleMethods},
			{Name: "scale_by", Type: TypeFloat, Default: 1.0, Min: 0.01, Max: 8.0, Step: 0.01},
		},
		Outputs:            []OutputSpec{{Type: TypeImage}},
		EssentialsCategory: "Image Tools",
	}
}

func (imageScaleBy) Execute(_ context.Context, in *Inputs, _ Runtime) (*Outputs, error) {
	src, err := inputImage(in, "image")
	if err != nil {
		return nil, err
	}
	s := in.Float("scale_by")
	width := int64(roundHalfEven(float64(src.W) * s))
	height := int64(roundHalfEven(float64(src.H) * s))
	if width < 1 || height < 1 {
		return nil, Errorf("ValueError", "scaling %dx%d by %v gives an empty image (%dx%d)", src.W, src.H, s, width, height)
	}
	out, err := scaleImage(src, width, height, in.String("upscale_method"), false)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{out}}, nil
}

// ---- LoadImage

type loadImage struct{}

// imageExtensions are the file types LoadImage lists (ComfyUI filters by the "image" mime type).
func isImageFile(name string) bool {
	t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name)))
	if t == "" {
		switch strings.ToLower(filepath.Ext(name)) {
		case ".webp":
			return true
		}
		return false
	}
	return strings.HasPrefix(t, "image/")
}

// ListInputImages returns the image files at the top level of the input folder, sorted.
func ListInputImages(env Env) []string {
	entries, err := os.ReadDir(env.InputDir)
	if err != nil {
		return []string{}
	}
	files := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && isImageFile(e.Name()) {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	return files
}

func (loadImage) Schema() *Schema {
	return &Schema{
		Name: "LoadImage", DisplayName: "Load Image", Category: "image",
		Inputs: []InputSpec{
			{Name: "image", Type: TypeCombo, OptionsFrom: ListInputImages, Extra: []KV{{"image_upload", true}}},
		},
		Outputs:            []OutputSpec{{Type: TypeImage}, {Type: TypeMask}},
		EssentialsCategory: "Basics",
		SearchAliases:      []string{"load image", "open image", "import image", "image input", "upload image", "read image", "image loader"},
	}
}

// AnnotatedPath resolves a file name with an optional " [input]", " [output]" or " [temp]"
// suffix to a path inside that folder (input by default). Paths escaping the folder are refused.
func AnnotatedPath(name string, env Env) (string, error) {
	base := env.InputDir
	for _, a := range []struct{ suffix, dir string }{{"[output]", env.OutputDir}, {"[input]", env.InputDir}, {"[temp]", env.TempDir}} {
		if strings.HasSuffix(name, a.suffix) {
			name = strings.TrimSuffix(strings.TrimSuffix(name, a.suffix), " ")
			base = a.dir
			break
		}
	}
	if name == "" || filepath.IsAbs(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("invalid file path: %q", name)
	}
	full := filepath.Join(base, name)
	if !within(base, full) {
		return "", fmt.Errorf("invalid file path: %q (outside the folder)", name)
	}
	return full, nil
}

// within reports whether path is base or below it (lexically, after cleaning).
func within(base, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(base), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func (loadImage) ValidatedInputs() []string { return []string{"image"} }

func (loadImage) ValidateInputs(in *Inputs, env Env) error {
	name, ok := in.Value("image").(string)
	if !ok {
		return fmt.Errorf("Invalid image file: %v", in.Value("image"))
	}
	path, err := AnnotatedPath(name, env)
	if err != nil {
		return fmt.Errorf("Invalid image file: %s", name)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("Invalid image file: %s", name)
	}
	return nil
}

func (loadImage) Fingerprint(in *Inputs, env Env) (string, error) {
	path, err := AnnotatedPath(in.String("image"), env)
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// maxDecodePixels refuses images whose header claims an absurd size before decoding them.
const maxDecodePixels = 1 << 28

func (loadImage) Execute(_ context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	path, err := AnnotatedPath(in.String("image"), rt.Env())
	if err != nil {
		return nil, Errorf("ValueError", "%v", err)
	}
	im, mask, err := LoadImageFile(path)
	if err != nil {
		return nil, err
	}
	return &Outputs{Values: []any{im, mask}}, nil
}

// LoadImageFile decodes an image file into IMAGE and MASK.
func LoadImageFile(path string) (*Image, *Mask, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, Errorf("FileNotFoundError", "load image: %v", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, nil, Errorf("UnidentifiedImageError", "load image %s: %v", filepath.Base(path), err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxDecodePixels {
		return nil, nil, Errorf("DecompressionBombError", "load image %s: %dx%d is too large", filepath.Base(path), cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, fmt.Errorf("load image: %w", err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, nil, Errorf("UnidentifiedImageError", "load image %s: %v", filepath.Base(path), err)
	}
	im, mask := ImageFromDecoded(img)
	return im, mask, nil
}

// ---- SaveImage / PreviewImage

type saveImage struct{ preview bool }

func (s saveImage) Schema() *Schema {
	if s.preview {
		return &Schema{
			Name: "PreviewImage", DisplayName: "Preview Image", Category: "image",
			Description:        "Preview the images without saving them to the ComfyUI output directory.",
			Inputs:             []InputSpec{imageInput("images")},
			Hidden:             []HiddenInput{{"prompt", HiddenPrompt}, {"extra_pnginfo", HiddenExtraPNGInfo}},
			Outputs:            []OutputSpec{{Type: TypeImage, Name: "images"}},
			OutputNode:         true,
			EssentialsCategory: "Basics",
			SearchAliases:      []string{"preview", "preview image", "show image", "view image", "display image", "image viewer"},
		}
	}
	return &Schema{
		Name: "SaveImage", DisplayName: "Save Image", Category: "image",
		Description: "Saves the input images to your ComfyUI output directory.",
		Inputs: []InputSpec{
			imageInput("images", KV{"tooltip", "The images to save."}),
			{Name: "filename_prefix", Type: TypeString, Default: "ComfyUI", Extra: []KV{{"tooltip", "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes."}}},
		},
		Hidden:             []HiddenInput{{"prompt", HiddenPrompt}, {"extra_pnginfo", HiddenExtraPNGInfo}},
		Outputs:            []OutputSpec{{Type: TypeImage, Name: "images"}},
		OutputNode:         true,
		EssentialsCategory: "Basics",
		SearchAliases:      []string{"save", "save image", "export image", "output image", "write image", "download"},
	}
}

func (s saveImage) Execute(ctx context.Context, in *Inputs, rt Runtime) (*Outputs, error) {
	images, err := inputImage(in, "images")
	if err != nil {
		return nil, err
	}
	env := rt.Env()
	dir, typ, level := env.OutputDir, "output", png.DefaultCompression
	prefix := in.String("filename_prefix")
	if !in.Has("filename_prefix") {
		prefix = "ComfyUI"
	}
	if s.preview {
		dir, typ, level = env.TempDir, "temp", png.BestSpeed
		prefix = "ComfyUI_temp_" + randomLetters(5)
	}
	if images.B == 0 {
		return &Outputs{Values: []any{images}, UI: ojson.NewObject().Set("images", []any{})}, nil
	}
	target, err := SavePath(prefix, dir, images.W, images.H, time.Now())
	if err != nil {
		return nil, err
	}
	var texts []PNGText
	if in.Prompt != nil {
		b, err := ojson.MarshalPython(in.Prompt)
		if err != nil {
			return nil, fmt.Errorf("save image: encode prompt: %w", err)
		}
		texts = append(texts, PNGText{"prompt", string(b)})
	}
	if in.ExtraPNGInfo != nil {
		for _, k := range in.ExtraPNGInfo.Keys() {
			v, _ := in.ExtraPNGInfo.Get(k)
			b, err := ojson.MarshalPython(v)
			if err != nil {
				return nil, fmt.Errorf("save image: encode %s: %w", k, err)
			}
			texts = append(texts, PNGText{k, string(b)})
		}
	}
	results := []any{}
	counter := target.Counter
	for b := 0; b < images.B; b++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := images.ToRGBA8(b)
		if err != nil {
			return nil, Errorf("ValueError", "save image: %v", err)
		}
		name := fmt.Sprintf("%s_%05d_.png", strings.ReplaceAll(target.Filename, "%batch_num%", strconv.Itoa(b)), counter)
		if err := writeFileAtomic(filepath.Join(target.Folder, name), func(w io.Writer) error {
			return EncodePNG(w, img, level, texts)
		}); err != nil {
			return nil, Errorf("OSError", "save image %s: %v", name, err)
		}
		results = append(results, ojson.NewObject().Set("filename", name).Set("subfolder", target.Subfolder).Set("type", typ))
		counter++
	}
	return &Outputs{Values: []any{images}, UI: ojson.NewObject().Set("images", results)}, nil
}

// writeFileAtomic writes through a temporary file and renames it, so a failure never leaves a
// truncated image, and refuses to replace an existing file.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".saving-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file owner-only; saved images are ordinary readable files.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return nil
}

func randomLetters(n int) string {
	const letters = "abcdefghijklmnopqrstupvxyz" // ComfyUI's alphabet, typo included
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// SaveTarget is where SaveImage writes: folder, subfolder relative to the base, file stem and
// the first free counter.
type SaveTarget struct {
	Folder, Subfolder, Filename string
	Counter                     int
}

// SavePath is ComfyUI's folder_paths.get_save_image_path: %width%-style substitutions, the
// subfolder from the prefix (refused when it escapes base), and counter = 1 + the largest
// existing counter of "<stem>_<digits>_..." files.
func SavePath(prefix, base string, width, height int, now time.Time) (*SaveTarget, error) {
	if strings.Contains(prefix, "%") {
		r := strings.NewReplacer("%width%", strconv.Itoa(width), "%height%", strconv.Itoa(height),
			"%year%", strconv.Itoa(now.Year()), "%month%", fmt.Sprintf("%02d", int(now.Month())),
			"%day%", fmt.Sprintf("%02d", now.Day()), "%hour%", fmt.Sprintf("%02d", now.Hour()),
			"%minute%", fmt.Sprintf("%02d", now.Minute()), "%second%", fmt.Sprintf("%02d", now.Second()))
		prefix = r.Replace(prefix)
	}
	if strings.ContainsRune(prefix, 0) || filepath.IsAbs(prefix) {
		return nil, Errorf("ValueError", "saving image outside the output folder is not allowed (filename_prefix %q)", prefix)
	}
	clean := filepath.Clean(prefix)
	sub, stem := filepath.Dir(clean), filepath.Base(clean)
	if sub == "." {
		sub = ""
	}
	folder := filepath.Join(base, sub)
	if !within(base, folder) || stem == ".." || stem == "." || stem == string(filepath.Separator) {
		return nil, Errorf("ValueError", "saving image outside the output folder is not allowed (filename_prefix %q)", prefix)
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return nil, Errorf("OSError", "create output folder: %v", err)
	}
	entries, err := os.ReadDir(folder)
	if err != nil {
		return nil, Errorf("OSError", "list output folder: %v", err)
	}
	counter := 0
	for _, e := range entries {
		name := e.Name()
		if len(name) <= len(stem) || name[:len(stem)] != stem || name[len(stem)] != '_' {
			continue
		}
		rest := name[len(stem)+1:]
		rest = strings.SplitN(rest, ".", 2)[0]
		digits := strings.SplitN(rest, "_", 2)[0]
		if n, err := strconv.Atoi(digits); err == nil && n > counter && n < math.MaxInt32 {
			counter = n
		}
	}
	return &SaveTarget{Folder: folder, Subfolder: sub, Filename: stem, Counter: counter + 1}, nil
}

func init() {
	register(emptyImage{})
	register(imageInvert{})
	register(imageScale{})
	register(imageScaleBy{})
	register(loadImage{})
	register(saveImage{})
	register(saveImage{preview: true})
}
