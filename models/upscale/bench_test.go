package upscale

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
)

// randomModel builds an RRDBNet of RealESRGAN_x4plus's size (64 features, 23 blocks, growth 32,
// ×4) with random weights.
func randomModel(b *testing.B) *Model {
	rng := rand.New(rand.NewPCG(3, 4))
	sd := map[string]safetensors.Entry{}
	for name, shape := range shapesFor(NamingBasicSR, 3, 3, 64, 32, 23, 2) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		fan := 1.0
		if len(shape) == 4 {
			fan = float64(shape[1] * 9)
		}
		data := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(rng.NormFloat64()/math.Sqrt(fan))))
		}
		sd[name] = safetensors.Entry{DType: safetensors.F32, Shape: shape, Data: data}
	}
	m, err := Load(sd, newBackend(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// BenchmarkUpscaleX4Plus64 upscales a 64×64 RGB image (one tile) with a RealESRGAN_x4plus-sized
// network on the CPU backend.
func BenchmarkUpscaleX4Plus64(b *testing.B) {
	m := randomModel(b)
	img := Image{B: 1, H: 64, W: 64, C: 3, Pix: make([]float32, 64*64*3)}
	for i := range img.Pix {
		img.Pix[i] = float32(i%251) / 251
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Upscale(context.Background(), img, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
