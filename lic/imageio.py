"""Images in and out: what lic codes, and how every input mode gets there.

Coded planes: 8-bit RGB, or 8-bit grayscale (coded through the RGB model as
three equal planes and returned as one).  An alpha plane is kept losslessly
beside them.  Other inputs are converted, with a warning when information is
lost:

==============================  ===========================================
input mode                      coded as
==============================  ===========================================
RGB, L                          as is
RGBA, LA, PA, P with alpha      RGB / L + lossless alpha chunk
P, CMYK, YCbCr, LAB, HSV        RGB
1 (bilevel)                     L
I;16*, I (16/32-bit), F         L, reduced to 8 bits (warning; 32-bit values
                                beyond 16 bits scaled by the bits they use)
I;16*, I with a transparent     LA (the transparent level becomes a
grey level                      lossless alpha plane)
RGB / L with a transparent      RGBA / LA (the PNG/GIF ``transparency``
colour                          entry becomes a lossless alpha plane)
==============================  ===========================================

EXIF orientation is applied before coding, so the decoded image is upright.
An embedded ICC colour profile travels with the file (and comes back in
``image.info["icc_profile"]``) when it describes the coded planes: an RGB
profile on RGB / RGBA / palette input, a gray one on grayscale input.  A
profile named sRGB is not stored (decoders assume sRGB without one).  A
profile of another colour space (CMYK, Lab) no longer applies after
conversion and is dropped with a warning.  EXIF and XMP metadata travel
only when asked for (:mod:`lic.metadata`).  Of a multi-frame file
(animation, multi-page TIFF) the first frame is coded, with a warning.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import formats, metadata
from .container import MAX_PIXELS
from .errors import FormatError, InputError

formats.register()  # HEIC and JPEG XL inputs where their plugins are installed

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # accept large photos; still refuses decompression bombs beyond this


@dataclass
class Prepared:
    rgb: np.ndarray  # H×W×3 uint8
    mode: str  # "L", "RGB", "LA" or "RGBA": the mode decoding gives back
    alpha: np.ndarray | None  # H×W uint8 or None
    icc: bytes | None = None  # ICC profile of the coded planes, kept verbatim
    meta: dict[str, bytes] = field(default_factory=dict)  # the input's EXIF / XMP (lic.metadata.extract)


def read_image(path: str | Path) -> Image.Image:
    """Open an image file fully (so that the file is closed afterwards), with EXIF orientation applied."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return _open_image(path, str(path), path.name)


def read_image_bytes(data: bytes, label: str = "stdin") -> Image.Image:
    """The same as :func:`read_image` for the bytes of an image file (e.g. read from standard input);
    ``label`` names them in errors and warnings."""
    if not data:
        raise InputError(f"{label}: empty input")
    return _open_image(io.BytesIO(data), label, label)


def _open_image(source, label: str, short: str) -> Image.Image:
    try:
        with warnings.catch_warnings():  # Pillow warns of images above MAX_IMAGE_PIXELS: refused before decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(source)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"{label}: more than {MAX_PIXELS:,} pixels, the most lic codes") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _unreadable(source, label, exc) from None
    try:
        with opened as im:
            deep = any(";16" in str(getattr(t, "args", t[3] if len(t) > 3 else "")) for t in (im.tile or []))
            frames = getattr(im, "n_frames", 1)
            im.load()
            if frames > 1:
                warnings.warn(f"{short}: {frames} frames; only the first is coded", stacklevel=3)
            if deep and im.mode in ("RGB", "RGBA"):
                warnings.warn(f"{short}: 16-bit per channel image reduced to 8 bits", stacklevel=3)
            im = ImageOps.exif_transpose(im)
            im.info[SOURCE_KEY] = short  # names the file in the warnings of prepare()
            return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _unreadable(source, label, exc) from None


def _unreadable(source, label: str, exc: Exception) -> InputError:
    why = str(exc) if isinstance(source, (str, Path)) else str(exc).replace(repr(source), "the data")
    plugin = formats.missing_plugin(_head(source))
    if plugin:
        return InputError(f"{label}: not a readable image (its format needs the {plugin} package: "
                          f"pip install {plugin})")
    return InputError(f"{label}: not a readable image ({exc.__class__.__name__}: {why})")


def _head(source, n: int = 16) -> bytes:
    """The first bytes of a file (path or stream), b"" when they cannot be read."""
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as f:
                return f.read(n)
        source.seek(0)
        return source.read(n)
    except (OSError, ValueError):
        return b""


SOURCE_KEY = "lic.source"  # Image.info key: the name of the file an image was read from


def _to_8bit(im: Image.Image) -> np.ndarray:
    a = np.asarray(im)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        lo, hi = (0.0, 1.0) if float(np.nanmax(a, initial=0)) <= 1.0 else (0.0, 255.0)
        return np.clip(np.round((a - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    maxval = _int_range(im.mode, a)
    return np.clip(np.round(a * (255.0 / maxval)), 0, 255).astype(np.uint8)


def _int_range(mode: str, a: np.ndarray) -> int:
    """The white level of integer pixels: 255 for values that fit 8 bits, 65535 for 16-bit images and values up
    to that, else the all-ones value of the bits the largest value needs (2**18 - 1 for values up to 245,000):
    pixels are scaled, never clipped."""
    top = int(a.max(initial=0))
    if top <= 255 and not mode.startswith("I;16"):
        return 255
    return max(65535, (1 << top.bit_length()) - 1)


def prepare(im: Image.Image) -> Prepared:
    """Convert any Pillow image into what lic codes (see module docstring)."""
    if not isinstance(im, Image.Image):
        raise InputError("expected a PIL image")
    w, h = im.size
    if w < 1 or h < 1:
        raise InputError("image has no pixels")
    if w * h > MAX_PIXELS:
        raise InputError(f"image of {w}x{h} pixels: lic codes at most {MAX_PIXELS:,} pixels (cut it into parts)")
    mode = source_mode = im.mode
    icc = im.info.get("icc_profile") or None
    meta = metadata.extract(im.info)
    if mode in ("RGB", "L", "P") and "transparency" in im.info:  # a transparent colour: alpha plane
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode == "P":
        im = im.convert("RGB")
    elif mode in ("PA", "RGBa", "La"):
        im = im.convert("LA" if mode == "La" else "RGBA")
    mode = im.mode
    if mode == "RGB":
        p = Prepared(np.asarray(im, dtype=np.uint8), "RGB", None)
    elif mode == "RGBA":
        a = np.asarray(im, dtype=np.uint8)
        p = Prepared(np.ascontiguousarray(a[..., :3]), "RGBA", np.ascontiguousarray(a[..., 3]))
    elif mode == "LA":
        a = np.asarray(im, dtype=np.uint8)
        p = Prepared(np.repeat(a[..., :1], 3, axis=2), "LA", np.ascontiguousarray(a[..., 1]))
    elif mode in ("L", "1"):
        g = np.asarray(im.convert("L"), dtype=np.uint8)
        p = Prepared(np.repeat(g[..., None], 3, axis=2), "L", None)
    elif mode.startswith("I") or mode == "F":
        scale = ""
        if mode == "I":
            white = _int_range(mode, np.asarray(im))
            scale = f", 0..{white:,} scaled to 0..255" if white > 65535 else ""
        source = f"{im.info[SOURCE_KEY]}: " if im.info.get(SOURCE_KEY) else ""
        warnings.warn(f"{source}{mode} image ({'16' if ';16' in mode else '32'}-bit) reduced to 8 bits{scale}",
                      stacklevel=2)
        g = _to_8bit(im)
        trns = im.info.get("transparency")
        if isinstance(trns, int) and not isinstance(trns, bool) and mode != "F":  # a transparent grey level
            alpha = np.where(np.asarray(im) == trns, 0, 255).astype(np.uint8)
            p = Prepared(np.repeat(g[..., None], 3, axis=2), "LA", alpha)
        else:
            p = Prepared(np.repeat(g[..., None], 3, axis=2), "L", None)
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        p = Prepared(np.asarray(im.convert("RGB"), dtype=np.uint8), "RGB", None)
    else:
        raise InputError(f"unsupported image mode {mode}")
    p.icc = _matching_icc(icc, source_mode, p.mode)
    p.meta = meta
    return p


def icc_space(icc: bytes) -> str:
    """The data colour space an ICC profile describes ('RGB', 'GRAY', 'CMYK', 'Lab', ...), from its header;
    '' when ``icc`` is not a profile."""
    if len(icc) < 132 or icc[36:40] != b"acsp":
        return ""
    return icc[16:20].decode("latin-1").strip()


def icc_description(icc: bytes) -> str:
    """The profile's description tag ('desc': ICC v2 text or v4 multi-language), '' when absent."""
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        for i in range(min(count, 256)):  # tag table: signature, offset, size
            sig, off, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if sig != b"desc":
                continue
            tag = icc[off:off + size]
            if tag[:4] == b"desc":  # v2: ASCII count (with NUL), then the text
                (n,) = struct.unpack_from(">I", tag, 8)
                return tag[12:12 + n].split(b"\0")[0].decode("latin-1")
            if tag[:4] == b"mluc":  # v4: the first record's UTF-16BE text
                n, o = struct.unpack_from(">II", tag, 20)
                return tag[o:o + n].decode("utf-16-be", "replace")
    except struct.error:
        pass
    return ""


def _matching_icc(icc: bytes | None, source_mode: str, coded_mode: str) -> bytes | None:
    """The profile to keep: one that describes the coded planes and is not plain sRGB (the default)."""
    if not icc:
        return None
    space = icc_space(icc)
    # the space the coded planes are in, when conversion kept the input's own colours
    kept = "RGB" if source_mode in ("RGB", "RGBA", "RGBa", "P", "PA") else "GRAY" if coded_mode in ("L", "LA") else None
    if space != kept:
        warnings.warn(f"ICC profile ({space or 'unreadable'}) of the {source_mode} input does not describe "
                      f"the coded {coded_mode} planes; dropped, colours converted without it", stacklevel=3)
        return None
    if space == "RGB" and icc_description(icc).startswith("sRGB"):
        return None  # what a decoder assumes without a profile: not worth its bytes
    return bytes(icc)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> H×W×3 uint8, rounding half up (deterministic)."""
    a = torch.floor(x.detach().cpu().clamp(0, 1)[0] * 255.0 + 0.5).to(torch.uint8)
    return a.permute(1, 2, 0).contiguous().numpy()


def assemble(rgb: np.ndarray, mode: str, alpha: np.ndarray | None, icc: bytes | None = None,
             meta: dict[str, bytes] | None = None) -> Image.Image:
    """Decoded planes -> a Pillow image in the original mode (with its ICC profile, if one was kept, and the
    EXIF / XMP metadata in ``meta`` as ``info["exif"]`` / ``info["xmp"]``)."""
    if mode in ("L", "LA"):
        g = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        im = Image.fromarray(g, "L") if mode == "L" else Image.fromarray(np.stack([g, alpha], axis=2), "LA")
    elif mode == "RGBA":
        im = Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=2), "RGBA")
    else:
        im = Image.fromarray(rgb, "RGB")
    if icc:
        im.info["icc_profile"] = icc
    im.info.update(meta or {})
    return im


def encode_icc(icc: bytes) -> bytes:
    return metadata.pack(icc)


def decode_icc(data: bytes) -> bytes:
    icc = metadata.unpack(data, "ICC profile")  # ICC profiles are kilobytes, a few MB at most
    if not icc_space(icc):
        raise FormatError("corrupt .lic file: ICC profile chunk is not valid")
    return icc


def encode_alpha(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():  # a PNG's size is checked from its header, before it is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            if im.size != (width, height):
                raise FormatError("corrupt .lic file: alpha plane has the wrong size")
            a = np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise FormatError("corrupt .lic file: alpha chunk is not valid") from None
    if a.shape != (height, width):
        raise FormatError("corrupt .lic file: alpha plane has the wrong size")
    return a
