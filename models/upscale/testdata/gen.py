#!/usr/bin/env python3
"""Reference data for package upscale (ours; not part of ComfyUI or spandrel).

Builds tiny ESRGAN RRDBNets in torch (the network is written out below from the
architecture: conv_first, RRDB trunk with residual scaling 0.2, conv_body, nearest x2
upsampling convs, conv_hr, conv_last, LeakyReLU(0.2); RealESRGAN x2plus/x1 unshuffle the
input), with seeded random weights, saves them in both key namings as .safetensors (written
by the small writer below) and as .pth (torch.save of the state dict), and records:

  - each model's raw forward output on a small image (no clamp),
  - spandrel's ImageModelDescriptor call on it (pad to the size requirements, clamp, crop),
  - ComfyUI's tiled_scale on images larger than a tile, with the tiled_scale /
    tiled_scale_multidim / get_tiled_scale_steps functions extracted at run time from
    comfy/utils.py of a ComfyUI git checkout (parsed with ast, nothing else imported).

Run from this directory with torch installed:

    python3 gen.py /work/.mirror/psy-repos-python+ComfyUI/repo

(the argument is a ComfyUI git directory, bare or not). Writes *.safetensors, *.pth and
ref.safetensors here.
"""
import ast
import collections
import itertools
import json
import math
import struct
import subprocess
import sys

import torch
import torch.nn.functional as F


def save_safetensors(path, tensors):
    """Minimal safetensors writer: F32 only, names sorted, header padded to 8 bytes."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def comfy_tiled(comfy_git):
    """Extract ComfyUI's tiling functions from comfy/utils.py without importing comfy."""
    src = subprocess.run(["git", "--git-dir", comfy_git, "show", "HEAD:comfy/utils.py"],
                         check=True, capture_output=True, text=True).stdout
    tree = ast.parse(src)
    want = {"get_tiled_scale_steps", "tiled_scale_multidim", "tiled_scale"}
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in want]
    assert {n.name for n in body} == want, "comfy/utils.py changed: tiling functions not found"
    ns = {"torch": torch, "math": math, "itertools": itertools}
    exec(compile(ast.Module(body=body, type_ignores=[]), "comfy/utils.py", "exec"), ns)
    return ns


def lrelu(x):
    return F.leaky_relu(x, 0.2)


class Net:
    """RRDBNet with BasicSR ("new") parameter names; old() renames to ESRGAN's."""

    def __init__(self, gen, in_nc, out_nc, nf, nb, gc, n_up, shuffle):
        self.nb, self.n_up, self.shuffle = nb, n_up, shuffle
        p = collections.OrderedDict()

        def conv(name, cin, cout):
            std = 1.0 / math.sqrt(cin * 9)
            p[name + ".weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * std
            p[name + ".bias"] = torch.randn(cout, generator=gen) * 0.05

        conv("conv_first", in_nc, nf)
        for b in range(nb):
            for r in range(1, 4):
                for c in range(1, 6):
                    conv(f"body.{b}.rdb{r}.conv{c}", nf + (c - 1) * gc, gc if c < 5 else nf)
        conv("conv_body", nf, nf)
        for u in range(1, n_up + 1):
            conv(f"conv_up{u}", nf, nf)
        conv("conv_hr", nf, nf)
        conv("conv_last", nf, out_nc)
        p["conv_last.bias"] += 0.5
        self.p = p

    def c(self, name, x):
        return F.conv2d(x, self.p[name + ".weight"], self.p[name + ".bias"], padding=1)

    def forward(self, x):
        h, w = x.shape[2:]
        if self.shuffle:
            s = self.shuffle
            ph, pw = (s - h % s) % s, (s - w % s) % s
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="reflect")
            x = F.pixel_unshuffle(x, s)
        fea = self.c("conv_first", x)
        t = fea
        for b in range(self.nb):
            r_in = t
            for r in range(1, 4):
                feats = [t]
                for c in range(1, 6):
                    y = self.c(f"body.{b}.rdb{r}.conv{c}", torch.cat(feats, 1))
                    if c < 5:
                        y = lrelu(y)
                    feats.append(y)
                t = feats[-1] * 0.2 + t
            t = t * 0.2 + r_in
        t = fea + self.c("conv_body", t)
        for u in range(1, self.n_up + 1):
            t = lrelu(self.c(f"conv_up{u}", F.interpolate(t, scale_factor=2, mode="nearest")))
        out = self.c("conv_last", lrelu(self.c("conv_hr", t)))
        if self.shuffle:
            true_scale = 2 ** self.n_up // self.shuffle
            out = out[:, :, : h * true_scale, : w * true_scale]
        return out

    def old(self):
        """ESRGAN's original naming (model.0, model.1.sub.N.RDBr.convc.0, ...)."""
        o = collections.OrderedDict()
        for k, v in self.p.items():
            parts = k.split(".")
            if parts[0] == "conv_first":
                o["model.0." + parts[1]] = v
            elif parts[0] == "body":
                o[f"model.1.sub.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.0.{parts[4]}"] = v
            elif parts[0] == "conv_body":
                o[f"model.1.sub.{self.nb}.{parts[1]}"] = v
            elif parts[0].startswith("conv_up"):
                o[f"model.{int(parts[0][7:]) * 3}.{parts[1]}"] = v
            elif parts[0] == "conv_hr":
                o[f"model.{self.n_up * 3 + 2}.{parts[1]}"] = v
            elif parts[0] == "conv_last":
                o[f"model.{self.n_up * 3 + 4}.{parts[1]}"] = v
        return o


def descriptor_call(net, x, scale, multiple):
    """spandrel's ImageModelDescriptor.__call__: pad to the size requirements (minimum 2,
    multiple of 4 for unshuffle models; reflect then replicate), clamp, crop."""
    h, w = x.shape[2:]

    def ceil_to(v, m):
        return v if v % m == 0 else (v // m + 1) * m

    pw = ceil_to(max(2, w), multiple) - w
    ph = ceil_to(max(2, h), multiple) - h
    if pw or ph:
        rw, rh = min(pw, w - 1), min(ph, h - 1)
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    y = net.forward(x).clamp(0, 1)
    return y[..., : h * scale, : w * scale]


def main():
    comfy = comfy_tiled(sys.argv[1])
    gen = torch.Generator().manual_seed(1234)
    ref = {}
    meta = {}

    models = {
        # name: (in_nc, out_nc, nf, nb, gc, n_up, shuffle, naming)
        "esrgan_x4_old": (3, 3, 6, 1, 3, 2, None, "old"),
        "realesrgan_x2_new": (12, 3, 6, 2, 3, 2, 2, "new"),
        "realesrgan_x1_new": (48, 3, 6, 1, 3, 2, 4, "new"),
    }
    nets = {}
    for name, (in_nc, out_nc, nf, nb, gc, n_up, shuffle, naming) in models.items():
        net = Net(gen, in_nc, out_nc, nf, nb, gc, n_up, shuffle)
        nets[name] = net
        sd = net.old() if naming == "old" else net.p
        save_safetensors(name + ".safetensors", sd)
    # The same weights as pickles, for the .pth loader: plain state dicts in both namings and
    # a BasicSR training checkpoint that wraps them in params_ema.
    torch.save(dict(nets["esrgan_x4_old"].old()), "esrgan_x4_old.pth")
    torch.save({"params_ema": dict(nets["realesrgan_x1_new"].p)}, "realesrgan_x1_new_ema.pth")

    with torch.no_grad():
        for name, net in nets.items():
            shuffle = net.shuffle or 1
            scale = 2 ** net.n_up // shuffle
            mult = 4 if net.shuffle else 1
            # Raw forward on a size the model takes as is.
            x = torch.rand(1, 3, 8, 12, generator=gen)
            ref[name + ".forward.in"] = x
            ref[name + ".forward.out"] = net.forward(x)
            # The descriptor on an awkward size (padding, cropping).
            x = torch.rand(1, 3, 5, 7, generator=gen)
            ref[name + ".call.in"] = x
            ref[name + ".call.out"] = descriptor_call(net, x, scale, mult)

        # ImageUpscaleWithModel's core: tiled_scale over the descriptor, then clamp.
        cases = {
            "tiled_x4": ("esrgan_x4_old", (1, 3, 14, 17), 10, 4),
            "tiled_x2": ("realesrgan_x2_new", (2, 3, 14, 21), 12, 4),
            "tiled_x1": ("realesrgan_x1_new", (1, 3, 30, 17), 16, 6),
        }
        for cname, (mname, shape, tile, overlap) in cases.items():
            net = nets[mname]
            shuffle = net.shuffle or 1
            scale = 2 ** net.n_up // shuffle
            mult = 4 if net.shuffle else 1
            x = torch.rand(*shape, generator=gen)
            steps = x.shape[0] * comfy["get_tiled_scale_steps"](x.shape[3], x.shape[2], tile_x=tile, tile_y=tile, overlap=overlap)
            calls = []

            def fn(a):
                calls.append(list(a.shape))
                return descriptor_call(net, a.float(), scale, mult)

            s = comfy["tiled_scale"](x, fn, tile_x=tile, tile_y=tile, overlap=overlap,
                                     upscale_amount=scale, output_device="cpu")
            ref[cname + ".in"] = x
            ref[cname + ".out"] = torch.clamp(s, min=0, max=1.0)
            meta[cname] = {"model": mname, "tile": tile, "overlap": overlap, "scale": scale,
                           "steps": steps, "calls": len(calls)}
    save_safetensors("ref.safetensors", ref)
    with open("ref.json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
