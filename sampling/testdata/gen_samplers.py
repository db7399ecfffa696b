#!/usr/bin/python3
"""Generate testdata/samplers.json: ComfyUI's samplers run on a closed-form toy model.

Run with a Python that has torch and numpy (Debian's python3-torch 1.13 and numpy 1.24 were
used; scipy, torchsde, trampoline and tqdm are not needed):

    /usr/bin/python3 sampling/testdata/gen_samplers.py [COMFYUI_GIT_DIR [TORCHSDE_GIT_DIR]]

COMFYUI_GIT_DIR and TORCHSDE_GIT_DIR are (bare) git clones of ComfyUI and
google-research/torchsde (defaults: the mirrors under /work/.mirror). The upstream code is read from their HEAD with
`git show` at run time and executed as it is (nothing of either project is stored here):
torchsde's BrownianTree through torchsde_loader.py (next to this script), from ComfyUI
comfy/model_sampling.py and comfy/latent_formats.py (whole files),
comfy/extra_samplers/uni_pc.py and comfy/k_diffusion/deis.py (whole files),
comfy/k_diffusion/sampling.py (the samplers tested and their helpers, with
BatchedBrownianTree and BrownianTreeNoiseSampler, AST-extracted),
comfy/samplers.py (KSampler, KSAMPLER, sampler_object, the schedulers, sampling_function,
cfg_function), comfy/sample.py (prepare_noise) and model_patcher's
set_model_options_post_cfg_function.

Substitutions:
  * tqdm's trange is range.
  * scipy.integrate.quad (lms coefficients) is an 8-point Gauss-Legendre rule: the integrand is
    a polynomial of degree <= 3, which that rule integrates exactly (quad's 21-point
    Gauss-Kronrod rule is exact for it too), so both give the exact integral up to rounding.
  * torchsde's `trampoline` dependency is the stand-in of torchsde_loader.py.
  * The model is a closed-form function of x and sigma (toy_model below; the Go test computes
    the same float32 operations), called through ComfyUI's sampling_function with one call per
    conditioning (sampler_calc_cond_batch_function hook).

Every sampler runs through sampler_object as ComfyUI's KSampler runs it: the SDE samplers
(dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde) build their own BrownianTreeNoiseSampler from the seed,
and have extra cases with seeds of 2^32 and above and batch-2 latents.

Each case records the KSampler sigmas (with the discard-penultimate rule), the final latent
(after the latent format's process_out) and the denoised estimate of every callback, as
base64 little-endian float32, and for the SDE samplers the float32 bit patterns of the
Brownian tree's sigma_min and sigma_max and of every (sigma, sigma_next) its noise sampler gets.
"""
import ast
import base64
import json
import math
import os
import struct
import subprocess
import sys
import types
from functools import partial
from typing import Callable, NamedTuple

import numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GIT = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/psy-repos-python+ComfyUI/repo"
sys.dont_write_bytecode = True  # no __pycache__ next to the test data
import torchsde_loader  # noqa: E402

torchsde = torchsde_loader.load(sys.argv[2] if len(sys.argv) > 2 else torchsde_loader.DEFAULT_GIT)


def upstream(path):
    return subprocess.run(["git", "--git-dir", GIT, "show", "HEAD:" + path], check=True, capture_output=True,
                          text=True).stdout


def extract(src, names):
    tree = ast.parse(src)
    parts, found = [], set()
    for node in tree.body:
        name = None
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        if name in names:
            parts.append(ast.get_source_segment(src, node))
            found.add(name)
    missing = set(names) - found
    if missing:
        raise SystemExit("not found upstream: %s" % sorted(missing))
    return "\n\n".join(parts)


def module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def run_file(name, path, **attrs):
    m = module(name, **attrs)
    exec(compile(upstream(path), path, "exec"), m.__dict__)
    return m


# --- stand-ins for the imports the upstream files make ------------------------------------------
def trange(n, disable=None):
    return range(n)


module("tqdm")
module("tqdm.auto", trange=trange, tqdm=None)

comfy = module("comfy")
for sub in ["ldm", "ldm.modules", "ldm.modules.diffusionmodules"]:
    module("comfy." + sub)
module("comfy.ldm.modules.diffusionmodules.util", make_beta_schedule=None)
comfy.nested_tensor = module("comfy.nested_tensor")
mp = module("comfy.model_patcher")
exec(compile(extract(upstream("comfy/model_patcher.py"), ["set_model_options_post_cfg_function"]),
             "model_patcher.py", "exec"), mp.__dict__)
comfy.model_patcher = mp
ms_mod = run_file("comfy.model_sampling", "comfy/model_sampling.py")
comfy.model_sampling = ms_mod
lf_mod = run_file("comfy.latent_formats", "comfy/latent_formats.py")
uni_pc = run_file("comfy.extra_samplers.uni_pc", "comfy/extra_samplers/uni_pc.py")
deis = run_file("comfy.k_diffusion.deis", "comfy/k_diffusion/deis.py")

GL_X, GL_W = numpy.polynomial.legendre.leggauss(8)


def quad(fn, a, b, epsrel=None):
    """Gauss-Legendre stand-in for scipy.integrate.quad, exact for polynomials of degree <= 15."""
    a, b = float(a), float(b)  # quad takes the limits as doubles
    half, mid = (b - a) / 2, (a + b) / 2
    return (half * sum(w * fn(mid + half * x) for x, w in zip(GL_X, GL_W)), 0.0)


kd = module("k_diffusion_sampling", torch=torch, math=math, partial=partial, comfy=comfy, trange=trange,
            torchsde=torchsde,
            integrate=types.SimpleNamespace(quad=quad), deis=deis,
            utils=types.SimpleNamespace(append_dims=lambda x, d: x[(...,) + (None,) * (d - x.ndim)]))
KD_NAMES = ["append_zero", "get_sigmas_karras", "get_sigmas_exponential", "to_d", "get_ancestral_step",
            "default_noise_sampler", "BatchedBrownianTree", "BrownianTreeNoiseSampler", "sigma_to_half_log_snr", "half_log_snr_to_sigma", "offset_first_sigma_for_snr",
            "sample_euler", "sample_euler_ancestral", "sample_euler_ancestral_RF", "sample_heun",
            "sample_dpm_2", "sample_dpm_2_ancestral", "sample_dpm_2_ancestral_RF", "linear_multistep_coeff",
            "sample_lms", "sample_dpmpp_2s_ancestral", "sample_dpmpp_2s_ancestral_RF", "sample_dpmpp_sde",
            "sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde", "sample_lcm", "sample_heunpp2", "sample_ipndm",
            "sample_ipndm_v", "sample_deis", "sample_euler_ancestral_cfg_pp", "sample_euler_cfg_pp",
            "sample_gradient_estimation"]
exec(compile(extract(upstream("comfy/k_diffusion/sampling.py"), KD_NAMES), "k_sampling.py", "exec"), kd.__dict__)

sm = module("comfy_samplers", torch=torch, math=math, numpy=numpy, partial=partial, NamedTuple=NamedTuple,
            Callable=Callable, k_diffusion_sampling=kd, comfy=comfy, uni_pc=uni_pc, scipy=None,
            logging=types.SimpleNamespace(error=print, warning=print), detail=lambda *a, **k: None)
SM_NAMES = ["cfg_function", "sampling_function", "KSamplerX0Inpaint", "simple_scheduler", "ddim_scheduler",
            "normal_scheduler", "beta_scheduler", "linear_quadratic_schedule", "kl_optimal_scheduler",
            "Sampler", "KSAMPLER_NAMES", "KSAMPLER", "ksampler", "SAMPLER_NAMES", "SchedulerHandler",
            "SCHEDULER_HANDLERS", "SCHEDULER_NAMES", "calculate_sigmas", "KSampler", "sampler_object"]
exec(compile(extract(upstream("comfy/samplers.py"), SM_NAMES), "samplers.py", "exec"), sm.__dict__)

sample_mod = module("comfy_sample", torch=torch, np=numpy, comfy=comfy)
exec(compile(extract(upstream("comfy/sample.py"), ["prepare_noise_inner", "prepare_noise"]), "sample.py", "exec"),
     sample_mod.__dict__)


def flow_sampling(shift, multiplier):
    class ModelSamplingAdvanced(ms_mod.ModelSamplingDiscreteFlow, ms_mod.CONST):
        pass
    m = ModelSamplingAdvanced(None)
    m.set_parameters(shift=shift, multiplier=multiplier)
    return m


class Patcher:
    def __init__(self, ms):
        self.ms = ms
        self.model = types.SimpleNamespace()

    def get_model_object(self, name):
        assert name == "model_sampling"
        return self.ms


# --- the toy model ----------------------------------------------------------------------------------------
def bias(channels, offset):
    return torch.tensor([((c + offset) % 5) * 0.1 - 0.2 for c in range(channels)], dtype=torch.float32)[:, None, None]


def toy_model(kind, x, sigma):
    """Closed form in float32: x·(a − b·σ)/(1 + c·x·x) + bias_c·(1 − σ), per conditioning."""
    s = sigma.reshape(-1)[0]
    assert torch.all(sigma == s)
    if kind == "pos":
        a, b, c, off = 0.5, 0.3, 0.1, 0
    else:
        a, b, c, off = 0.4, 0.2, 0.05, 2
    return x * (a - b * s) / (1 + c * x * x) + bias(x.shape[1], off) * (1 - s)


class Wrap:
    """The CFGGuider as KSAMPLER sees it: model_wrap(x, sigma, model_options, seed) -> denoised."""

    def __init__(self, ms, cfg):
        self.inner_model = types.SimpleNamespace(model_sampling=ms, inner_model=None)
        self.inner_model.inner_model = self.inner_model
        self.model_patcher = Patcher(ms)
        self.cfg = cfg
        self.calls = {"pos": 0, "neg": 0}

    def __call__(self, x, sigma, model_options={}, seed=None):
        def batch(args):  # calc_cond_batch's result for one cond each (None -> zeros, as upstream)
            out = []
            for c in args["conds"]:
                if c is None:
                    out.append(torch.zeros_like(args["input"]))
                    continue
                self.calls[c] += 1
                out.append(toy_model(c, args["input"], args["sigma"]))
            return out
        opts = dict(model_options)
        opts["sampler_calc_cond_batch_function"] = batch
        return sm.sampling_function(self.inner_model, x, sigma, "neg", "pos", self.cfg, model_options=opts, seed=seed)


def sample_chain(ms, fmt, sampler, sigmas, noise, latent, cfg, seed):
    """CFGGuider.inner_sample glue around KSAMPLER.sample."""
    if torch.count_nonzero(latent) > 0:
        latent = fmt.process_in(latent)
    cbs = []
    obj = sm.sampler_object(sampler)
    wrap = Wrap(ms, cfg)
    samples = obj.sample(wrap, sigmas, {"model_options": {}, "seed": seed},
                         lambda i, x0, x, total: cbs.append((i, total, x0.clone())), noise, latent)
    return fmt.process_out(samples.to(torch.float32)), cbs, wrap.calls


def b64(t):
    return base64.b64encode(t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()).decode()


def f32bits(v):
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


class RecordingTreeNoiseSampler(kd.BrownianTreeNoiseSampler):
    """ComfyUI's BrownianTreeNoiseSampler, recording its float32 bounds and the intervals asked."""
    log = None

    def __init__(self, x, sigma_min, sigma_max, **kwargs):
        super().__init__(x, sigma_min, sigma_max, **kwargs)
        RecordingTreeNoiseSampler.log = {"tree": [f32bits(sigma_min), f32bits(sigma_max)], "calls": []}

    def __call__(self, sigma, sigma_next):
        RecordingTreeNoiseSampler.log["calls"].append([f32bits(sigma), f32bits(sigma_next)])
        return super().__call__(sigma, sigma_next)


# The SDE samplers look the class up in their module at call time.
kd.BrownianTreeNoiseSampler = RecordingTreeNoiseSampler


SAMPLERS = ["euler_cfg_pp", "euler_ancestral_cfg_pp", "heunpp2", "dpm_2", "dpm_2_ancestral", "lms",
            "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "lcm", "ipndm", "ipndm_v", "deis",
            "gradient_estimation", "uni_pc", "uni_pc_bh2"]
SHAPE = [1, 16, 2, 2]
# scheduler, steps, denoise, cfg, seed, img2img, shape
CASES = [("simple", 4, 1.0, 1.0, 11, False, SHAPE), ("normal", 9, 1.0, 2.5, 12, False, SHAPE),
         ("simple", 6, 0.6, 1.0, 13, True, SHAPE), ("simple", 2, 1.0, 1.0, 14, False, SHAPE)]
# More for the SDE samplers' Brownian tree: 64-bit seeds, batch-2 latents, longer schedules.
SDE_CASES = {
    "dpmpp_sde": [("exponential", 6, 1.0, 1.0, 2 ** 63 + 11, False, [2, 16, 2, 3]),
                  ("simple", 20, 1.0, 1.0, 2 ** 32, False, SHAPE)],
    "dpmpp_2m_sde": [("simple", 5, 1.0, 1.0, 2 ** 40 + 7, True, [2, 16, 2, 2]),
                     ("karras", 12, 0.8, 2.0, 2 ** 64 - 1, True, [1, 16, 3, 2])],
    "dpmpp_3m_sde": [("sgm_uniform", 8, 1.0, 3.0, 2 ** 33 + 5, False, [2, 16, 2, 3]),
                     ("normal", 20, 1.0, 1.0, 0, False, SHAPE)],
}

ms3 = flow_sampling(3.0, 1.0)
flux = lf_mod.Flux()
cases = []
for k, sampler in enumerate(SAMPLERS):
    for m, (scheduler, steps, denoise, cfg, seed, img2img, shape) in enumerate(CASES + SDE_CASES.get(sampler, [])):
        sigmas = sm.KSampler(Patcher(ms3), steps, "cpu", sampler=sampler, scheduler=scheduler, denoise=denoise).sigmas
        sigma_list = [float(v) for v in sigmas]
        g = torch.Generator().manual_seed(100 * k + m)
        latent = (torch.rand(shape, generator=g) * 2 - 1) if img2img else torch.zeros(shape)
        noise = sample_mod.prepare_noise(latent, seed, None)
        RecordingTreeNoiseSampler.log = None
        out, cbs, calls = sample_chain(ms3, flux, sampler, sigmas.clone(), noise, latent, cfg, seed)
        cases.append({"sampler": sampler, "scheduler": scheduler, "steps": steps, "denoise": denoise, "cfg": cfg,
                      "seed": seed, "shape": shape, "latent": b64(latent) if img2img else None,
                      "sigmas": sigma_list, "output": b64(out), "calls": calls,
                      "callbacks": [{"step": i, "total": total, "denoised": b64(x0)} for i, total, x0 in cbs],
                      "brownian": RecordingTreeNoiseSampler.log})

ref = {"generator": {"torch": torch.__version__, "numpy": numpy.__version__,
                     "comfyui_head": torchsde_loader.head(GIT), "torchsde_head": torchsde.commit},
       "cases": cases}
with open(os.path.join(HERE, "samplers.json"), "w") as f:
    json.dump(ref, f, separators=(",", ":"))
print("wrote %d cases" % len(cases))
