"""Generate the torchpickle test checkpoints and their expected contents.

Run from this directory with the system Python that has torch installed:

    /usr/bin/python3 gen.py

It writes small *.pth files made by torch.save (zip format, pickle protocol 2,
and legacy_*.pth in the torch < 1.6 format) and expected.json: for every file, the tensors the Go reader must return after
unwrapping containers and stripping a "module." prefix, each with its
safetensors dtype, shape and the sha256 of its contiguous little-endian bytes.
"""
import collections
import hashlib
import json

import torch

torch.manual_seed(0)

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def raw(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the bits as int16.
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().tobytes()


def describe(sd):
    out = {}
    for k, t in sd.items():
        b = raw(t)
        out[k] = {
            "dtype": DTYPES[t.dtype],
            "shape": list(t.shape),
            "sha256": hashlib.sha256(b).hexdigest(),
        }
    return out


def plain():
    return collections.OrderedDict(
        [
            ("conv.weight", torch.randn(4, 3, 3, 3)),
            ("conv.bias", torch.randn(4).half()),
            ("norm.weight", torch.randn(5).bfloat16()),
            ("norm.num_batches_tracked", torch.tensor(7, dtype=torch.int64)),
            ("ids", torch.arange(6, dtype=torch.int64).reshape(2, 3)),
            ("f64", torch.linspace(-1, 1, 3, dtype=torch.float64)),
            ("i32", torch.tensor([-2, 0, 3], dtype=torch.int32)),
            ("i16", torch.tensor([-300, 300], dtype=torch.int16)),
            ("i8", torch.tensor([-5, 5], dtype=torch.int8)),
            ("u8", torch.tensor([0, 200, 255], dtype=torch.uint8)),
            ("mask", torch.tensor([True, False, True])),
            ("empty", torch.zeros(0, 3)),
            ("scalar", torch.tensor(3.5)),
        ]
    )


def views():
    base = torch.arange(24, dtype=torch.float32)
    m = torch.randn(3, 5)
    return {
        # a transposed, non-contiguous view
        "transposed": m.t(),
        # two tensors sharing one storage at different offsets
        "first": base[2:8].view(2, 3),
        "second": base[10:22].view(3, 4)[:, 1:3],
        # a strided slice of a row
        "every_other": base[1::2],
    }


def main():
    files = {}

    # an nn.Module state_dict (OrderedDict with _metadata, so BUILD is exercised)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2)
    )
    sd = model.state_dict()
    files["module_state.pth"] = (sd, describe(sd))

    sd = plain()
    files["dtypes.pth"] = (sd, describe(sd))

    sd = views()
    files["views.pth"] = (sd, describe(sd))

    p = torch.nn.Parameter(torch.randn(2, 2))
    sd = {"weight": p, "bias": torch.nn.Parameter(torch.zeros(2), requires_grad=False)}
    files["params.pth"] = (sd, describe(sd))

    inner = collections.OrderedDict(
        [("body.0.weight", torch.randn(2, 2)), ("body.0.bias", torch.randn(2))]
    )
    files["params_ema.pth"] = (
        {"params": {"body.0.weight": torch.zeros(2, 2)}, "params_ema": inner},
        describe(inner),
    )

    inner = collections.OrderedDict([("w", torch.randn(3)), ("b", torch.randn(1))])
    files["state_dict.pth"] = (
        {"state_dict": inner, "epoch": 12, "lr": 0.5, "name": "x", "hist": [1, 2]},
        describe(inner),
    )

    wrapped = collections.OrderedDict(
        [("module.layers.0.weight", torch.randn(2, 3)), ("module.layers.0.bias", torch.randn(2))]
    )
    stripped = collections.OrderedDict((k[len("module."):], v) for k, v in wrapped.items())
    files["module_prefix.pth"] = (wrapped, describe(stripped))

    expected = {}
    for name, (obj, want) in files.items():
        torch.save(obj, name)
        expected[name] = want

    # protocol 4 exercises FRAME, SHORT_BINUNICODE, MEMOIZE and STACK_GLOBAL
    sd = collections.OrderedDict([("a", torch.randn(2, 3).t()), ("b", torch.arange(4))])
    torch.save(sd, "proto4.pth", pickle_protocol=4)
    expected["proto4.pth"] = describe(sd)

    # the legacy (torch < 1.6, non-zip) format: a stream of pickles, then raw storages.
    # Its bytes differ on every run (storage keys are derived from object addresses),
    # which does not change the tensors listed in expected.json.
    legacy = {}
    sd = {"w": torch.ones(2)}
    legacy["legacy.pth"] = (sd, describe(sd))
    sd = collections.OrderedDict(
        [("conv.weight", torch.randn(2, 3, 3, 3)), ("conv.bias", torch.randn(2).half()),
         ("steps", torch.tensor(3, dtype=torch.int64)), ("mask", torch.tensor([True, False]))]
    )
    legacy["legacy_dtypes.pth"] = (sd, describe(sd))
    sd = views()  # transposed view, shared storage at offsets, strided slice
    legacy["legacy_views.pth"] = (sd, describe(sd))
    inner = collections.OrderedDict(
        [("module.body.0.weight", torch.randn(2, 2)), ("module.body.0.bias", torch.randn(2))]
    )
    stripped = collections.OrderedDict((k[len("module."):], v) for k, v in inner.items())
    legacy["legacy_params_ema.pth"] = (
        {"params": {"body.0.weight": torch.zeros(2, 2)}, "params_ema": inner},
        describe(stripped),
    )
    for name, (obj, want) in legacy.items():
        torch.save(obj, name, _use_new_zipfile_serialization=False)
        expected[name] = want

    with open("expected.json", "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
