#!/usr/bin/python3
"""Generate the reference data of the sampling package's tests from ComfyUI's own code.

Run with a Python that has torch (Debian's python3-torch 1.13 was used) and mpmath:

    /usr/bin/python3 sampling/testdata/gen_reference.py [COMFYUI_GIT_DIR [TORCHSDE_GIT_DIR]]

COMFYUI_GIT_DIR and TORCHSDE_GIT_DIR are (bare) git clones of ComfyUI and
google-research/torchsde (defaults: the mirrors under /work/.mirror); torchsde's BrownianTree
is imported from a temporary copy by torchsde_loader.py (next to this script), so that
dpmpp_2m_sde runs with ComfyUI's own BrownianTreeNoiseSampler. The named ComfyUI definitions
are read from its HEAD with `git show` and executed as they are (AST-extracted, to avoid the
heavy imports of their modules): model_sampling.py (whole file), latent_formats.py (whole
file), samplers.py (schedulers, calculate_sigmas, cfg_function, sampling_function,
KSamplerX0Inpaint, Sampler, KSAMPLER, ksampler, KSampler), k_diffusion/sampling.py (schedules,
the samplers tested, BatchedBrownianTree, BrownianTreeNoiseSampler), sample.py (prepare_noise). Substitutions: scipy.stats.beta.ppf is computed with mpmath (scipy
is not installed here); tqdm's trange is range; the per-cond model batching of
calc_cond_batch is replaced (through ComfyUI's own sampler_calc_cond_batch_function hook) by
one call per conditioning; the model is a small analytic function whose every call is recorded
so that the Go tests can replay it. CFGGuider.inner_sample's three lines of glue
(process_latent_in when the latent is non-zero, KSAMPLER.sample, process_latent_out) are
restated in sample_chain below.

Outputs (next to this script): reference.json (cases, schedules, exact float32 values as
decimal doubles) and reference.safetensors (F32 tensors named in reference.json).
"""
import ast
import json
import math
import os
import struct
import subprocess
import sys
import types
from functools import partial
from typing import Callable, NamedTuple

import mpmath
import numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GIT = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/psy-repos-python+ComfyUI/repo"
sys.dont_write_bytecode = True  # no __pycache__ next to the test data
import torchsde_loader  # noqa: E402

torchsde = torchsde_loader.load(sys.argv[2] if len(sys.argv) > 2 else torchsde_loader.DEFAULT_GIT)


def upstream(path):
    return subprocess.run(["git", "-C", GIT, "show", "HEAD:" + path], check=True, capture_output=True, text=True).stdout


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


# --- fake package skeleton so that whole upstream files can be executed -----------------------
comfy = module("comfy")
for sub in ["ldm", "ldm.modules", "ldm.modules.diffusionmodules"]:
    module("comfy." + sub)
module("comfy.ldm.modules.diffusionmodules.util", make_beta_schedule=None)
comfy.nested_tensor = module("comfy.nested_tensor")
comfy.model_patcher = module("comfy.model_patcher")

ms_mod = module("comfy.model_sampling")
exec(compile(upstream("comfy/model_sampling.py"), "model_sampling.py", "exec"), ms_mod.__dict__)
comfy.model_sampling = ms_mod
lf_mod = module("comfy.latent_formats")
exec(compile(upstream("comfy/latent_formats.py"), "latent_formats.py", "exec"), lf_mod.__dict__)


def beta_ppf(ts, a, b):
    """scipy.stats.beta.ppf by bisection on mpmath's regularized incomplete beta."""
    mpmath.mp.dps = 40
    out = []
    for p in numpy.atleast_1d(ts):
        p = float(p)
        if p <= 0 or p >= 1:
            out.append(min(max(p, 0.0), 1.0))
            continue
        lo, hi = mpmath.mpf(0), mpmath.mpf(1)
        for _ in range(140):
            mid = (lo + hi) / 2
            if mpmath.betainc(a, b, 0, mid, regularized=True) < p:
                lo = mid
            else:
                hi = mid
        out.append(float((lo + hi) / 2))
    return numpy.array(out)


scipy = types.SimpleNamespace(stats=types.SimpleNamespace(beta=types.SimpleNamespace(ppf=beta_ppf)))

kd = module("k_diffusion_sampling", torch=torch, math=math, partial=partial, comfy=comfy, torchsde=torchsde,
            trange=lambda n, disable=None: range(n),
            utils=types.SimpleNamespace(append_dims=lambda x, d: x[(...,) + (None,) * (d - x.ndim)]))
KD_NAMES = ["append_zero", "get_sigmas_karras", "get_sigmas_exponential", "to_d", "get_ancestral_step",
            "default_noise_sampler", "BatchedBrownianTree", "BrownianTreeNoiseSampler", "sample_euler",
            "sample_euler_ancestral", "sample_euler_ancestral_RF",
            "sample_heun", "sample_dpmpp_2m", "res_multistep", "sample_res_multistep",
            "sample_res_multistep_ancestral", "sigma_to_half_log_snr", "offset_first_sigma_for_snr",
            "sample_dpmpp_2m_sde"]
exec(compile(extract(upstream("comfy/k_diffusion/sampling.py"), KD_NAMES), "k_sampling.py", "exec"), kd.__dict__)

sm = module("comfy_samplers", torch=torch, math=math, numpy=numpy, scipy=scipy, partial=partial,
            NamedTuple=NamedTuple, Callable=Callable, k_diffusion_sampling=kd, comfy=comfy,
            logging=types.SimpleNamespace(error=print, warning=print), detail=lambda *a, **k: None)
SM_NAMES = ["cfg_function", "sampling_function", "KSamplerX0Inpaint", "simple_scheduler", "ddim_scheduler",
            "normal_scheduler", "beta_scheduler", "linear_quadratic_schedule", "kl_optimal_scheduler",
            "Sampler", "KSAMPLER_NAMES", "KSAMPLER", "ksampler", "SAMPLER_NAMES", "SchedulerHandler",
            "SCHEDULER_HANDLERS", "SCHEDULER_NAMES", "calculate_sigmas", "KSampler", "sampler_object"]
sm.uni_pc = None
exec(compile(extract(upstream("comfy/samplers.py"), SM_NAMES), "samplers.py", "exec"), sm.__dict__)
SAMPLER_OBJECT = sm.sampler_object

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


def ksampler_sigmas(ms, sampler, scheduler, steps, denoise, start, last, force_full):
    """KSampler(...).sigmas and KSampler.sample's truncation, by running them with sample() captured."""
    model = Patcher(ms)
    ks = sm.KSampler(model, steps, "cpu", sampler=sampler, scheduler=scheduler, denoise=denoise)
    captured = {}

    def capture(model, noise, positive, negative, cfg, device, sampler, sigmas, *a, **k):
        captured["sigmas"] = sigmas.clone()
        return "sampled"

    sm.sample, sm.sampler_object = capture, (lambda name: name)
    r = ks.sample(torch.zeros(1), None, None, 1.0, latent_image=torch.ones(1), start_step=start, last_step=last,
                  force_full_denoise=force_full)
    sm.sampler_object = SAMPLER_OBJECT
    if r == "sampled":
        return captured["sigmas"], False
    return None, True


# --- analytic conditioned "model": every call is recorded for replay -------------------------------------
class Recorder:
    def __init__(self, shape, seed):
        g = torch.Generator().manual_seed(seed)
        self.bias = {"pos": torch.rand(shape[1:], generator=g) - 0.5, "neg": torch.rand(shape[1:], generator=g) - 0.5}
        self.calls = []

    def __call__(self, kind, x, sigma):
        s = float(sigma.reshape(-1)[0])
        assert torch.all(sigma == sigma.reshape(-1)[0])
        if kind == "pos":
            out = torch.tanh(x * 0.9) * (1.0 - 0.5 * s) + self.bias["pos"]
        else:
            out = 0.7 * torch.tanh(x) * (1.0 - s) + self.bias["neg"]
        out = out.to(torch.float32)
        self.calls.append((kind, x.clone(), s, out.clone()))
        return out


class Wrap:
    """The CFGGuider as KSAMPLER sees it: model_wrap(x, sigma, model_options, seed) -> denoised."""

    def __init__(self, ms, rec, cfg):
        self.inner_model = types.SimpleNamespace(model_sampling=ms, inner_model=None)
        self.inner_model.inner_model = self.inner_model
        self.model_patcher = Patcher(ms)
        self.rec, self.cfg = rec, cfg

    def __call__(self, x, sigma, model_options={}, seed=None):
        def batch(args):  # calc_cond_batch's result for one cond each (None -> zeros, as upstream)
            return [self.rec(c, args["input"], args["sigma"]) if c is not None else torch.zeros_like(args["input"])
                    for c in args["conds"]]
        opts = dict(model_options)
        opts["sampler_calc_cond_batch_function"] = batch
        return sm.sampling_function(self.inner_model, x, sigma, "neg", "pos", self.cfg, model_options=opts, seed=seed)


def sample_chain(ms, fmt, sampler, sigmas, noise, latent, rec, cfg, seed):
    """CFGGuider.inner_sample glue around KSAMPLER.sample."""
    if torch.count_nonzero(latent) > 0:
        latent = fmt.process_in(latent)
    cbs = []
    obj = sm.sampler_object(sampler)
    samples = obj.sample(Wrap(ms, rec, cfg), sigmas, {"model_options": {}, "seed": seed},
                                          lambda i, x0, x, total: cbs.append((i, total, x0.clone())),
                                          noise, latent)
    return fmt.process_out(samples.to(torch.float32)), cbs


tensors = {}


def put(name, t):
    tensors[name] = t.detach().to(torch.float32).contiguous().numpy()
    return name


def f32list(t):
    return [float(v) for v in t.to(torch.float32).reshape(-1)]


ref = {"generator": {"torch": torch.__version__, "comfyui_head": subprocess.run(
    ["git", "-C", GIT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}}

# --- noise ----------------------------------------------------------------------------------------------------
noise_cases = []
for i, (seed, sizes) in enumerate([
        (0, [1]), (1, [2]), (2, [3, 5, 1, 20]), (3, [15]), (4, [16]), (5, [17]), (6, [31, 32, 33]),
        (7, [7, 7, 16, 9]), (2**32 + 5, [40]), (2**64 - 1, [100]), (123456789, [4097]),
        (99, [8, 1000, 3])]):
    g = torch.manual_seed(seed)
    outs = []
    for j, n in enumerate(sizes):
        outs.append(put("noise/%d/%d" % (i, j), torch.randn([n], dtype=torch.float32, generator=g)))
    noise_cases.append({"seed": seed, "sizes": sizes, "tensors": outs})
ref["noise"] = noise_cases

prep = []
for i, (shape, seed, inds) in enumerate([([2, 16, 3, 5], 11, None), ([3, 4, 2, 3], 12, [2, 0, 2]),
                                          ([2, 16, 4, 4], 13, [1, 3]), ([1, 1, 1, 5], 14, None)]):
    lat = torch.zeros(shape)
    t = sample_mod.prepare_noise(lat, seed, inds)
    prep.append({"shape": shape, "seed": seed, "batch_index": inds, "tensor": put("prepare_noise/%d" % i, t)})
ref["prepare_noise"] = prep

# --- schedules ------------------------------------------------------------------------------------------------
sched = []
for shift, mult in [(3.0, 1.0), (1.73, 1.0), (1.0, 1.0), (6.0, 1000.0), (0.5, 1.0)]:
    ms = flow_sampling(shift, mult)
    entry = {"shift": shift, "multiplier": mult, "table": f32list(ms.sigmas), "schedules": []}
    steps_list = [1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 20, 25, 33, 50]
    for name in sm.SCHEDULER_NAMES:
        for steps in steps_list:
            if name == "kl_optimal" and steps == 1:
                continue
            if name == "beta" and steps > 25 and shift != 3.0:
                continue
            s = sm.calculate_sigmas(ms, name, steps)
            entry["schedules"].append({"scheduler": name, "steps": steps, "sigmas": f32list(s)})
    sched.append(entry)
ref["schedules"] = sched

ks = []
ms3 = flow_sampling(3.0, 1.0)
for scheduler in ["simple", "normal", "beta", "karras", "ddim_uniform", "sgm_uniform"]:
    for steps, denoise in [(9, 0.5), (8, 0.33), (5, 0.75), (4, 0.9999), (4, 0.99), (3, 0.0), (6, 1.0)]:
        s, _ = ksampler_sigmas(ms3, "euler", scheduler, steps, denoise, None, None, False)
        ks.append({"scheduler": scheduler, "steps": steps, "denoise": denoise,
                   "sigmas": None if s is None else f32list(s)})
for steps, start, last, full in [(10, 0, 10000, True), (10, 3, 6, True), (10, 3, 6, False), (10, 0, 4, False),
                                 (10, 9, 10000, True), (10, 10, 10000, True), (10, 12, 10000, True),
                                 (10, 5, 5, True), (10, 0, 0, True), (10, 2, 1, False)]:
    s, skip = ksampler_sigmas(ms3, "euler", "simple", steps, 1.0, start, last, full)
    ks.append({"scheduler": "simple", "steps": steps, "denoise": 1.0, "start": start, "end": last,
               "leftover_noise": not full, "skip": skip, "sigmas": None if s is None else f32list(s)})
ref["ksampler_sigmas"] = ks

# --- full sampling chains with a recorded model -----------------------------------------------------------------
flux = lf_mod.Flux()
runs = []
chains = [
    # sampler, scheduler, steps, denoise, cfg, seed, shape, img2img, advanced (start, end, leftover, add_noise), batch_index
    ("euler", "simple", 9, 1.0, 1.0, 1234, [1, 16, 3, 4], False, None, None),
    ("euler_ancestral", "simple", 6, 1.0, 1.0, 77, [1, 16, 3, 4], False, None, None),
    ("euler_ancestral", "beta", 5, 0.6, 1.0, 2**40 + 7, [1, 16, 2, 3], True, None, None),
    ("heun", "simple", 5, 1.0, 1.0, 5, [1, 16, 3, 4], False, None, None),
    ("heun", "karras", 4, 1.0, 2.0, 6, [1, 16, 2, 2], False, None, None),
    ("dpmpp_2m", "simple", 8, 1.0, 1.0, 8765, [1, 16, 4, 3], False, None, None),
    ("dpmpp_2m", "exponential", 7, 1.0, 1.0, 31, [1, 16, 2, 3], False, None, None),
    ("res_multistep", "simple", 8, 1.0, 1.0, 4321, [1, 16, 3, 4], False, None, None),
    ("res_multistep", "normal", 6, 0.5, 1.0, 42, [1, 16, 3, 3], True, None, None),
    ("euler", "simple", 4, 1.0, 3.5, 2468, [1, 16, 3, 4], False, None, None),
    ("dpmpp_2m", "sgm_uniform", 6, 1.0, 4.0, 9, [2, 16, 2, 3], False, None, None),
    ("euler", "simple", 9, 0.5, 1.0, 99, [1, 16, 3, 4], True, None, None),
    ("euler", "ddim_uniform", 7, 1.0, 1.0, 3, [1, 16, 2, 3], False, None, None),
    ("res_multistep", "linear_quadratic", 6, 1.0, 1.0, 4, [1, 16, 2, 3], False, None, None),
    ("euler", "kl_optimal", 5, 1.0, 1.0, 12, [1, 16, 2, 3], False, None, None),
    ("euler", "simple", 8, 1.0, 1.0, 555, [1, 16, 3, 4], False, (2, 5, True, True), None),
    ("euler", "simple", 8, 1.0, 1.0, 555, [1, 16, 3, 4], True, (5, 10000, False, False), None),
    ("dpmpp_2m", "simple", 8, 1.0, 1.0, 556, [1, 16, 3, 4], False, (0, 4, False, True), None),
    ("euler", "simple", 8, 1.0, 1.0, 557, [1, 16, 3, 4], True, (9, 10000, False, True), None),
    ("euler", "simple", 3, 1.0, 1.0, 558, [3, 16, 2, 2], False, None, [2, 0, 2]),
    ("res_multistep_ancestral", "simple", 6, 1.0, 1.0, 600, [1, 16, 3, 4], False, None, None),
    ("res_multistep_ancestral", "karras", 5, 0.7, 2.5, 601, [1, 16, 2, 3], True, None, None),
    ("dpmpp_2m_sde", "simple", 6, 1.0, 1.0, 602, [1, 16, 3, 4], False, None, None),
    ("dpmpp_2m_sde", "beta", 5, 0.33, 1.0, 603, [1, 16, 2, 3], True, None, None),
    ("dpmpp_2m_sde", "sgm_uniform", 5, 1.0, 3.0, 604, [1, 16, 2, 3], False, None, None),
    ("ddim", "ddim_uniform", 5, 1.0, 1.0, 605, [1, 16, 2, 3], False, None, None),
]
for k, (sampler, scheduler, steps, denoise, cfg, seed, shape, img2img, adv, inds) in enumerate(chains):
    start = last = None
    full, add_noise = False, True
    if adv is not None:
        start, last, leftover, add_noise = adv
        full = not leftover
    sigmas, skip = ksampler_sigmas(ms3, sampler, scheduler, steps, denoise, start, last, full)
    g = torch.Generator().manual_seed(1000 + k)
    latent = (torch.rand(shape, generator=g) * 2 - 1) if img2img else torch.zeros(shape)
    rec = Recorder(shape, 2000 + k)
    entry = {"sampler": sampler, "scheduler": scheduler, "steps": steps, "denoise": denoise, "cfg": cfg,
             "seed": seed, "shape": shape, "batch_index": inds, "latent": put("run/%d/latent" % k, latent)}
    if adv is not None:
        entry.update({"start": start, "end": last, "leftover_noise": not full, "add_noise": add_noise})
    if skip:
        out, cbs = latent, []
    else:
        noise = sample_mod.prepare_noise(latent, seed, inds) if add_noise else torch.zeros_like(latent)
        out, cbs = sample_chain(ms3, flux, sampler, sigmas, noise, latent, rec, cfg, seed)
    entry["sigmas"] = None if sigmas is None else f32list(sigmas)
    entry["output"] = put("run/%d/output" % k, out)
    entry["calls"] = []
    for j, (kind, x, s, o) in enumerate(rec.calls):
        entry["calls"].append({"cond": kind, "sigma": s, "x": put("run/%d/call/%d/x" % (k, j), x),
                               "out": put("run/%d/call/%d/out" % (k, j), o)})
    entry["callbacks"] = [{"step": i, "total": total, "denoised": put("run/%d/cb/%d" % (k, j), x0)}
                          for j, (i, total, x0) in enumerate(cbs)]
    runs.append(entry)
ref["runs"] = runs


# --- write ----------------------------------------------------------------------------------------------------
def write_safetensors(path, arrays):
    header, offset, blobs = {}, 0, []
    for name in sorted(arrays):
        a = numpy.ascontiguousarray(arrays[name], dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


write_safetensors(os.path.join(HERE, "reference.safetensors"), tensors)
with open(os.path.join(HERE, "reference.json"), "w") as f:
    json.dump(ref, f, separators=(",", ":"))
print("wrote %d tensors, %d schedules sets, %d runs" % (len(tensors), len(sched), len(runs)))
