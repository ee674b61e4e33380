"""Images <-> ``.lic`` bytes: ties image preparation, a model and the container together.

    PIL image ─prepare─► RGB planes (+ alpha, ICC, metadata) ─model.compress─► chunks ─container.write─► bytes
    bytes ─container.read (checksums)─► header + chunks ─model.decompress─► RGB ─assemble─► PIL image

Side chunks (alpha plane, ICC profile, the EXIF / XMP asked for) come before the model's data chunks, so
every prefix of a progressive file keeps them.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import container, zoo
from .container import CHUNK_ALPHA, CHUNK_EXIF, CHUNK_ICC, CHUNK_MODEL, CHUNK_XMP, Chunk, Header
from .errors import FormatError, InputError, ModelError
from .imageio import (Prepared, assemble, decode_alpha, decode_icc, encode_alpha, encode_icc, from_tensor,
                      prepare, to_tensor)
from .metadata import pack, parse_keep, unpack, valid
from .models import CompressionModel


@dataclass
class Encoded:
    data: bytes
    reconstruction: Image.Image | None
    header: Header
    table_bits: float | None = None  # ideal bits under the integer tables (model chunks only)


def _resolve(model, device=None) -> CompressionModel:
    """A model object as it is (on its own device), or a name / weights path loaded onto ``device``."""
    return model if isinstance(model, CompressionModel) else zoo.load_model(model, device=device)


def _name(model: CompressionModel) -> str:
    return getattr(model, "lic_name", None) or model.name


META_CHUNKS = {"exif": CHUNK_EXIF, "xmp": CHUNK_XMP}


def kept_meta(p: Prepared, keep: frozenset[str]) -> dict[str, bytes]:
    """The input's metadata that ``keep`` (:func:`lic.metadata.parse_keep`) asks for."""
    return {k: v for k, v in p.meta.items() if k in keep}


def side_chunks(p: Prepared, keep: frozenset[str] = frozenset()) -> list[Chunk]:
    """The chunks written before the model data: the alpha plane and the ICC profile, when present, then the
    input's EXIF / XMP when ``keep`` names them and the input has them."""
    chunks = []
    if p.alpha is not None:
        chunks.append(Chunk(CHUNK_ALPHA, encode_alpha(p.alpha)))
    if p.icc is not None:
        chunks.append(Chunk(CHUNK_ICC, encode_icc(p.icc)))
    for kind, data in kept_meta(p, keep).items():
        chunks.append(Chunk(META_CHUNKS[kind], pack(data)))
    return chunks


def read_meta(f: container.LicFile) -> dict[str, bytes]:
    """The EXIF / XMP a file carries."""
    found = {}
    for kind, chunk in META_CHUNKS.items():
        data = f.chunk(chunk)
        if data is not None:
            found[kind] = valid(kind, unpack(data, kind.upper()))
    return found


def check_refine(m: CompressionModel, refine: int) -> None:
    if refine < 0:
        raise InputError(f"--refine takes a number of steps >= 0, got {refine}")
    if refine and not m.refinable:
        raise ModelError(f"model '{_name(m)}' has no encoder-side refinement (--refine)")


def check_exact(m: CompressionModel, exact: bool) -> None:
    if exact and not getattr(m, "exact_synthesis", False):
        raise ModelError(f"model '{_name(m)}' has no exact synthesis")


def coding_options(refine: int = 0, progress=None, exact: bool = False) -> dict:
    """The keyword arguments of a model's compress() for these options (only those in use: a model without
    refinement or exact synthesis takes neither)."""
    opts = {"refine": refine, "progress": progress} if refine else {}
    return {**opts, "exact": True} if exact else opts


def encode(image: Image.Image, model="bmshj2018-hyperprior", quality: int | None = None,
           reconstruct: bool = False, refine: int = 0, progress=None, exact: bool = False,
           metadata: str | frozenset = "none") -> Encoded:
    """``refine``: steps of encoder-side latent search (:mod:`lic.models.refine`): smaller files at the
    same quality for a much longer encode (README: 50 steps took about 20 s instead of 0.5 s for a Kodak photo on
    two CPU cores); decoding is unchanged.  ``exact``: a file whose decoded pixels are the same on every
    machine (:mod:`lic.layers.exact`), decoded in about 4x the time.  ``metadata``: the input's EXIF / XMP to
    keep ("none", "all", "exif", "xmp", "exif,xmp"; :mod:`lic.metadata`)."""
    keep = parse_keep(metadata)
    m = _resolve(model)
    q = m.default_quality if quality is None else int(quality)
    m.check_quality(q)
    check_refine(m, refine)
    check_exact(m, exact)
    p = prepare(image)
    h, w = p.rgb.shape[:2]
    with torch.inference_mode():
        comp = m.compress(to_tensor(p.rgb), q, reconstruct=reconstruct, **coding_options(refine, progress, exact))
    chunks = side_chunks(p, keep) + [Chunk(CHUNK_MODEL, c) for c in comp.chunks]
    header = Header(model=_name(m), digest=zoo.model_digest(m), width=w, height=h, mode=p.mode,
                    quality=q, n_chunks=len(chunks), params=comp.params)
    data = container.write(header, chunks)
    recon = None
    if reconstruct:
        recon = assemble(from_tensor(comp.x_hat), p.mode, p.alpha, p.icc, kept_meta(p, keep))
    return Encoded(data, recon, header, comp.extra.get("table_bits"))


def read_header(data: bytes) -> container.LicFile:
    return container.read(data)


def _model_for(header: Header, model=None, device=None) -> CompressionModel:
    if model is not None:
        m = _resolve(model, device)
    else:
        zoo.check_device(device)  # an unusable device is the first thing to say
        try:
            m = zoo.load_installed(header.model, device=device)
        except ModelError:
            raise ModelError(f"this file needs model '{header.model}', which is not installed "
                             f"(pass its weights with --model PATH)") from None
    digest = zoo.model_digest(m)
    if digest != header.digest:
        if model is not None and _name(m) != header.model:
            raise ModelError(f"this file was made with model '{header.model}' (weights {header.digest.hex()}), "
                             f"not with '{_name(m)}'")
        which = "installed" if model is None else "given"
        raise ModelError(f"this file was made with other weights of '{header.model}' (file {header.digest.hex()}, "
                         f"{which} {digest.hex()}); decode it with the same weights (--model PATH for a weights file)")
    return m


def count(n: int, unit: str) -> str:
    """'1 iteration', '3 layers' (``unit`` in the plural)."""
    return f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def truncation_note(f: container.LicFile, n: int, unit: str) -> str:
    """What a progressive file that is not complete decodes to, and whether it ends at a chunk boundary (a
    prefix, as ``head -c`` at a boundary makes) or inside a chunk (cut mid-way, or damaged)."""
    total = f.header.n_chunks - (len(f.chunks) - n)  # the data chunks of the complete file
    if f.partial:
        return f"truncated file: decoding the {count(n, 'complete ' + unit)} (it ends inside {unit[:-1]} {n + 1})"
    return f"truncated file: it ends after {n} of {count(total, unit)}, at a chunk boundary: decoding those"


@dataclass
class Decoded:
    image: Image.Image
    prefix: str | None = None  # progressive models: what was decoded, e.g. "4 iterations"


def decode(data: bytes, model=None, layers: int | None = None, device=None) -> Image.Image:
    """Decode a ``.lic`` file.  ``layers`` limits progressive models to their first K layers; ``device``: where
    the model named by the file runs its networks (:func:`lic.zoo.check_device`; the latents are the same on
    any device, the synthesized pixels of a file not written with ``exact`` may differ in their rounding)."""
    return decode_file(data, model=model, layers=layers, device=device).image


def decode_file(data: bytes, model=None, layers: int | None = None, device=None) -> Decoded:
    """:func:`decode`, also saying how many layers of a progressive file were decoded."""
    f = container.read(data)
    h = f.header
    m = _model_for(h, model, device)
    chunks = f.model_chunks()
    if f.truncated:
        if not m.progressive:
            raise FormatError("truncated .lic file: data chunks are missing")
        if chunks:  # with none complete the model refuses the file below, so no warning first
            warnings.warn(truncation_note(f, len(chunks), m.prefix_unit), stacklevel=2)
    if layers is not None:
        if not m.progressive:
            raise ModelError(f"model '{h.model}' is not progressive: --iterations/--layers do not apply")
        if layers < 1:
            raise ModelError(f"--iterations/--layers must be at least 1, got {layers}")
        if layers > len(chunks) and not f.truncated:  # a truncated file has warned already
            warnings.warn(f"--iterations/--layers {layers}: the file holds {count(len(chunks), m.prefix_unit)}; "
                          f"decoding all of them", stacklevel=2)
        chunks = chunks[:layers]
    alpha = None
    if h.mode in ("RGBA", "LA"):
        a = f.chunk(CHUNK_ALPHA)
        if a is None:
            raise FormatError("truncated .lic file: alpha chunk is missing")
        alpha = decode_alpha(a, h.width, h.height)
    icc = f.chunk(CHUNK_ICC)
    if icc is not None:
        icc = decode_icc(icc)
    meta = read_meta(f)
    with torch.inference_mode():
        x_hat = m.decompress(chunks, h.height, h.width, h.quality, h.params)
    prefix = count(len(chunks), m.prefix_unit) if m.progressive else None
    return Decoded(assemble(from_tensor(x_hat), h.mode, alpha, icc, meta), prefix)


def timed_round_trip(image: Image.Image, model, quality: int, **options) -> tuple[Encoded, Image.Image, float, float]:
    """Encode (``options`` as :func:`encode` takes them) and decode again: (encoded, decoded image, encode
    seconds, decode seconds), wall-clock; what evaluation and the benchmarks time."""
    t0 = time.perf_counter()
    enc = encode(image, model=model, quality=quality, **options)
    t1 = time.perf_counter()
    dec = decode(enc.data, model=model)
    return enc, dec, t1 - t0, time.perf_counter() - t1


def reference_rgb(image: Image.Image) -> np.ndarray:
    """The RGB planes lic codes for this image (for metrics against the decoded image)."""
    return prepare(image).rgb
