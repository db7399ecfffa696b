package sampling

import (
	"errors"
	"fmt"
	"math"
)

// Latent is a dense row-major float32 tensor on the host, normally [B, C, H, W]. The first
// dimension is the batch. Samplers never modify a Latent they were given; they return new ones.
type Latent struct {
	Shape []int
	Data  []float32
}

// ErrShape reports a latent whose shape and data disagree, or two latents that must match and
// do not.
var ErrShape = errors.New("sampling: bad latent shape")

// NewLatent returns a zero-filled latent of the given shape.
func NewLatent(shape ...int) (*Latent, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	return &Latent{Shape: append([]int(nil), shape...), Data: make([]float32, n)}, nil
}

// LatentFrom wraps data (not copied) with a shape, checking that they agree.
func LatentFrom(data []float32, shape ...int) (*Latent, error) {
	l := &Latent{Shape: append([]int(nil), shape...), Data: data}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}

func numel(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, fmt.Errorf("%w: no dimensions", ErrShape)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("%w: dimension %d in %v", ErrShape, d, shape)
		}
		if n > math.MaxInt32/d {
			return 0, fmt.Errorf("%w: %v has too many elements", ErrShape, shape)
		}
		n *= d
	}
	return n, nil
}

// Validate checks that the shape is positive and matches len(Data).
func (l *Latent) Validate() error {
	if l == nil {
		return fmt.Errorf("%w: nil latent", ErrShape)
	}
	n, err := numel(l.Shape)
	if err != nil {
		return err
	}
	if n != len(l.Data) {
		return fmt.Errorf("%w: shape %v needs %d values, have %d", ErrShape, l.Shape, n, len(l.Data))
	}
	return nil
}

// Numel is the number of elements.
func (l *Latent) Numel() int { return len(l.Data) }

// Clone returns a deep copy.
func (l *Latent) Clone() *Latent {
	return &Latent{Shape: append([]int(nil), l.Shape...), Data: append([]float32(nil), l.Data...)}
}

// SameShape reports whether l and o have identical shapes.
func (l *Latent) SameShape(o *Latent) bool {
	if len(l.Shape) != len(o.Shape) {
		return false
	}
	for i := range l.Shape {
		if l.Shape[i] != o.Shape[i] {
			return false
		}
	}
	return true
}

// IsZero reports whether every value is zero (ComfyUI's count_nonzero(latent) == 0 test for
// an empty latent, which skips process_in).
func (l *Latent) IsZero() bool {
	for _, v := range l.Data {
		if v != 0 {
			return false
		}
	}
	return true
}

func (l *Latent) like() *Latent {
	return &Latent{Shape: append([]int(nil), l.Shape...), Data: make([]float32, len(l.Data))}
}

func checkSame(what string, a, b *Latent) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !a.SameShape(b) {
		return fmt.Errorf("%w: %s has shape %v, want %v", ErrShape, what, b.Shape, a.Shape)
	}
	return nil
}

// LatentFormat is ComfyUI's latent_format: the affine map between the VAE's latent space and
// the space the diffusion model samples in.
type LatentFormat struct {
	Name     string
	Channels int
	Scale    float32 // scale_factor
	Shift    float32 // shift_factor
}

// Flux is comfy/latent_formats.py Flux, used by Z-Image: 16 channels,
// process_in(z) = (z − 0.1159)·0.3611, process_out(x) = x/0.3611 + 0.1159.
var Flux = LatentFormat{Name: "flux", Channels: 16, Scale: 0.3611, Shift: 0.1159}

// ProcessIn maps a VAE latent into model space: (z − shift)·scale, in float32 as torch does.
func (f LatentFormat) ProcessIn(z *Latent) *Latent {
	out := z.like()
	for i, v := range z.Data {
		out.Data[i] = float32(v-f.Shift) * f.Scale
	}
	return out
}

// ProcessOut maps a model-space latent back to the VAE's space: x/scale + shift.
func (f LatentFormat) ProcessOut(x *Latent) *Latent {
	out := x.like()
	for i, v := range x.Data {
		out.Data[i] = float32(v/f.Scale) + f.Shift
	}
	return out
}
