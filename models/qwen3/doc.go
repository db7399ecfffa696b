// Package qwen3 is the Qwen3 text encoder of Z-Image: the decoder stack of Qwen3-4B run up to the
// hidden state ComfyUI hands to the diffusion transformer, and ComfyUI's Z-Image text encoding
// end to end (prompt → chat template → token ids → hidden states and attention mask).
//
// It owns: loading the weights (ComfyUI's single-file qwen_3_4b.safetensors, HF names
// "model.layers.N…", a bare Qwen3Model without "model.", a combined checkpoint with an outer
// prefix, or a diffusers text_encoder/ folder of shards with its index), kept memory-mapped in their
// stored dtype (BF16, F16, F32, FP8 storage) and read through the tensor.Backend; the model
// configuration (from tensor shapes via models/detect, overlaid by a sidecar <weights>.config.json
// or, for a folder, the Hugging Face config.json inside it); the forward pass (token embedding;
// per layer RMSNorm → GQA attention with per-head q/k RMSNorm and rotate-half RoPE → residual →
// RMSNorm → SwiGLU MLP → residual; causal attention plus ComfyUI's additive padding mask); and the
// ComfyUI specifics of Z-Image text encoding (ZImageIDs, AttentionMask, Encoder.EncodeZImage).
//
// What the DiT receives. ComfyUI's CLIPTextEncode with a Z-Image ("lumina2") CLIP returns, per
// prompt, the output of decoder layer L−2 (index 34 of 36 for Qwen3-4B; not passed through the
// final norm) for every token of the templated prompt: a float32 tensor [1, n, hidden] with n the
// number of token ids. Nothing is padded (no max length, min length 1) and nothing is trimmed:
// rows whose attention-mask entry is 0 are kept in the tensor. Beside it ComfyUI stores
// "attention_mask" [1, n] (1 = valid), which Lumina2.extra_conds turns into num_tokens
// = max(1, sum(mask)) and, only when some entry is 0, an attention_mask condition; the Z-Image
// NextDiT ignores both (patchify_and_embed sets cap_mask = None), so the DiT's caption input is
// exactly Encoding.Hidden, all n rows. A mask entry is 0 only when the prompt itself contains the
// pad token "<|endoftext|>": ComfyUI masks that token and every token after it (the template's
// closing tokens included) as keys in the encoder's attention, and still returns their rows.
//
// Arithmetic is float32 with weights converted from their stored dtype tile by tile, which is
// what ComfyUI does too (its text encoder runs on float32 embeddings with manual-cast weights).
//
// LoRA on the text encoder (LoraLoader's CLIP half): Encoder.WithPatches returns a view whose
// patched weights are new tensors (models/lora's arithmetic) and whose other weights are shared;
// Encoder.LoRAKeyMap is ComfyUI's key map for the "qwen3_4b" CLIP.
//
// It must not know about nodes, graphs, HTTP or the CLI, nor download anything. An Encoder is
// immutable after loading and safe for concurrent use; tensors it returns belong to the caller,
// who hands them back with the backend's Free.
package qwen3
