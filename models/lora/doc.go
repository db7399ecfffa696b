// Package lora reads LoRA files and turns them into weight patches the way ComfyUI's
// LoraLoader does (comfy/lora.py load_lora and model_lora_keys_unet / model_lora_keys_clip,
// comfy/weight_adapter/lora.py, comfy/model_patcher.py patch_weight_to_device), number for
// number on the float32 path.
//
// It owns:
//
//   - reading a LoRA safetensors file (F32, BF16 or F16 matrices, 0-dim alpha tensors of any
//     float or integer dtype) into memory, so the file can be closed at once (Open, Read);
//   - the key maps: which LoRA module names reach which model parameter (KeyMap). ZImageKeyMap
//     is ComfyUI's map for a Z-Image (Lumina 2) diffusion model: the generic
//     "diffusion_model.<param>" and kohya "lora_unet_<param with _>" names, and the diffusers
//     names (prefixes "", "diffusion_model.", "transformer.", "lycoris_") whose separate
//     to_q/to_k/to_v land on row blocks of the fused attention.qkv weight. Qwen3KeyMap is
//     ComfyUI's map for the Qwen3 text encoder ("text_encoders.…", "lora_te_…");
//   - resolving a file against a key map (File.Resolve): ComfyUI probes every key-map name for
//     the adapter tensor names it knows (lora_up/lora_down, lora_A/lora_B, _lora.up, .lora.up,
//     lora_linear_layer, lora_B.default, mochi lora_A/lora_B) plus .alpha, .diff, .diff_b,
//     .w_norm, .b_norm and .set_weight, with the same precedence; tensors nothing loads are
//     returned (ComfyUI's "lora key not loaded") so the caller can warn;
//   - the patch arithmetic (Apply): W' = W + s·(up·down) with s = float32(strength·alpha/rank)
//     (alpha/rank = 1 without an alpha tensor), computed on a float32 copy of W, several patches
//     in order (several LoRAs stack), the result rounded to W's dtype to nearest even (what
//     ComfyUI's stochastic_rounding does for bf16 and f16).
//
// It must not know about nodes, handles or the executor, nor mutate a model: a model package
// asks Apply for new tensors and keeps its base weights unchanged, so removing a LoRA restores
// the base exactly. Unsupported adapters on a mapped module (DoRA dora_scale, LoCon lora_mid,
// reshape_weight, LoHa, LoKr, GLoRA, OFT) are errors, never silently skipped.
//
// Known difference: ComfyUI rounds patched FP8 weights stochastically (seeded by the key);
// Apply rounds them to nearest even.
package lora
