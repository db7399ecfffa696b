#!/usr/bin/python3
"""Generate testdata/libmf.json: glibc's logf and expf, which torch's scalar CPU kernels call.

Run on x86-64 Linux with glibc 2.27 or later on a CPU with FMA (glibc 2.36, Debian 12, was
used; only the standard library and numpy are needed):

    /usr/bin/python3 sampling/testdata/gen_libmf.py

The functions are called through ctypes from the running libm. For each function the inputs
are every stride-th float32 bit pattern from start (count of them); the file keeps the SHA-256
of the results' little-endian float32 bytes and, for diagnosis, the first cases (input, output
bit patterns) where glibc's result is not the correctly rounded one (float32 of the double
precision log or exp).
"""
import ctypes
import hashlib
import json
import math
import os
import struct

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
libm = ctypes.CDLL("libm.so.6")


def run(name, ref, start, stride, count):
    fn = getattr(libm, name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    xs = (numpy.arange(count, dtype=numpy.uint64) * stride + start).astype(numpy.uint32).view(numpy.float32)
    out = numpy.array([fn(float(x)) for x in xs], dtype=numpy.float32)
    off = []
    for x, y in zip(xs, out):
        if len(off) >= 40:
            break
        try:
            cr = numpy.float32(ref(float(x)))
        except (ValueError, OverflowError):
            continue
        if numpy.isfinite(y) and cr != y:
            off.append([int(numpy.float32(x).view(numpy.uint32)), int(y.view(numpy.uint32))])
    return {"start": start, "stride": stride, "count": count,
            "sha256": hashlib.sha256(out.astype("<f4").tobytes()).hexdigest(), "not_correctly_rounded": off}


ref = {"libc": os.confstr("CS_GNU_LIBC_VERSION"),
       # positive floats from subnormals to +Inf, and the whole negative/NaN range thinly
       "logf": run("logf", math.log, 1, 211, 0x7f800000 // 211 + 1),
       "expf": run("expf", math.exp, 0, 197, 0xffffffff // 197 + 1)}
with open(os.path.join(HERE, "libmf.json"), "w") as f:
    json.dump(ref, f, indent=1)
    f.write("\n")
print(ref["libc"], len(ref["logf"]["not_correctly_rounded"]), len(ref["expf"]["not_correctly_rounded"]))
