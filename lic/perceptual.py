"""LPIPS distance (Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", CVPR 2018) in plain torch, on backbone weights from a local file.

    d(x, x') = Σ_l  mean_{h,w}  Σ_c  w_{l,c} · (φ̂_l(x) − φ̂_l(x'))²_{c,h,w}

``φ̂_l``: the activations after the ReLU that ends stage ``l`` of the backbone (VGG-16:
relu1_2 … relu5_3; AlexNet: relu1 … relu5), each divided by its norm over channels;
``w_l ≥ 0``: the learned per-channel weights of LPIPS ("linear heads").  Images in [0, 1]
are mapped to [-1, 1], then shifted and scaled per channel as LPIPS does.

Nothing is downloaded (this package never reaches the network).  The weights come from one
file, or several whose state dicts are merged (a list, or paths joined with ``os.pathsep``),
given as ``lpips_weights`` or in the environment variable ``LIC_LPIPS_WEIGHTS``:

* backbone: torchvision-style keys ``features.<i>.weight`` / ``features.<i>.bias`` of VGG-16
  (``vgg16-397923af.pth``) or AlexNet (``alexnet-owt-7be5be79.pth``);
* heads: ``lin<l>.model.<k>.weight`` (the lpips package's ``weights/v0.1/vgg.pth`` or
  ``alex.pth``) or ``lin<l>.weight``, of shape ``(1, C_l, 1, 1)``.

Either merge the two once, ``torch.save({**torch.load("vgg16-397923af.pth"), **torch.load("vgg.pth")},
"vgg16+lpips.pth")``, or name both files (``"lpips_weights": ["vgg16-397923af.pth", "vgg.pth"]``).
``.pth`` files are read with ``torch.load(weights_only=True)`` (no code runs), ``.safetensors``
with safetensors.  Layer widths are read from the tensors, so a small network of the same
layout works too (the tests use one).  Missing or unusable weights raise
:class:`lic.errors.ModelError` with a one-line message naming the path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ModelError

ENV = "LIC_LPIPS_WEIGHTS"

# (features index of a conv, stride, padding) or ("pool", kernel, stride); "tap" = an LPIPS layer
_VGG16 = [(0, 1, 1), (2, 1, 1), "tap", ("pool", 2, 2), (5, 1, 1), (7, 1, 1), "tap", ("pool", 2, 2),
          (10, 1, 1), (12, 1, 1), (14, 1, 1), "tap", ("pool", 2, 2), (17, 1, 1), (19, 1, 1), (21, 1, 1), "tap",
          ("pool", 2, 2), (24, 1, 1), (26, 1, 1), (28, 1, 1), "tap"]
_ALEX = [(0, 4, 2), "tap", ("pool", 3, 2), (3, 1, 2), "tap", ("pool", 3, 2), (6, 1, 1), "tap", (8, 1, 1), "tap",
         (10, 1, 1), "tap"]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def weight_paths(spec=None) -> list[Path]:
    """The files named by ``spec`` (a path, a list of paths, or paths joined by os.pathsep), else by
    ``$LIC_LPIPS_WEIGHTS``.  Raises ModelError if none is given or one is missing."""
    if spec is None or spec == "" or spec == []:
        spec = os.environ.get(ENV, "")
    if isinstance(spec, (str, Path)):
        spec = [p for p in str(spec).split(os.pathsep) if p]
    paths = [Path(p).expanduser() for p in spec]
    if not paths:
        raise ModelError(f"LPIPS weights not given (set lpips_weights or ${ENV} to a local VGG-16/AlexNet + "
                         f"LPIPS-heads state_dict): the LPIPS term is refused; set \"lpips\": 0 to train without it")
    for p in paths:
        if not p.is_file():
            raise ModelError(f"LPIPS weights not found at {p}: the LPIPS term is refused "
                             f"(nothing is downloaded; give a local file, or set \"lpips\": 0 to train without it)")
    return paths


def _read_state(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors all mean "not a state dict we can read"
        raise ModelError(f"LPIPS weights at {path} cannot be read: {exc.__class__.__name__}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"LPIPS weights at {path} are not a state dict of tensors")
    return state


class LPIPS(nn.Module):
    """Frozen LPIPS network; ``forward(a, b)`` -> mean distance over the batch (images in [0, 1])."""

    def __init__(self, state: dict, source: str = "state dict"):
        super().__init__()
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if "features.28.weight" in state:
            self.backbone, layout = "vgg16", _VGG16
        elif "features.10.weight" in state:
            self.backbone, layout = "alexnet", _ALEX
        else:
            raise ModelError(f"LPIPS weights from {source}: no VGG-16 or AlexNet 'features.N.weight' keys")
        self.layout = []
        taps = []
        last = None
        for op in layout:
            if op == "tap":
                taps.append(last)
                self.layout.append(("tap",))
            elif op[0] == "pool":
                self.layout.append(op)
            else:
                i, stride, pad = op
                try:
                    w, b = state[f"features.{i}.weight"], state[f"features.{i}.bias"]
                except KeyError as exc:
                    raise ModelError(f"LPIPS weights from {source}: missing {exc.args[0]}") from None
                self.register_buffer(f"w{i}", w.detach().float().clone())
                self.register_buffer(f"b{i}", b.detach().float().clone())
                self.layout.append(("conv", i, stride, pad))
                last = w.shape[0]
        for l, channels in enumerate(taps):
            keys = [k for k in state if re.fullmatch(rf"lin{l}\.(model\.\d+\.)?weight", k)]
            if len(keys) != 1:
                raise ModelError(f"LPIPS weights from {source}: no linear head 'lin{l}.model.N.weight' "
                                 f"(merge the lpips package's {'vgg' if self.backbone == 'vgg16' else 'alex'}.pth "
                                 f"with the backbone)")
            head = state[keys[0]].detach().float()
            if head.numel() != channels:
                raise ModelError(f"LPIPS weights from {source}: head lin{l} has {head.numel()} weights "
                                 f"for {channels} channels")
            self.register_buffer(f"lin{l}", head.reshape(1, channels, 1, 1).clamp_min(0).clone())
        self.taps = len(taps)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, spec=None) -> "LPIPS":
        paths = weight_paths(spec)
        state = {}
        for p in paths:
            state.update(_read_state(p))
        return cls(state, source=", ".join(str(p) for p in paths))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1) - self.shift) / self.scale
        out = []
        for op in self.layout:
            if op[0] == "conv":
                _, i, stride, pad = op
                x = F.relu(F.conv2d(x, getattr(self, f"w{i}"), getattr(self, f"b{i}"), stride=stride, padding=pad))
            elif op[0] == "pool":
                x = F.max_pool2d(x, op[1], op[2])
            else:
                out.append(x / (torch.sqrt((x * x).sum(1, keepdim=True)) + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = self.features(a.float()), self.features(b.float())
        d = a.new_zeros((), dtype=torch.float32)
        for l, (u, v) in enumerate(zip(fa, fb)):
            d = d + ((u - v) ** 2 * getattr(self, f"lin{l}")).sum(1).mean()
        return d
