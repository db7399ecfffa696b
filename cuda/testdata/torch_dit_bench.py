"""PyTorch baseline for `dypegraph bench dit`: a random-weight Z-Image-shaped DiT forward
(NextDiT as ComfyUI runs it: bf16 weights and activations, flash SDPA) timed on the GPU.

Shapes follow shared/docs/zimage.md §4: dim 3840, 30 joint layers, 2 noise and 2 context
refiners, 30 heads of 128, FFN 10240 (SwiGLU), adaLN input 256, caption features 2560,
sequences padded to multiples of 32. The layer arithmetic (RMSNorms, q/k norms, RoPE as
complex products, tanh-gated sandwich norms) matches the model closely enough that the
matrix and attention FLOPs, which dominate, are the same.

    python3 torch_dit_bench.py --tokens 4096 --caption 128 [--repeats 5] [--json]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def rms(x, w, eps=1e-5):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


class Block(torch.nn.Module):
    def __init__(self, dim, heads, ffn, modulated, dev, dt):
        super().__init__()
        mk = lambda *s: torch.nn.Parameter(torch.randn(*s, device=dev, dtype=dt) * (1 / math.sqrt(s[-1])))
        ones = lambda n: torch.nn.Parameter(torch.ones(n, device=dev, dtype=dt))
        self.heads, self.hd = heads, dim // heads
        self.qkv, self.out = mk(3 * dim, dim), mk(dim, dim)
        self.q_norm, self.k_norm = ones(self.hd), ones(self.hd)
        self.n1a, self.n2a, self.n1f, self.n2f = ones(dim), ones(dim), ones(dim), ones(dim)
        self.w1, self.w3, self.w2 = mk(ffn, dim), mk(ffn, dim), mk(dim, ffn)
        self.ada = mk(4 * dim, 256) if modulated else None
        self.ada_b = torch.nn.Parameter(torch.zeros(4 * dim, device=dev, dtype=dt)) if modulated else None

    def forward(self, x, t, cos, sin):
        b, s, d = x.shape
        if self.ada is not None:
            sa, ga, sm, gm = F.linear(t, self.ada, self.ada_b).unsqueeze(1).chunk(4, dim=-1)
            sa, sm, ga, gm = 1 + sa, 1 + sm, ga.tanh(), gm.tanh()
        else:
            sa = sm = ga = gm = 1
        h = rms(x, self.n1a) * sa
        q, k, v = F.linear(h, self.qkv).view(b, s, 3, self.heads, self.hd).unbind(2)
        q, k = rms(q, self.q_norm), rms(k, self.k_norm)

        def rope(z):
            zr = z.float().view(b, s, self.heads, self.hd // 2, 2)
            re = zr[..., 0] * cos - zr[..., 1] * sin
            im = zr[..., 0] * sin + zr[..., 1] * cos
            return torch.stack((re, im), -1).flatten(-2).to(z.dtype)

        q, k = rope(q), rope(k)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        o = F.linear(o.transpose(1, 2).reshape(b, s, d), self.out)
        x = x + ga * rms(o, self.n2a)
        h = rms(x, self.n1f) * sm
        f = F.linear(F.silu(F.linear(h, self.w1)) * F.linear(h, self.w3), self.w2)
        return x + gm * rms(f, self.n2f)


def pad32(n):
    return (n + 31) // 32 * 32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=3840)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--refiners", type=int, default=2)
    ap.add_argument("--heads", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--caption", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dev, dt = "cuda", torch.bfloat16
    torch.manual_seed(0)
    dim, ffn = a.dim, (int(a.dim / 3 * 8) + 255) // 256 * 256
    with torch.no_grad():
        refine_x = [Block(dim, a.heads, ffn, True, dev, dt) for _ in range(a.refiners)]
        refine_c = [Block(dim, a.heads, ffn, False, dev, dt) for _ in range(a.refiners)]
        layers = [Block(dim, a.heads, ffn, True, dev, dt) for _ in range(a.layers)]
        x_emb = torch.randn(dim, 64, device=dev, dtype=dt) / 8
        c_emb = torch.randn(dim, 2560, device=dev, dtype=dt) / 50
        t_mlp = (torch.randn(1024, 256, device=dev, dtype=dt) / 16, torch.randn(256, 1024, device=dev, dtype=dt) / 32)
        final = torch.randn(64, dim, device=dev, dtype=dt) / 60
        sx, sc = pad32(a.tokens), pad32(a.caption)
        x_in = torch.randn(1, sx, 64, device=dev, dtype=dt)
        c_in = torch.randn(1, sc, 2560, device=dev, dtype=dt)
        t_in = torch.randn(1, 256, device=dev, dtype=dt)

        def table(s):
            ang = torch.rand(s, 1, 64, device=dev) * 6.28
            return ang.cos(), ang.sin()

        rx, rc, rj = table(sx), table(sc), table(sx + sc)

        def forward():
            t = F.linear(F.silu(F.linear(t_in, t_mlp[0])), t_mlp[1])
            x = F.linear(x_in, x_emb)
            c = F.linear(c_in, c_emb)
            for blk in refine_x:
                x = blk(x, t, *rx)
            for blk in refine_c:
                c = blk(c, t, *rc)
            j = torch.cat([x, c], 1)
            for blk in layers:
                j = blk(j, t, *rj)
            return F.linear(j[:, :sx], final)

        for _ in range(a.warmup):
            forward()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(a.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            forward()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    times.sort()
    seq = sx + sc
    res = {
        "backend": "torch " + torch.__version__, "dtype": "bf16", "device": torch.cuda.get_device_name(),
        "median_ms": times[len(times) // 2], "min_ms": times[0], "times_ms": times,
        "image_tokens": a.tokens, "caption_tokens": a.caption, "seq_len": seq, "layers": a.layers,
        "peak_vram_mb": torch.cuda.max_memory_allocated() / 2**20,
    }
    print(json.dumps(res) if a.json else res)


if __name__ == "__main__":
    main()
