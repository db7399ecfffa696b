// Package zimage is the Z-Image diffusion transformer (ComfyUI's NextDiT with Z-Image
// modulation, a.k.a. ZImageTransformer2DModel): loading a checkpoint and running one forward
// pass that returns the flow velocity, number for number as ComfyUI's comfy/ldm/lumina/model.py
// (spec: shared/docs/zimage.md §4 and §9).
//
// It owns: the model configuration (inferred from tensor shapes by models/detect, a sidecar
// <weights>.config.json overriding), binding the weights of a ComfyUI single file (any key
// prefix such as "model.diffusion_model.") or of a diffusers folder (to_q/to_k/to_v), kept
// memory-mapped in their stored dtype (BF16, F16, F32 or FP8; optionally converted to FP8 at
// load, as ComfyUI's weight_dtype), and the forward pass: patchify, the timestep / caption /
// patch embedders, the context and noise refiners, the joint layers with scale / tanh-gate
// adaLN modulation, q/k RMSNorm (ComfyUI's ε = float32 machine epsilon), the 3-axis RoPE,
// the SwiGLU feed-forward, the final layer and unpatchify, with token padding to the pad
// multiple by the learnt pad tokens and ComfyUI's position ids. Arithmetic is float32 with
// weights read in their stored dtype.
//
// It must not know about nodes, workflows, sampling schedules, previews or HTTP: the sampler
// calls Forward once per model evaluation and does its own arithmetic with the velocity
// (Denoised is provided for the flow-matching x0). It runs every activation through the
// tensor.Backend it was loaded on and builds only small host tables itself (timestep
// sinusoid, RoPE cos/sin).
//
// # API
//
//	Load(path, backend, Options) (*Model, error)      checkpoint file, index or shard folder
//	NewFromTensors(cfg, tensors, backend, Options)     weights already in memory (ComfyUI names)
//	NewRandom(cfg, backend, dtype, seed)               random weights (tests, benchmarks)
//	ShapeConfig(dim, layers, refiners, heads, capDim)  a Z-Image-shaped Config by ComfyUI's rules
//	(*Model).Forward(ctx, Input) (*tensor.Tensor, error)
//	Denoised(backend, x, v, sigma)                     x − σ·v
//	(*Model).Config, RopeSpec, Backend, UnusedTensors, Close
//	(*Model).WithPatches(ctx, []lora.Patch) (*Model, error)   LoRA: a patched view
//	(*Model).LoRAKeyMap, CheckPatches, ParamNames, ParamShape, Parameter
//
// Forward takes Input{X: latent [B, 16, H, W], Sigma: [B] or one value (ComfyUI's timestep =
// σ·multiplier, multiplier 1), Context: [B or 1, L, cap_feat_dim], CaptionLens (optional),
// Rope (optional)} and returns the velocity ComfyUI's NextDiT returns (already negated) as a new
// F32 [B, 16, H, W] tensor on the backend, which the caller frees with backend.Free. Odd H or W
// are padded circularly to the patch size and the output cropped back, as ComfyUI does.
//
// # One sampling step
//
//	// once per generation, only when the MODEL carries a DyPE patch:
//	rope, err := dype.New(dypeCfg, m.RopeSpec(), dype.Geometry{Width: w, Height: h, ...})
//	// every model call of step i:
//	rope.SetSigma(dype.NormalizeSigma(float64(sigma_i), 1))
//	v, err := m.Forward(ctx, zimage.Input{X: x, Sigma: []float32{sigma_i}, Context: c, Rope: rope})
//	x0, err := zimage.Denoised(backend, x, v, []float32{sigma_i})
//	backend.Free(v) ... backend.Free(x0)
//
// Forward asks the Rope (any RopeProvider; *dype.Rope is one) for the frequencies of its current
// σ and builds the tables; the Rope's geometry must be the latent's (its token grid is checked).
// Without a patch (Rope nil, or a nil *dype.Rope) the tables are ComfyUI's plain RoPE: angles and
// cos/sin in float64, rounded to float32, bit-identical to the reference.
//
// # Captions and batches
//
// ComfyUI never masks the caption (cap_mask is forced to None) and never batches conditionings
// of different lengths together (Lumina 2's c_crossattn is a plain CONDRegular). With
// Input.CaptionLens set, sample i uses only its first CaptionLens[i] context rows, and samples
// of different lengths run as separate passes, which equals ComfyUI's separate calls.
//
// # Lifetime and patches
//
// A Model is immutable after Load and safe for concurrent Forward calls; MODEL handles that carry
// patches (DyPE, LoRA) share it. Weight patches (models/lora) never write it: WithPatches returns
// a view whose patched parameters are new tensors in their stored dtype, computed once as
// ComfyUI's ModelPatcher computes them (float32, then rounded), while every other tensor is
// shared with the base; a view is closed on its own and dies with its base. A diffusers
// checkpoint's separate to_q/to_k/to_v are patched as the row blocks of the fused qkv. Forward checks ctx
// between blocks and returns ctx.Err() when cancelled; activations come from the backend's pool
// and are freed as soon as a block no longer needs them, so nothing is kept across layers.
package zimage
