"""Run a convolutional transform over a large image tile by tile, so memory stays bounded.

A 768×512 photo already takes about half a GiB inside the default model's transforms (feature maps
of 128 channels at half resolution and their convolution buffers), and that grows with the pixel
count: a 12-megapixel photo in one piece would need over 10 GiB.  So coding cuts the transform's
input into a grid of ``tile × tile`` cores, runs each core with ``halo`` units of its neighbours'
input around it (where the image has them), and keeps only the core's part of each output::

        ┌──────────────┬───────┐        each core is computed from core + halo;
        │ ┌ ─ ─ ─ ─ ┐  │       │        the halo is at least the transform's receptive
        │   core      halo     │        radius, so every kept output sees exactly the
        │ └ ─ ─ ─ ─ ┘  │       │        inputs it would see in the whole image
        ├──────────────┼───────┤
        │              │       │
        └──────────────┴───────┘

Tile origins are multiples of the transform's stride, so every strided layer samples the same grid
as on the whole image: the result equals the whole-image result up to float rounding (different
matrix sizes may sum in a different order), and an image that fits in one tile is computed in one
piece exactly as before.  Encoder and decoder tile the same way (the grid depends only on the
image size), so a decoded image still equals the encoder's reconstruction bit for bit.
"""

from __future__ import annotations

from typing import Callable

import torch


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, halo: int,
              up: int = 1, down: int = 1) -> torch.Tensor:
    """``fn(x)`` computed on ``tile × tile`` cores with ``halo`` units of context each side; ``fn`` is
    given channels-last tensors (the fast layout of the coding transforms, see TransformCodec).

    ``fn`` maps an input of size h × w to an output of size h·up/down × w·up/down (``down`` =
    16 for an analysis transform that goes 16× down, ``up`` = 16 for a synthesis transform);
    ``tile`` and ``halo`` are in input units and must be multiples of ``down``.
    """
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return fn(x.contiguous(memory_format=torch.channels_last))
    if tile % down or halo % down:
        raise ValueError(f"tile {tile} and halo {halo} must be multiples of the stride {down}")
    def o(v: int) -> int:  # input units -> output units
        return v * up // down

    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            a0, b0 = max(y0 - halo, 0), max(x0 - halo, 0)
            a1, b1 = min(y1 + halo, h), min(x1 + halo, w)
            part = fn(x[..., a0:a1, b0:b1].contiguous(memory_format=torch.channels_last))
            if out is None:
                out = torch.empty((*part.shape[:-2], o(h), o(w)), dtype=part.dtype, device=part.device,
                                  memory_format=torch.channels_last)
            out[..., o(y0):o(y1), o(x0):o(x1)] = part[..., o(y0 - a0):o(y1 - a0), o(x0 - b0):o(x1 - b0)]
    return out
