# Generates reference.json: torch.nn.functional.interpolate (align_corners=False) and Pillow
# LANCZOS outputs on small random planes, the behaviour the Go kernels must reproduce.
# Run with Debian's python3-torch, python3-pil and python3-numpy:  python3 gen_reference.py
import json
import numpy as np
import torch
from PIL import Image

rng = np.random.default_rng(1234)
cases = []
shapes = [(5, 7, 10, 14), (8, 8, 3, 5), (6, 9, 6, 9), (4, 4, 11, 7), (13, 10, 5, 4), (3, 5, 1, 9)]
for (h, w, oh, ow) in shapes:
    src = rng.random((2, h, w), dtype=np.float32)
    t = torch.from_numpy(src)[None]
    for mode in ["nearest-exact", "bilinear", "bicubic", "area"]:
        out = torch.nn.functional.interpolate(t, size=(oh, ow), mode=mode)[0].numpy()
        cases.append({"method": mode, "h": h, "w": w, "out_h": oh, "out_w": ow, "planes": 2,
                      "src": [float(x) for x in src.ravel()], "want": [float(x) for x in out.ravel()]})
    # ComfyUI lanczos: uint8 HWC through Pillow, back to float.
    img = np.clip(255.0 * np.moveaxis(src[:1].repeat(3, 0), 0, -1), 0, 255).astype(np.uint8)
    res = np.array(Image.fromarray(img).resize((ow, oh), resample=Image.Resampling.LANCZOS)).astype(np.float32) / 255.0
    cases.append({"method": "lanczos", "h": h, "w": w, "out_h": oh, "out_w": ow, "planes": 3,
                  "src": [float(x) for x in np.moveaxis(src[:1].repeat(3, 0), 0, 0).ravel()],
                  "want": [float(x) for x in np.moveaxis(res, -1, 0).ravel()]})
json.dump({"generator": "torch %s, Pillow %s" % (torch.__version__, Image.__version__), "cases": cases},
          open("reference.json", "w"))
