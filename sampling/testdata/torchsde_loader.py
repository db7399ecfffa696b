"""torchsde's BrownianTree for the reference generators of this directory (gen_samplers.py,
gen_reference.py), so that ComfyUI's BrownianTreeNoiseSampler runs as it is.

Nothing of torchsde is stored here: load() reads torchsde's _brownian package (with
settings.py and types.py) from the HEAD of a (bare) git clone with `git show`, writes it to a
temporary directory that lives as long as the process, and imports it from there. The package's
own __init__ (which imports the SDE solvers and scipy) is not run. `trampoline`, a dependency of
torchsde that is not installed here, is the small generator trampoline below: a generator yields
a sub-generator to call it and receives its return value; raising TailCall(gen) replaces the
running generator by gen (the same stand-in as sampling/brownian/testdata/gen.py).
"""
import os
import subprocess
import sys
import tempfile
import types

DEFAULT_GIT = "/work/.mirror/google-research+torchsde/repo"
FILES = ["torchsde/settings.py", "torchsde/types.py", "torchsde/_brownian/__init__.py",
         "torchsde/_brownian/brownian_base.py", "torchsde/_brownian/brownian_interval.py",
         "torchsde/_brownian/derived.py"]
_TMP = []  # keeps the temporary directory alive


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


def head(git):
    return subprocess.run(["git", "--git-dir", git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def load(git=DEFAULT_GIT):
    """Returns a `torchsde` module with BrownianTree, imported from git's HEAD."""
    if "torchsde" in sys.modules and hasattr(sys.modules["torchsde"], "BrownianTree"):
        return sys.modules["torchsde"]
    tramp = types.ModuleType("trampoline")
    tramp.TailCall, tramp.trampoline = TailCall, trampoline
    sys.modules["trampoline"] = tramp
    tmp = tempfile.TemporaryDirectory()
    _TMP.append(tmp)
    for path in FILES:
        src = subprocess.run(["git", "--git-dir", git, "show", "HEAD:" + path], check=True, capture_output=True,
                             text=True).stdout
        dst = os.path.join(tmp.name, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(src)
    torchsde = types.ModuleType("torchsde")
    torchsde.__path__ = [os.path.join(tmp.name, "torchsde")]
    sys.modules["torchsde"] = torchsde
    from torchsde._brownian import BrownianTree
    torchsde.BrownianTree = BrownianTree
    torchsde.commit = head(git)
    return torchsde
