"""``lic compare IMAGE --bpp B --codecs ... -o FIG.png``: side-by-side look at one image.

Each codec is shown at the setting whose bpp is closest to the target (searched over the whole
range of its quality/QP/ratio knob, see :func:`closest`; lic models try each quality); the bpp
actually reached is in the label, since codecs cannot hit an exact rate.
Every panel is the full decoded image with the crop outlined, above the crop itself enlarged
with nearest-neighbour so that coding artifacts stay visible.  The default crop is the square
of a quarter of the short side with the most gradient energy (fine texture and edges, where
codecs differ most); ``--crop x,y,w,h`` chooses another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .. import metrics
from ..errors import InputError, OutputError
from . import codecs as registry
from .measure import load_rgb


@dataclass
class Pick:
    codec: str
    setting: str
    bpp: float
    psnr: float
    image: Image.Image


def closest(codec: registry.Codec, img: Image.Image, target: float, at_least: bool = False) -> Pick:
    """The setting whose bpp is closest to ``target`` (with ``at_least``: the smallest bpp not below it,
    so a compared codec never gets fewer bits; the largest tried if none reaches it).

    Codecs with a numeric knob (quality, QP, ratio) and no settings picked in their spec are searched
    by bisection over every integer value of it, assuming bpp is monotonic in the knob (true for these
    encoders up to small noise; every value tried is a candidate, so a small violation only costs
    precision).  Codecs with a fixed list of settings (lic models, or settings picked as in
    ``jpeg@q10/q50``) try each one.
    """
    pixels = img.width * img.height
    tried: dict[str, tuple[float, bytes]] = {}

    def bpp_of(setting: str) -> float:
        if setting not in tried:
            data = codec.encode(img, setting)
            tried[setting] = (8 * len(data) / pixels, data)
        return tried[setting][0]

    knob = getattr(codec.parse, "knob", None)
    if codec.rate_direction and knob and knob[3] is int and not codec.picked:
        prefix, lo, hi, _ = knob
        lo, hi = int(lo), int(hi)
        while hi - lo > 1:  # invariant: the target lies between the bpp of lo and of hi
            mid = (lo + hi) // 2
            more_bits = bpp_of(f"{prefix}{mid}") > target
            if (codec.rate_direction > 0) == more_bits:
                hi = mid
            else:
                lo = mid
        bpp_of(f"{prefix}{lo}"), bpp_of(f"{prefix}{hi}")
    else:
        for s in codec.settings:
            bpp_of(s)
    if at_least:
        above = [s for s in tried if tried[s][0] >= target]
        setting = min(above, key=lambda s: tried[s][0]) if above else max(tried, key=lambda s: tried[s][0])
    else:
        setting = min(tried, key=lambda s: abs(tried[s][0] - target))
    bpp, data = tried[setting]
    decoded = codec.decode(data)
    return Pick(codec.name, setting, bpp, metrics.psnr(np.asarray(img), np.asarray(decoded)), decoded)


def default_crop(img: Image.Image) -> tuple[int, int, int, int]:
    """(x, y, w, h): the square of side ⌊short side / 4⌋ with the largest gradient energy."""
    g = np.asarray(img.convert("L"), dtype=np.float64)
    side = max(16, min(g.shape) // 4)
    if min(g.shape) <= side:
        return 0, 0, img.width, img.height
    energy = np.zeros_like(g)
    energy[:, 1:] += np.abs(np.diff(g, axis=1))
    energy[1:, :] += np.abs(np.diff(g, axis=0))
    c = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    box = c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]
    y, x = np.unravel_index(np.argmax(box), box.shape)
    return int(x), int(y), side, side


def parse_crop(text: str, img: Image.Image) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"bad --crop {text!r}: expected x,y,w,h in pixels") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > img.width or y + h > img.height:
        raise InputError(f"--crop {text} does not fit in the {img.width}×{img.height} image")
    return x, y, w, h


def figure(original: Image.Image, picks: list[Pick], crop, target: float, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    panels = [("original", original, f"original {original.width}×{original.height}")]
    panels += [(p.codec, p.image, f"{p.codec} {p.setting}\n{p.bpp:.3f} bpp, {p.psnr:.2f} dB") for p in picks]
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    aspect = original.height / original.width
    panel_w = 3.6
    fig = Figure(figsize=(cols * panel_w, rows * panel_w * (aspect + 1.0) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[aspect, 1.0] * rows)
    x, y, w, h = crop
    for i, (_, im, label) in enumerate(panels):
        r, c = divmod(i, cols)
        top = fig.add_subplot(grid[2 * r, c])
        top.imshow(np.asarray(im), interpolation="lanczos")
        top.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red", linewidth=1.2))
        top.set_title(label, fontsize=9)
        bottom = fig.add_subplot(grid[2 * r + 1, c])
        bottom.imshow(np.asarray(im)[y : y + h, x : x + w], interpolation="nearest")
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{title} — target {target} bpp, crop x={x} y={y} {w}×{h}", fontsize=11)
    return fig


def run_compare(image, bpp: float, specs: list[str], out, crop: str | None = None,
                log: Callable[[str], None] = print) -> Path:
    """The ``lic compare`` command; returns the figure path."""
    image, out = Path(image), Path(out)
    if not image.is_file():
        raise InputError(f"{image}: {'is a folder; lic compare takes one image' if image.is_dir() else 'no such file'}")
    if not bpp > 0:
        raise InputError("--bpp must be positive")
    if out.resolve() == image.resolve():
        raise OutputError(f"{out} would overwrite the input image")
    if out.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
        raise OutputError(f"{out}: use a .png, .svg, .pdf or .jpg name")
    img = load_rgb(image)
    codecs, skipped = registry.resolve(specs)
    for line in skipped:
        log(line)
    if not codecs:
        raise InputError("no codec can run: " + "; ".join(skipped))
    box = parse_crop(crop, img) if crop else default_crop(img)
    picks = []
    for codec in codecs:
        p = closest(codec, img, bpp)
        log(f"{p.codec:12s} {p.setting:6s} {p.bpp:.3f} bpp  {p.psnr:.2f} dB")
        picks.append(p)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure(img, picks, box, bpp, image.name).savefig(out, dpi=110)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e}") from e
    log(f"wrote {out}")
    return out
