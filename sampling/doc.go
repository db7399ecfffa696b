// Package sampling runs ComfyUI's flow-matching sampling loop on host float32 latents, number
// for number: the ModelSamplingDiscreteFlow sigma table (ModelSamplingAuraFlow / SD3 shift
// formula), ComfyUI's schedulers (simple, sgm_uniform, karras, exponential, ddim_uniform, beta,
// normal, linear_quadratic, kl_optimal), KSampler's denoise rule and KSamplerAdvanced's
// start/end step and leftover-noise rules (with the discard-penultimate-sigma rule of dpm_2,
// dpm_2_ancestral and uni_pc), the samplers of ComfyUI's KSampler list euler, euler_cfg_pp,
// euler_ancestral, euler_ancestral_cfg_pp, heun, heunpp2, dpm_2, dpm_2_ancestral, lms,
// dpmpp_2s_ancestral, dpmpp_sde, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m_sde, lcm, ipndm, ipndm_v,
// deis, res_multistep, res_multistep_ancestral, gradient_estimation, ddim, uni_pc and
// uni_pc_bh2 (each on ComfyUI's path for a CONST model, e.g. the _RF ancestral variants),
// classifier-free guidance (with the unconditional prediction for the CFG++ samplers), the
// CONST noise scaling, the Flux latent format, the noise of ComfyUI's prepare_noise
// reproduced from torch's CPU generator (MT19937 + torch.randn), and the noise of the SDE
// samplers: ComfyUI's BrownianTreeNoiseSampler (torchsde's BrownianTree, package brownian),
// seeded with the KSampler seed.
//
// It owns: sigma schedules, sampler update formulas, CFG combination, noise generation and the
// latent-space bookkeeping around a sampling run (process_in/out, noise_scaling and its inverse).
//
// It must not know a model's internals: the diffusion model is a Denoiser that receives
// (x, sigma, step) and returns the denoised estimate; how it embeds sigma, patches RoPE or
// batches conditionings is the model's business. It must not depend on the tensor package,
// on nodes, on the executor or on files; latents are plain []float32 with a shape.
//
// Float arithmetic follows the order of PyTorch's float32 operations in ComfyUI's code (0-dim
// float32 tensors for per-step coefficients, element-wise float32 updates, and the fused
// multiply-adds of torch's x86-64 AVX2 kernels where they matter), so that the sigma table, the
// table-based schedules, torch.randn and the Brownian-tree noise are bit-identical to ComfyUI
// running on such a CPU and the samplers stay within a float32 ulp or two of it (torch takes
// log/exp/expm1 of the per-step coefficients from SLEEF, this package correctly rounded; the
// logit and sigmoid of the SDE samplers' half-log-SNR time, which torch computes with glibc's
// logf and expf, are glibc's, so that the sigmas at which the Brownian tree is queried are
// ComfyUI's bit for bit).
package sampling
