package nodes

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"

	"github.com/dypegraph/dypegraph/tensor/resample"
)

// Image is ComfyUI's IMAGE: float32 [B, H, W, C] with values nominally in [0, 1], on the host.
type Image struct {
	B, H, W, C int
	Pix        []float32
}

// NewImage allocates a zeroed image.
func NewImage(b, h, w, c int) *Image {
	return &Image{B: b, H: h, W: w, C: c, Pix: make([]float32, b*h*w*c)}
}

// Mask is ComfyUI's MASK: float32 [B, H, W].
type Mask struct {
	B, H, W int
	Pix     []float32
}

// toPlanes converts [B,H,W,C] to [B*C][H][W] planes (what the resample kernels take).
func (im *Image) toPlanes() []float32 {
	out := make([]float32, len(im.Pix))
	hw := im.H * im.W
	for b := 0; b < im.B; b++ {
		src := im.Pix[b*hw*im.C:]
		for p := 0; p < hw; p++ {
			for c := 0; c < im.C; c++ {
				out[(b*im.C+c)*hw+p] = src[p*im.C+c]
			}
		}
	}
	return out
}

// imageFromPlanes is the inverse of toPlanes.
func imageFromPlanes(planes []float32, b, h, w, c int) *Image {
	im := NewImage(b, h, w, c)
	hw := h * w
	for bi := 0; bi < b; bi++ {
		dst := im.Pix[bi*hw*c:]
		for p := 0; p < hw; p++ {
			for ci := 0; ci < c; ci++ {
				dst[p*c+ci] = planes[(bi*c+ci)*hw+p]
			}
		}
	}
	return im
}

// crop returns the sub-image rows [y, y+h) and columns [x, x+w).
func (im *Image) crop(x, y, w, h int) *Image {
	out := NewImage(im.B, h, w, im.C)
	for b := 0; b < im.B; b++ {
		for r := 0; r < h; r++ {
			src := im.Pix[((b*im.H+y+r)*im.W+x)*im.C:]
			copy(out.Pix[((b*h+r)*w)*im.C:((b*h+r)*w+w)*im.C], src[:w*im.C])
		}
	}
	return out
}

// Resize scales every image of the batch to width×height with a ComfyUI method
// (comfy.utils.common_upscale): optional center crop to the target aspect, then the method.
func (im *Image) Resize(width, height int, method resample.Method, centerCrop bool) (*Image, error) {
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("resize to %dx%d: width and height must be positive", width, height)
	}
	src := im
	if centerCrop {
		oldW, oldH := float64(im.W), float64(im.H)
		oldAspect, newAspect := oldW/oldH, float64(width)/float64(height)
		x, y := 0, 0
		if oldAspect > newAspect {
			x = int(roundHalfEven((oldW - oldW*(newAspect/oldAspect)) / 2))
		} else if oldAspect < newAspect {
			y = int(roundHalfEven((oldH - oldH*(oldAspect/newAspect)) / 2))
		}
		if x > 0 || y > 0 {
			src = im.crop(x, y, im.W-2*x, im.H-2*y)
		}
	}
	if src.W <= 0 || src.H <= 0 || src.B == 0 {
		return NewImage(im.B, height, width, im.C), nil
	}
	planes := src.toPlanes()
	out := make([]float32, src.B*src.C*width*height)
	if err := resample.Planes(out, planes, src.B*src.C, src.H, src.W, height, width, method); err != nil {
		return nil, err
	}
	return imageFromPlanes(out, src.B, height, width, src.C), nil
}

// roundHalfEven is Python 3's round() for floats.
func roundHalfEven(x float64) float64 {
	t := float64(int64(x))
	if d := x - t; d > 0.5 || d < -0.5 || d == 0.5 && int64(t)%2 != 0 || d == -0.5 && int64(t)%2 != 0 {
		if x > 0 {
			return t + 1
		}
		return t - 1
	}
	return t
}

// ToRGBA8 converts batch item b to an 8-bit image like ComfyUI's save path:
// clip(255·v, 0, 255) truncated. 1 channel → gray, 3 → RGB, 4 → RGBA (non-premultiplied).
func (im *Image) ToRGBA8(b int) (image.Image, error) {
	if b < 0 || b >= im.B {
		return nil, fmt.Errorf("image batch index %d out of range (batch size %d)", b, im.B)
	}
	src := im.Pix[b*im.H*im.W*im.C : (b+1)*im.H*im.W*im.C]
	rect := image.Rect(0, 0, im.W, im.H)
	switch im.C {
	case 1:
		g := image.NewGray(rect)
		for i, v := range src {
			g.Pix[i] = resample.ToU8(v)
		}
		return g, nil
	case 3:
		// image.RGBA with opaque alpha encodes as an RGB PNG (colour type 2), like Pillow's RGB.
		out := image.NewRGBA(rect)
		for p := 0; p < im.H*im.W; p++ {
			out.Pix[4*p] = resample.ToU8(src[3*p])
			out.Pix[4*p+1] = resample.ToU8(src[3*p+1])
			out.Pix[4*p+2] = resample.ToU8(src[3*p+2])
			out.Pix[4*p+3] = 255
		}
		return out, nil
	case 4:
		out := image.NewNRGBA(rect)
		for i, v := range src {
			out.Pix[i] = resample.ToU8(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot save an image with %d channels (want 1, 3 or 4)", im.C)
}

// PNGText is one tEXt chunk.
type PNGText struct {
	Key, Value string
}

// EncodePNG writes img as PNG with tEXt chunks placed right after IHDR, as Pillow does.
func EncodePNG(w io.Writer, img image.Image, level png.CompressionLevel, texts []PNGText) error {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: level}
	if err := enc.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode png: %w", err)
	}
	data := buf.Bytes()
	const sigLen, ihdrLen = 8, 8 + 13 + 4
	if len(data) < sigLen+ihdrLen {
		return fmt.Errorf("encode png: short output")
	}
	if _, err := w.Write(data[:sigLen+ihdrLen]); err != nil {
		return err
	}
	for _, t := range texts {
		if err := writeTextChunk(w, t.Key, t.Value); err != nil {
			return err
		}
	}
	_, err := w.Write(data[sigLen+ihdrLen:])
	return err
}

func writeTextChunk(w io.Writer, key, value string) error {
	if len(key) == 0 || len(key) > 79 {
		return fmt.Errorf("png text key %q must be 1-79 bytes", key)
	}
	// tEXt is Latin-1; ComfyUI's values are ASCII JSON (json.dumps escapes the rest).
	body := make([]byte, 0, len(key)+1+len(value))
	body = append(body, key...)
	body = append(body, 0)
	body = append(body, value...)
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(body)))
	copy(hdr[4:], "tEXt")
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(body)
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], crc.Sum32())
	for _, part := range [][]byte{hdr[:], body, tail[:]} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return nil
}

// ReadPNGText returns the tEXt chunks of a PNG stream (iTXt and zTXt are not decoded).
func ReadPNGText(r io.Reader) (map[string]string, error) {
	var sig [8]byte
	if _, err := io.ReadFull(r, sig[:]); err != nil {
		return nil, fmt.Errorf("read png: %w", err)
	}
	if string(sig[:]) != "\x89PNG\r\n\x1a\n" {
		return nil, fmt.Errorf("read png: not a PNG file")
	}
	out := map[string]string{}
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, fmt.Errorf("read png chunk: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > 1<<30 {
			return nil, fmt.Errorf("read png: chunk of %d bytes is too large", n)
		}
		typ := string(hdr[4:])
		if typ == "IEND" {
			return out, nil
		}
		if typ != "tEXt" {
			if _, err := io.CopyN(io.Discard, r, int64(n)+4); err != nil {
				return nil, fmt.Errorf("read png chunk %s: %w", typ, err)
			}
			continue
		}
		// Read as data arrives rather than trusting the declared length with one allocation.
		body, err := io.ReadAll(io.LimitReader(r, int64(n)))
		if err != nil {
			return nil, fmt.Errorf("read png text: %w", err)
		}
		if len(body) != int(n) {
			return nil, fmt.Errorf("read png text: truncated chunk")
		}
		if _, err := io.CopyN(io.Discard, r, 4); err != nil {
			return nil, fmt.Errorf("read png text crc: %w", err)
		}
		if i := bytes.IndexByte(body, 0); i > 0 {
			out[string(body[:i])] = latin1(body[i+1:])
		}
	}
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// ImageFromDecoded converts a decoded picture to IMAGE (RGB, /255 in float32) and its MASK
// (1 − alpha/255 when the picture has an alpha channel, else 64×64 zeros), like LoadImage.
func ImageFromDecoded(src image.Image) (*Image, *Mask) {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	im := NewImage(1, h, w, 3)
	hasAlpha := false
	switch src.(type) {
	case *image.NRGBA, *image.NRGBA64, *image.NYCbCrA:
		hasAlpha = true
	}
	var mask *Mask
	if hasAlpha {
		mask = &Mask{B: 1, H: h, W: w, Pix: make([]float32, h*w)}
	} else {
		mask = &Mask{B: 1, H: 64, W: 64, Pix: make([]float32, 64*64)}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			p := (y*w + x) * 3
			im.Pix[p] = float32(c.R) / 255
			im.Pix[p+1] = float32(c.G) / 255
			im.Pix[p+2] = float32(c.B) / 255
			if hasAlpha {
				mask.Pix[y*w+x] = 1 - float32(c.A)/255
			}
		}
	}
	return im, mask
}
