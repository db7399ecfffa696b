// Package dype is the mathematics of DyPE (Dynamic Position Extrapolation) for Z-Image's
// three-axis RoPE: the config, the schedules, the per-axis RoPE frequencies and amplitudes, the
// token positions of the two position modes, and the noise-schedule shift.
//
// What it owns: pure numbers. It must not depend on tensors, models, nodes or I/O beyond
// parsing its own config; the model package turns what it returns into rotation tables on a
// backend. Every function follows the upstream Python code named in the spec
// (shared/docs/dype.md): llm-dit-experiments (LD) for the generic math and the config, and
// ComfyUI-DyPE v2.3.0 (CD) for the ComfyUI Z-Image path. Float32 arithmetic is reproduced
// where upstream uses it (token spans, ramp masks, comfy positions).
//
// # Config
//
// [Config] holds enabled, method (vision_yarn | yarn | ntk | base), dype_scale (λs),
// dype_exponent (λt), dype_start_sigma (clamped to [0.001, 1]), base_shift, max_shift,
// base_resolution, anisotropic and mode (llm_dit | comfy). [DefaultConfig] is LD's DyPEConfig()
// (disabled, llm_dit); [ComfyNodeDefaults] is CD's node (enabled, comfy). [FromMap] has LD's
// from_dict semantics (missing keys take defaults, unknown keys are ignored); [ParseJSON],
// [ParseTOML], [Config.MarshalJSON] and [Config.EncodeTOML] round-trip, and Config implements
// json.Unmarshaler and toml.Unmarshaler so it can be embedded in larger documents.
//
// # Building blocks (upstream names in brackets)
//
// [ComputeDypeShift] (compute_dype_shift), [KT] (compute_k_t), [MScale] (compute_mscale),
// [TNorm], [BlendToFullScale], [AxisTokenSpan] (axis_token_span, float32),
// [FindCorrectionFactor], [FindCorrectionRange], [LinearRampMask] (float32), [FindNewbaseNTK],
// and the three 1-D embedders returning the per-lane angular frequency ω_k and the amplitude:
// [NTKFreqs] (get_1d_ntk_pos_embed), [VisionYarnFreqs] (get_1d_vision_yarn_pos_embed) and
// [YarnFreqs] (get_1d_yarn_pos_embed, incl. the aggressive mscale). [Table] turns ω, mscale and
// positions into float32 cos/sin, value = mscale·exp(i·p·ω). [PosEmbed.Components] is LD's
// multi-axis get_components (axis 0 never modified; disabled = static NTK, as upstream).
// [ResizeRopeGrid] is the PI→integer position blend (_resize_rope_grid).
//
// # What the Z-Image model consumes
//
// [New] takes the config, the model's RoPE ([RopeSpec]: θ, axes dims, axes lens, token padding;
// [ZImageRope] gives the real model's 256, (32,48,48), (1536,512,512), 32) and the image
// [Geometry], and returns a [Rope] holding the per-step state σ (starts at 1.0, like upstream;
// [Rope.SetSigma]). [Rope.Step] (or [Rope.StepAt]) gives a [Step]: for the image call and for the
// caption call, per axis an [Axis] with the per-lane angular frequency Omega (ω_k, Dims/2
// values), the amplitude MScale and, for the spatial image axes, the distinct token Positions
// (rows for axis 1, columns for axis 2). [Axis.Table] returns the float32 cos/sin of a list of
// positions; [Step.CaptionIDs] / [Step.ImageIDs] give the token ids the model attends with, and
// [Step.CaptionTable] / [Step.ImageTable] the float32 cos/sin tables (N rows × Lanes) for a list
// of token ids, lanes [axis0 | axis1 | axis2].
//
// Two position modes:
//
//   - [ModeLLMDiT]: integer ids as in diffusers (caption (1+i,0,0); image (L_c+1,h,w); image
//     padding (0,0,0)); the caption call stays vanilla and the image call uses LD's
//     get_components on the image ids. When both axes fit the base grid ((R/8)/2 tokens) every
//     method returns exactly the plain Z-Image RoPE.
//   - [ModeComfy]: ComfyUI-DyPE v2.3.0's Z-Image path: the image grid is stretched by
//     δ = 2R/max(requested width, height) and blended towards integer positions as σ falls
//     (float32, step by step as upstream), the scale is the hint max(1, longest side / R), the
//     YaRN base length is the model's axes_lens (512), the mscale coefficient is 0.05, caption and
//     image tokens share one call, and the schedule shift μ is [ComfyShift]. ComfyUI passes σ
//     through a float32 tensor, so a comfy Step rounds σ to float32 first.
//
// A Rope is not safe for concurrent SetSigma; Steps are immutable values.
package dype
