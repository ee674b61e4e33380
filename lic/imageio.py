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
I;16*, I (16/32-bit), F         L, reduced to 8 bits (warning)
==============================  ===========================================

EXIF orientation is applied before coding, so the decoded image is upright.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

Image.MAX_IMAGE_PIXELS = 1 << 30  # accept large photos; still refuses decompression bombs beyond this


@dataclass
class Prepared:
    rgb: np.ndarray  # H×W×3 uint8
    mode: str  # "L", "RGB", "LA" or "RGBA": the mode decoding gives back
    alpha: np.ndarray | None  # H×W uint8 or None


def read_image(path: str | Path) -> Image.Image:
    """Open an image file fully (so that the file is closed afterwards), with EXIF orientation applied."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            deep = any(";16" in str(getattr(t, "args", t[3] if len(t) > 3 else "")) for t in (im.tile or []))
            im.load()
            if deep and im.mode in ("RGB", "RGBA"):
                warnings.warn(f"{path.name}: 16-bit per channel image reduced to 8 bits", stacklevel=2)
            im = ImageOps.exif_transpose(im)
            return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: {exc}") from None


def _to_8bit(im: Image.Image) -> np.ndarray:
    a = np.asarray(im)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        lo, hi = (0.0, 1.0) if float(np.nanmax(a, initial=0)) <= 1.0 else (0.0, 255.0)
        return np.clip(np.round((a - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    maxval = 65535 if a.max(initial=0) > 255 or im.mode.startswith("I;16") else 255
    return np.clip(np.round(a * (255.0 / maxval)), 0, 255).astype(np.uint8)


def prepare(im: Image.Image) -> Prepared:
    """Convert any Pillow image into what lic codes (see module docstring)."""
    if not isinstance(im, Image.Image):
        raise InputError("expected a PIL image")
    w, h = im.size
    if w < 1 or h < 1:
        raise InputError("image has no pixels")
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    elif mode == "PA":
        im, mode = im.convert("RGBA"), "RGBA"
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
        mode = im.mode
    if mode == "RGB":
        return Prepared(np.asarray(im, dtype=np.uint8), "RGB", None)
    if mode == "RGBA":
        a = np.asarray(im, dtype=np.uint8)
        return Prepared(np.ascontiguousarray(a[..., :3]), "RGBA", np.ascontiguousarray(a[..., 3]))
    if mode == "LA":
        a = np.asarray(im, dtype=np.uint8)
        return Prepared(np.repeat(a[..., :1], 3, axis=2), "LA", np.ascontiguousarray(a[..., 1]))
    if mode in ("L", "1"):
        g = np.asarray(im.convert("L"), dtype=np.uint8)
        return Prepared(np.repeat(g[..., None], 3, axis=2), "L", None)
    if mode.startswith("I") or mode == "F":
        warnings.warn(f"{mode} image ({'16' if ';16' in mode else '32'}-bit) reduced to 8 bits", stacklevel=2)
        g = _to_8bit(im)
        return Prepared(np.repeat(g[..., None], 3, axis=2), "L", None)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return Prepared(np.asarray(im.convert("RGB"), dtype=np.uint8), "RGB", None)
    raise InputError(f"unsupported image mode {mode}")


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> H×W×3 uint8, rounding half up (deterministic)."""
    a = torch.floor(x.detach().cpu().clamp(0, 1)[0] * 255.0 + 0.5).to(torch.uint8)
    return a.permute(1, 2, 0).contiguous().numpy()


def assemble(rgb: np.ndarray, mode: str, alpha: np.ndarray | None) -> Image.Image:
    """Decoded planes -> a Pillow image in the original mode."""
    if mode in ("L", "LA"):
        g = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        if mode == "L":
            return Image.fromarray(g, "L")
        return Image.fromarray(np.stack([g, alpha], axis=2), "LA")
    if mode == "RGBA":
        return Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=2), "RGBA")
    return Image.fromarray(rgb, "RGB")


def encode_alpha(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    from .errors import FormatError

    try:
        with Image.open(io.BytesIO(data)) as im:
            a = np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError):
        raise FormatError("corrupt .lic file: alpha chunk is not valid") from None
    if a.shape != (height, width):
        raise FormatError("corrupt .lic file: alpha plane has the wrong size")
    return a
