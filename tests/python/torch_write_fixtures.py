"""Writes the PyTorch checkpoints the weightmap tests read, plus manifest.json describing
every tensor torch put in each one: name (dotted, as weightmap flattens nested dicts), dtype
(weightmap's spelling), shape, whether it is contiguous, and the sha256 of its bytes in
row-major order.

usage: torch_write_fixtures.py OUT_DIR
"""
import hashlib
import json
import os
import sys
from collections import OrderedDict

import torch
import torchvision

DTYPES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "bool",
}


class TrainingCallback:
    """A class weightmap cannot know: pickled as __main__.TrainingCallback."""

    def __init__(self):
        self.monitor = "val_loss"
        self.best = 0.25


def flatten(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out.append((prefix, obj))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            flatten(value, f"{prefix}.{i}" if prefix else str(i), out)


def describe(obj):
    tensors = []
    flatten(obj, "", tensors)
    rows = []
    for name, tensor in tensors:
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        rows.append({
            "name": name,
            "dtype": DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "contiguous": tensor.is_contiguous(),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    return rows


def dtype_dict():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(4, 6, generator=g)
    shared = torch.arange(24, dtype=torch.int64)
    return OrderedDict([
        ("f32", torch.randn(3, 5, generator=g)),
        ("f16", torch.randn(7, generator=g).half()),
        ("bf16", torch.randn(2, 3, generator=g).bfloat16()),
        ("f64", torch.randn(2, 2, 2, generator=g).double()),
        ("i64", torch.randint(-1000, 1000, (9,), generator=g)),
        ("i32", torch.randint(-1000, 1000, (4,), generator=g).int()),
        ("i16", torch.randint(-1000, 1000, (4,), generator=g).short()),
        ("i8", torch.randint(-100, 100, (5,), generator=g).char()),
        ("u8", torch.randint(0, 255, (6,), generator=g).byte()),
        ("bool", torch.randn(10, generator=g) > 0),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 4)),
        # Views of one storage: the whole, a contiguous slice at an offset, a transpose,
        # every other column, a broadcast row; and the same tensor under two names.
        ("base", base),
        ("rows", base[1:3]),
        ("transposed", base.t()),
        ("strided", base[:, ::2]),
        ("expanded", base[0].expand(3, 6)),
        ("shared.a", shared[4:10]),
        ("shared.b", shared.view(4, 6)[2]),
        ("tied", base),
    ])


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    manifest = {}

    def save(name, obj, **kwargs):
        torch.save(obj, os.path.join(out, name), **kwargs)
        manifest[name] = describe(obj)

    save("resnet18.pt", torchvision.models.resnet18(weights=None).state_dict())
    save("mobilenet_v3_small.pth",
         torchvision.models.mobilenet_v3_small(weights=None).state_dict())
    save("dtypes.pt", dtype_dict())
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    nested = {"state_dict": small.state_dict(), "global_step": 5, "epoch": 1,
              "callbacks": {"TrainingCallback": TrainingCallback()}}
    torch.save(nested, os.path.join(out, "nested.ckpt"))
    manifest["nested.ckpt"] = describe(nested["state_dict"])
    for row in manifest["nested.ckpt"]:
        row["name"] = "state_dict." + row["name"]
    torch.save(small.state_dict(), os.path.join(out, "legacy.pt"),
               _use_new_zipfile_serialization=False)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
