package vae

// The Flux latent format (comfy/latent_formats.py: Flux), shared by Z-Image.
const (
	// ScaleFactor multiplies a shifted VAE latent into the diffusion model's space.
	ScaleFactor = 0.3611
	// ShiftFactor is subtracted from a VAE latent before scaling.
	ShiftFactor = 0.1159
	// LatentChannels is the channel count of the Flux latent.
	LatentChannels = 16
)

// ProcessIn converts VAE-space latent values (what Encode returns, what a LATENT holds) into the
// diffusion model's space in place: (z - ShiftFactor)·ScaleFactor, in float32 like ComfyUI's
// process_in. The sampler calls it on its input latent (ComfyUI skips it for an all-zero latent);
// Decode and Encode never do.
func ProcessIn(z []float32) {
	const s, m = float32(ShiftFactor), float32(ScaleFactor)
	for i, v := range z {
		z[i] = float32(v-s) * m
	}
}

// ProcessOut converts model-space latent values back to VAE space in place:
// l/ScaleFactor + ShiftFactor, in float32 like ComfyUI's process_out. The sampler calls it on its
// result before the LATENT goes to Decode.
func ProcessOut(l []float32) {
	const s, m = float32(ShiftFactor), float32(ScaleFactor)
	for i, v := range l {
		l[i] = float32(v/m) + s
	}
}
