package vae_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/vae"
	"github.com/dypegraph/dypegraph/tensor"
)

var (
	fluxOnce sync.Once
	fluxFile *safetensors.File
	fluxErr  error
)

// fluxWeights returns random full-size Flux VAE weights (BF16, as the golden files store them),
// generated once per process.
func fluxWeights(b *testing.B) *safetensors.File {
	fluxOnce.Do(func() {
		data, err := safetensors.Marshal(randomWeights(b, ldmSpecs(vae.FluxConfig()), 42, tensor.BF16), nil)
		if err != nil {
			fluxErr = err
			return
		}
		fluxFile, fluxErr = safetensors.Parse("random-flux-vae", data)
	})
	if fluxErr != nil {
		b.Fatal(fluxErr)
	}
	return fluxFile
}

// benchSizes are the latent sizes timed: 32² (256² pixels) always; more with VAE_BENCH_LATENT
// (e.g. "128" for 1024², which takes minutes on two cores).
func benchSizes() []int {
	sizes := []int{32}
	if s := os.Getenv("VAE_BENCH_LATENT"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			sizes = append(sizes, n)
		}
	}
	return sizes
}

// BenchmarkDecode times plain and tiled decodes with the real Flux VAE shapes (random weights,
// float32 compute) and reports the peak live activation memory measured on the CPU backend.
func BenchmarkDecode(b *testing.B) {
	src := fluxWeights(b)
	tr := newTracker(newBackend(b))
	v, err := vae.New(src, "random-flux-vae", vae.FluxConfig(), tr, vae.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	ctx := context.Background()
	for _, n := range benchSizes() {
		lat := randomLatent(1, 16, n, n, 1)
		tiles := vae.TileOptions{TileX: n / 2, TileY: n / 2, Overlap: n / 8}
		for _, mode := range []string{"plain", "tiled"} {
			b.Run(fmt.Sprintf("%s/latent%d", mode, n), func(b *testing.B) {
				tr.reset()
				for b.Loop() {
					var err error
					if mode == "plain" {
						_, err = v.Decode(ctx, lat)
					} else {
						_, err = v.DecodeTiled(ctx, lat, tiles)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(tr.peak), "peak-act-B")
			})
		}
	}
}

// BenchmarkDecodePeakMemory runs the full-size Flux VAE shapes on the dry backend (no
// arithmetic) to measure the activation peaks of plain decodes and of tiled decodes with the
// VAEDecodeTiled node defaults (512 px tiles, 64 px overlap) at large sizes, next to the
// estimates (which add the host buffers). The time per op is the host-side cost of tiling.
func BenchmarkDecodePeakMemory(b *testing.B) {
	v, tr := dryFlux(b, tensor.F32)
	ctx := context.Background()
	tiles := vae.DecodeTilesFromPixels(512, 64, 8)
	for _, n := range []int{128, 256, 512} {
		b.Run(fmt.Sprintf("latent%d", n), func(b *testing.B) {
			lat := &vae.Latent{B: 1, C: 16, H: n, W: n, Data: make([]float32, 16*n*n)}
			tr.reset()
			if _, err := v.Decode(ctx, lat); err != nil {
				b.Fatal(err)
			}
			plainPeak := tr.peak
			tr.reset()
			for b.Loop() {
				if _, err := v.DecodeTiled(ctx, lat, tiles); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(tr.peak), "tiled-act-B")
			b.ReportMetric(float64(plainPeak), "plain-act-B")
			b.ReportMetric(float64(v.DecodeTiledPeakBytes(n, n, tiles)), "tiled-est-B")
			b.ReportMetric(float64(v.DecodePeakBytes(n, n)), "plain-est-B")
		})
	}
}
