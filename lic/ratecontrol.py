"""Rate control: stop a progressive model at K layers, at a bpp budget, or at a PSNR target.

A progressive model writes one chunk per layer (iteration) and chunk ``k`` depends
only on layers ``1..k``, so the encoder codes *once* to the maximum and a target
only chooses how many chunks to keep::

    image ─model.compress(q_max, reconstruct=True)─► chunks c_1..c_n, reconstructions x̂_1..x̂_n
          ─► for every k: the real file [header(quality=k) + alpha + c_1..c_k]: bytes, bpp, PSNR(x̂_k)
          ─► choose k:  --iterations K   k = K
                        --bpp B          the largest k whose file (header included) has bpp ≤ B
                        --psnr P         the smallest k with PSNR ≥ P (else the largest k)

The contract a progressive model keeps for this module: ``progressive = True``,
``qualities`` = 1..n (quality = number of layers), and ``compress(x, n,
reconstruct=True)`` returns one chunk per layer and the reconstruction after every
layer in ``extra["x_hats"]`` (what a decoder of the first k chunks produces, bit for
bit).  The recurrent codec (Toderici 2017) keeps it; so can any later progressive model.

Non-progressive models: ``bpp``/``psnr`` choose among the quality levels (each level
is encoded, then the same rule applies); ``iterations`` is refused.
PSNR is measured on the planes the decoder returns (RGB, or gray for L/LA images;
alpha is lossless and left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import container, metrics, zoo
from .container import CHUNK_MODEL, Chunk, Header
from .errors import InputError, ModelError
from .imageio import assemble, from_tensor, prepare, to_tensor


@dataclass
class Candidate:
    quality: int  # header quality: number of layers for progressive models
    data: bytes  # the complete .lic file
    bpp: float  # 8 · len(data) / pixels: real bytes, header included
    psnr: float


@dataclass
class Choice:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    reached: bool = True  # False: a PSNR target that even the best candidate misses
    mode: str = "quality"

    @property
    def data(self) -> bytes:
        return self.chosen.data


def _planes(rgb: np.ndarray, mode: str) -> np.ndarray:
    a = np.asarray(assemble(rgb, mode, None if mode in ("L", "RGB") else np.zeros(rgb.shape[:2], np.uint8)))
    return a[..., 0] if mode == "LA" else (a[..., :3] if mode == "RGBA" else a)


def prefix_files(prepared, model, max_quality: int | None = None, refine: int = 0, progress=None,
                 exact: bool = False, keep: frozenset[str] = frozenset()):
    """Encode a prepared image once with a progressive model: ``(compressed, files)``, where ``files[k-1]``
    is the complete .lic file of the first k layers (header, alpha, ICC profile and the metadata in ``keep``
    included: what ``head -c`` at that chunk boundary gives) and ``compressed.extra["x_hats"][k-1]`` what it
    decodes to.  ``refine``: steps of encoder-side search over all the layers coded (su2020:
    :mod:`lic.models.refine`) or each iteration's bits (toderici2017-rnn: :mod:`lic.models.refine_bits`)."""
    from .codec import _name, coding_options, side_chunks

    p, m = prepared, model
    h, w = p.rgb.shape[:2]
    side = side_chunks(p, keep)
    n = m.check_quality(max_quality if max_quality is not None else m.qualities[-1])
    with torch.inference_mode():
        comp = m.compress(to_tensor(p.rgb), n, reconstruct=True, **coding_options(refine, progress, exact))
    x_hats = comp.extra.get("x_hats")
    if x_hats is None or len(x_hats) != len(comp.chunks):
        raise ModelError(f"model '{_name(m)}' does not return per-layer reconstructions")
    digest = zoo.model_digest(m)
    files = []
    for k in range(1, len(comp.chunks) + 1):
        chunks = side + [Chunk(CHUNK_MODEL, c) for c in comp.chunks[:k]]
        header = Header(model=_name(m), digest=digest, width=w, height=h, mode=p.mode, quality=k,
                        n_chunks=len(chunks), params=comp.params)
        files.append(container.write(header, chunks))
    return comp, files


def candidates(image, model, max_quality: int | None = None, refine: int = 0, progress=None,
               exact: bool = False, metadata="none") -> list[Candidate]:
    """Every file the rate control can choose from, with its size and PSNR (``progress(n)``: told of the
    refinement's steps, :func:`refine_steps` in all; ``exact``: files with the exact synthesis, one-shot models;
    ``metadata``: the EXIF / XMP the files keep, as :func:`lic.codec.encode` takes it)."""
    from .codec import _resolve
    from .metadata import parse_keep

    keep = parse_keep(metadata)
    m = _resolve(model)
    p = prepare(image)
    h, w = p.rgb.shape[:2]
    ref = _planes(p.rgb, p.mode)
    out = []
    if m.progressive:
        comp, files = prefix_files(p, m, max_quality, refine=refine, progress=progress, exact=exact, keep=keep)
        for k, data in enumerate(files, 1):
            out.append(Candidate(k, data, 8 * len(data) / (w * h),
                                 metrics.psnr(ref, _planes(from_tensor(comp.extra["x_hats"][k - 1]), p.mode))))
        return out
    from .codec import encode

    for q in m.qualities:
        enc = encode(image, model=m, quality=q, reconstruct=True, refine=refine, progress=progress, exact=exact,
                     metadata=keep)
        rgb = np.asarray(enc.reconstruction.convert("RGB"))
        out.append(Candidate(q, enc.data, 8 * len(enc.data) / (w * h), metrics.psnr(ref, _planes(rgb, p.mode))))
    return out


def choose(cands: list[Candidate], iterations: int | None = None, bpp: float | None = None,
           psnr: float | None = None) -> Choice:
    """The rule above, over candidates ordered by increasing quality (= rate)."""
    if sum(v is not None for v in (iterations, bpp, psnr)) != 1:
        raise InputError("give exactly one of iterations, bpp, psnr")
    if iterations is not None:
        for c in cands:
            if c.quality == iterations:
                return Choice(c, cands, mode="iterations")
        raise ModelError(f"{iterations} iterations not available (1..{cands[-1].quality})")
    if bpp is not None:
        if not bpp > 0:
            raise InputError(f"bpp budget must be positive, got {bpp}")
        fit = [c for c in cands if c.bpp <= bpp]
        if not fit:
            raise InputError(f"bpp budget {bpp:g} is below the smallest file ({cands[0].bpp:.4f} bpp "
                             f"at quality {cands[0].quality})")
        return Choice(max(fit, key=lambda c: c.quality), cands, mode="bpp")
    if math.isnan(psnr):
        raise InputError("psnr target must be a number")
    for c in cands:
        if c.psnr >= psnr:
            return Choice(c, cands, mode="psnr")
    return Choice(cands[-1], cands, reached=False, mode="psnr")


def refine_steps(model, height: int, width: int, refine: int, quality: int | None = None,
                 per_quality: bool = True) -> int:
    """How many refinement steps an encode takes for an image of this size (for progress bars): for a
    progressive model once, over ``quality`` layers (all of them when None); for a one-shot model once per
    quality level in rate control (:func:`encode`, ``per_quality``), else once."""
    if model.progressive:
        return refine * model.refine_blocks(height, width, quality or model.qualities[-1])
    once = refine * model.refine_blocks(height, width, quality or model.default_quality)
    return once * len(model.qualities) if per_quality else once


def encode(image, model, iterations: int | None = None, bpp: float | None = None,
           psnr: float | None = None, refine: int = 0, progress=None, exact: bool = False,
           metadata="none") -> Choice:
    """Encode ``image`` once and pick the file that meets the target (see the module docstring);
    ``refine``: encoder-side latent search, at every quality level tried (one-shot models) or over all the
    layers coded (su2020); ``exact``: files with the exact synthesis; ``metadata``: the EXIF / XMP kept (in
    the budget, as every byte of the file)."""
    from .codec import _resolve, check_exact, check_refine

    m = _resolve(model)
    check_refine(m, refine)
    check_exact(m, exact)
    if iterations is not None and not m.progressive:
        raise ModelError(f"model '{getattr(m, 'lic_name', m.name)}' is not progressive: --iterations does not apply")
    if iterations is not None and not m.qualities[0] <= iterations <= m.qualities[-1]:
        raise ModelError(f"{iterations} {m.prefix_unit} not available: model '{getattr(m, 'lic_name', m.name)}' "
                         f"codes {m.qualities[0]}..{m.qualities[-1]} {m.prefix_unit}")
    # with a fixed iteration count, coding further than K is wasted work
    return choose(candidates(image, m, max_quality=iterations, refine=refine, progress=progress, exact=exact,
                             metadata=metadata), iterations, bpp, psnr)
