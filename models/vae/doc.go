// Package vae is the 16-channel Flux-style autoencoder (the FLUX.1 "ae" VAE that Z-Image uses):
// its encoder and decoder, ComfyUI's tiled encode/decode, and the numeric helpers the latent
// nodes need that ComfyUI implements outside nodes.py (bislerp latent upscaling).
//
// It owns:
//
//   - loading: LDM ("ae.safetensors", optionally under a "first_stage_model." or "vae." prefix)
//     and diffusers AutoencoderKL namings, the configuration from tensor shapes (models/detect)
//     merged with the sidecar <weights>.config.json, and shape checks of every tensor so that a
//     mismatched checkpoint is an error naming the file and the tensor, never a panic;
//   - the forward passes on a tensor.Backend (ComfyUI comfy/ldm/modules/diffusionmodules/model.py
//     Encoder/Decoder, AutoencodingEngine without quant convs), computed in float32 (default) or
//     bfloat16 on request, never float16;
//   - ComfyUI's pixel conventions (comfy/sd.py VAE): Encode takes IMAGE data [B,H,W,C] in [0,1],
//     crops it to multiples of the downscale factor (centred, vae_encode_crop_pixels), maps it to
//     2·x-1 and returns the posterior mean; Decode returns clamp((y+1)/2, 0, 1) as [B,H,W,C];
//   - tiling with ComfyUI's algorithm (comfy/utils.py tiled_scale_multidim, sd.py decode_tiled_
//     and encode_tiled_: three passes with differently shaped tiles, feathered blending) and the
//     automatic fallback to tiling when a plain pass would exceed Options.MemoryBudget, with
//     memory estimates that bound peak activation memory by the tile size;
//   - the Flux latent format constants (ScaleFactor, ShiftFactor) and their two conversions.
//
// Latent spaces, precisely: Decode and Encode work on VAE-space latents, the raw output of the
// encoder / input of the decoder. That is what ComfyUI's LATENT {"samples"} holds between nodes
// and what comfy.sd.VAE.decode/encode take and return: neither of them applies the latent format.
// The scale and shift belong to the sampler side: ComfyUI's sampler converts the LATENT into the
// diffusion model's space with model.process_latent_in = LatentFormat.process_in,
// (z - 0.1159)·0.3611 (skipped for an all-zero latent), samples in that space, and converts its
// result back with process_out, l/0.3611 + 0.1159, before handing a LATENT to VAEDecode. ProcessIn
// and ProcessOut implement those two conversions for the sampler; this package never applies them
// itself.
//
// The package must not know about nodes, graphs, the executor or HTTP: the VAELoader, VAEDecode,
// VAEDecodeTiled, VAEEncode, VAEEncodeTiled and LatentUpscale nodes live in package nodes on top
// of it. A *VAE is immutable after Load and safe for concurrent use.
package vae
