#!/usr/bin/python3
"""Generate testdata/brownian_tree.json: the noise of ComfyUI's BrownianTreeNoiseSampler.

Run from the module root with a Python that has torch and numpy (Debian's python3-torch 1.13
and numpy 1.24 were used; scipy, tqdm and the trampoline package are not needed):

    /usr/bin/python3 sampling/brownian/testdata/gen.py [TORCHSDE_GIT_DIR [COMFYUI_GIT_DIR]] \
        > sampling/brownian/testdata/brownian_tree.json

The git dirs are (bare) clones of google-research/torchsde and ComfyUI (defaults: the mirrors
under /work/.mirror). Nothing of either project is stored here: at run time the upstream files
are read from HEAD with `git show`; torchsde's _brownian package (with settings.py and types.py)
is written to a temporary directory and imported from there as it is, and from ComfyUI
comfy/model_sampling.py runs whole, comfy/k_diffusion/sampling.py contributes
BatchedBrownianTree, BrownianTreeNoiseSampler, the SDE samplers and their helpers
(AST-extracted), comfy/samplers.py its simple_scheduler.

Substitutions:
  * `trampoline` (a dependency of torchsde) is the small generator trampoline below: a generator
    yields a sub-generator to call it and receives its return value; raising TailCall(gen)
    replaces the running generator by gen.
  * tqdm's trange is range.
  * The model is a closed-form toy (denoised = 0.75 * x); only the sigmas the samplers pass to
    their noise sampler matter here, and those do not depend on the model.

Each case runs a sampler (dpmpp_2m_sde, dpmpp_sde, dpmpp_3m_sde) on a flow schedule
(ModelSamplingDiscreteFlow, shift 3, simple scheduler) with the noise sampler ComfyUI builds
for it (BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed, cpu=True)) wrapped in a
recorder, and stores every call in order: sigma and sigma_next as float32 bit patterns and the
returned noise as the SHA-256 of its little-endian float32 bytes plus its first 8 values (bit
patterns). A few hand-made query sequences (out-of-order, spanning, clamped, reversed,
repeated and sub-resolution queries; a call that makes torchsde recurse forever is recorded as
"error": "RecursionError") follow the same format, and numpy SeedSequence states check the
seed hash.
"""
import ast
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import types
from functools import partial

import numpy
import torch

TORCHSDE_GIT = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/google-research+torchsde/repo"
COMFY_GIT = sys.argv[2] if len(sys.argv) > 2 else "/work/.mirror/psy-repos-python+ComfyUI/repo"


def upstream(git, path):
    return subprocess.run(["git", "--git-dir", git, "show", "HEAD:" + path], check=True, capture_output=True,
                          text=True).stdout


def head(git):
    return subprocess.run(["git", "--git-dir", git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def extract(src, names):
    tree = ast.parse(src)
    parts, found = [], set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            parts.append(ast.get_source_segment(src, node))
            found.add(node.name)
    missing = set(names) - found
    if missing:
        raise SystemExit("not found upstream: %s" % sorted(missing))
    return "\n\n".join(parts)


def module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


# --- trampoline stand-in ---------------------------------------------------------------------------
class TailCall(Exception):
    def __init__(self, call):
        super().__init__()
        self.call = call


def trampoline(gen):
    stack, value = [gen], None
    while stack:
        try:
            sub = stack[-1].send(value)
        except StopIteration as stop:
            stack.pop()
            value = stop.value
            continue
        except TailCall as tail:
            stack[-1] = tail.call
            value = None
            continue
        stack.append(sub)
        value = None
    return value


module("trampoline", TailCall=TailCall, trampoline=trampoline)

# --- torchsde's Brownian package, imported from a temporary copy -----------------------------------
TMP = tempfile.TemporaryDirectory()
for path in ["torchsde/settings.py", "torchsde/types.py", "torchsde/_brownian/__init__.py",
             "torchsde/_brownian/brownian_base.py", "torchsde/_brownian/brownian_interval.py",
             "torchsde/_brownian/derived.py"]:
    dst = os.path.join(TMP.name, path)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as f:
        f.write(upstream(TORCHSDE_GIT, path))
# The package's own __init__ imports the SDE solvers (scipy); only the Brownian part is needed.
torchsde = module("torchsde")
torchsde.__path__ = [os.path.join(TMP.name, "torchsde")]
from torchsde._brownian import BrownianTree  # noqa: E402

torchsde.BrownianTree = BrownianTree

# --- ComfyUI ---------------------------------------------------------------------------------------
comfy = module("comfy")
for sub in ["ldm", "ldm.modules", "ldm.modules.diffusionmodules"]:
    module("comfy." + sub)
module("comfy.ldm.modules.diffusionmodules.util", make_beta_schedule=None)
ms_mod = module("comfy.model_sampling")
exec(compile(upstream(COMFY_GIT, "comfy/model_sampling.py"), "model_sampling.py", "exec"), ms_mod.__dict__)
comfy.model_sampling = ms_mod

kd = module("k_diffusion_sampling", torch=torch, math=math, partial=partial, comfy=comfy, torchsde=torchsde,
            trange=lambda n, disable=None: range(n))
KD_NAMES = ["BatchedBrownianTree", "BrownianTreeNoiseSampler", "get_ancestral_step", "sigma_to_half_log_snr",
            "half_log_snr_to_sigma", "offset_first_sigma_for_snr", "sample_dpmpp_sde", "sample_dpmpp_2m_sde",
            "sample_dpmpp_3m_sde"]
exec(compile(extract(upstream(COMFY_GIT, "comfy/k_diffusion/sampling.py"), KD_NAMES), "k_sampling.py", "exec"),
     kd.__dict__)
sm = module("comfy_samplers", torch=torch, math=math)
exec(compile(extract(upstream(COMFY_GIT, "comfy/samplers.py"), ["simple_scheduler"]), "samplers.py", "exec"),
     sm.__dict__)


def flow_model_sampling(shift):
    class ModelSamplingAdvanced(ms_mod.ModelSamplingDiscreteFlow, ms_mod.CONST):
        pass

    m = ModelSamplingAdvanced(None)
    m.set_parameters(shift=shift)
    return m


class ToyModel:
    """What the k-diffusion samplers need of ComfyUI's model wrapper."""

    def __init__(self, ms):
        patcher = types.SimpleNamespace(get_model_object=lambda name: ms)
        self.inner_model = types.SimpleNamespace(model_patcher=patcher)

    def __call__(self, x, sigma, **kwargs):
        return x * 0.75


class Recorder:
    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, sigma, sigma_next):
        out = self.inner(sigma, sigma_next)
        self.calls.append((sigma, sigma_next, out))
        return out


def f32bits(v):
    return struct.unpack("<I", struct.pack("<f", float(v)))[0]


def record(sigma, sigma_next, out):
    assert out.dtype == torch.float32
    data = out.contiguous().numpy().astype("<f4").tobytes()
    return {"sigma": f32bits(sigma), "sigma_next": f32bits(sigma_next),
            "sha256": hashlib.sha256(data).hexdigest(),
            "head": [f32bits(v) for v in out.flatten()[:8].tolist()]}


SAMPLERS = {"dpmpp_2m_sde": kd.sample_dpmpp_2m_sde, "dpmpp_sde": kd.sample_dpmpp_sde,
            "dpmpp_3m_sde": kd.sample_dpmpp_3m_sde}


def sampler_case(sampler, seed, shape, steps, shift=3.0):
    ms = flow_model_sampling(shift)
    sigmas = sm.simple_scheduler(ms, steps)
    x = torch.ones(shape, dtype=torch.float32)
    # What the samplers do before building their noise sampler.
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    rec = Recorder(kd.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed, cpu=True))
    SAMPLERS[sampler](ToyModel(ms), x, sigmas, extra_args={"seed": seed}, noise_sampler=rec)
    return {"name": "%s seed=%d shape=%s steps=%d shift=%g" % (sampler, seed, list(shape), steps, shift),
            "seed": str(seed), "shape": list(shape),
            "sigma_min": f32bits(sigma_min), "sigma_max": f32bits(sigma_max),
            "calls": [record(*c) for c in rec.calls]}


def query_case(name, seed, shape, sigma_min, sigma_max, queries):
    x = torch.zeros(shape, dtype=torch.float32)
    smin, smax = torch.tensor(sigma_min, dtype=torch.float32), torch.tensor(sigma_max, dtype=torch.float32)
    ns = kd.BrownianTreeNoiseSampler(x, smin, smax, seed=seed, cpu=True)
    calls = []
    for a, b in queries:
        a, b = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
        try:
            calls.append(record(a, b, ns(a, b)))
        except RecursionError:  # torchsde's split never ends for this interval
            calls.append({"sigma": f32bits(a), "sigma_next": f32bits(b), "error": "RecursionError"})
    return {"name": name, "seed": str(seed), "shape": list(shape),
            "sigma_min": f32bits(smin), "sigma_max": f32bits(smax), "calls": calls}


def main():
    cases = []
    for seed in [0, 123456789, 2 ** 63 + 5]:
        for shape in [(1, 16, 4, 4), (2, 16, 3, 5)]:
            for steps in [4, 9]:
                cases.append(sampler_case("dpmpp_2m_sde", seed, shape, steps))
    cases.append(sampler_case("dpmpp_sde", 42, (1, 16, 4, 4), 4))
    cases.append(sampler_case("dpmpp_sde", 2 ** 64 - 1, (2, 16, 3, 5), 9))
    cases.append(sampler_case("dpmpp_3m_sde", 7, (1, 16, 4, 4), 9))
    cases.append(sampler_case("dpmpp_2m_sde", 2 ** 32 + 3, (1, 4, 3, 3), 9, shift=1.0))  # 36 values: tail redraw
    cases.append(sampler_case("dpmpp_2m_sde", 5, (1, 3, 2, 2), 4))  # 12 values: torch's scalar randn path
    # Hand-made query orders: spanning several tree nodes, clamped to the tree's range, reversed
    # (sigma < sigma_next), repeated (cache hits), and an equal-bounds tree.
    cases.append(query_case("spanning/clamped/reversed", 99, (1, 16, 4, 4), 0.0291, 0.9733,
                            [(0.9733, 0.0291), (0.5, 0.25), (0.25, 0.5), (0.8123, 0.3017), (1.5, 0.6),
                             (0.6, 0.01), (0.41, 0.4099995), (0.5, 0.25), (0.0291, 0.9733)]))
    cases.append(query_case("wide sigma range", 2 ** 40, (1, 16, 4, 4), 0.0292, 14.6146,
                            [(14.6146, 7.0), (7.0, 1.0), (1.0, 0.0292), (3.3, 2.2)]))
    # Ends closer than the tree's 1e-6 time resolution: some resolve, some recurse forever.
    cases.append(query_case("sub-resolution", 1, (1, 16, 4, 4), 0.1, 1.0,
                            [(0.41, 0.4099995), (0.3000001, 0.3), (0.6, 0.6000002), (0.4100004, 0.41),
                             (0.1, 0.1000004), (0.7, 0.2)]))
    cases.append(query_case("equal bounds", 3, (1, 16, 4, 4), 0.5, 0.5, [(0.7, 0.3), (0.3, 0.7)]))

    seed_states = []
    for entropy, spawn_key, pool, n in [(0, (), 4, 4), (0, (), 24, 3), (123456789, (), 24, 3),
                                        (2 ** 63 + 5, (), 24, 3), (2 ** 64 - 1, (0, 0), 24, 4),
                                        (42, (5, 3), 24, 4), (42, (2 ** 33 + 1, 34), 24, 4),
                                        (2 ** 100 + 7, (1, 1), 4, 6), (7, (3, 2), 8, 10)]:
        state = numpy.random.SeedSequence(entropy=entropy, spawn_key=spawn_key, pool_size=pool).generate_state(n)
        seed_states.append({"entropy": str(entropy), "spawn_key": [str(k) for k in spawn_key], "pool_size": pool,
                            "state": [int(v) for v in state]})

    json.dump({"torchsde_commit": head(TORCHSDE_GIT), "comfyui_commit": head(COMFY_GIT),
               "torch": torch.__version__, "numpy": numpy.__version__,
               "cases": cases, "seed_sequence": seed_states}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
