"""Image quality metrics on 8-bit RGB images (numpy uint8, H×W×3 or H×W).

PSNR is computed over all RGB samples together (the convention of the
CompressAI and tensorflow-compression Kodak results); :func:`psnr_ycbcr` gives it per
Y / Cb / Cr plane (JFIF full-range BT.601) and :func:`chroma_ratio` how much of the
original's colour a decoded image keeps.  MS-SSIM uses
pytorch-msssim with the standard 5 scales and 11×11 Gaussian window on the
0..255 range; it is undefined (NaN) for images with a side below 161 pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _as_array(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise TypeError("metrics expect 8-bit images")
    return a


def mse(a, b) -> float:
    a, b = _as_array(a).astype(np.float64), _as_array(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.mean((a - b) ** 2))


def psnr(a, b) -> float:
    m = mse(a, b)
    return math.inf if m == 0 else 10 * math.log10(255.0 ** 2 / m)


MS_SSIM_MIN_SIDE = 161  # five scales of an 11-tap window: shorter sides give NaN (not measured)


def ms_ssim(a, b) -> float:
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _as_array(a), _as_array(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    ta = torch.from_numpy(a.astype(np.float32)).reshape(a.shape[0], a.shape[1], -1).permute(2, 0, 1)[None]
    tb = torch.from_numpy(b.astype(np.float32)).reshape(b.shape[0], b.shape[1], -1).permute(2, 0, 1)[None]
    return float(_ms_ssim(ta, tb, data_range=255.0, size_average=True))


def ms_ssim_db(v: float) -> float:
    """MS-SSIM on a dB scale, −10·log10(1 − MS-SSIM)."""
    return math.inf if v >= 1 else -10 * math.log10(1 - v)


#: JFIF (full-range BT.601) RGB → Y, Cb, Cr rows; Cb and Cr are offset by 128 after the product
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _rgb64(a) -> np.ndarray:
    """An 8-bit H×W×3 RGB image as float64."""
    a = _as_array(a)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {a.shape}")
    return a.astype(np.float64)


def _ycbcr(a) -> np.ndarray:
    """H×W×3 float64 Y, Cb − 128, Cr − 128 of an 8-bit RGB image (no rounding)."""
    return _rgb64(a) @ YCBCR.T


def psnr_ycbcr(a, b) -> tuple[float, float, float]:
    """PSNR of the Y, Cb and Cr planes (dB, peak 255), computed without rounding to 8 bits."""
    ya, yb = _ycbcr(a), _ycbcr(b)
    if ya.shape != yb.shape:
        raise ValueError(f"shape mismatch {ya.shape} vs {yb.shape}")
    m = ((ya - yb) ** 2).reshape(-1, 3).mean(axis=0)
    return tuple(math.inf if v == 0 else 10 * math.log10(255.0 ** 2 / v) for v in m)


def _chroma_ratio(ref: np.ndarray, dec: np.ndarray) -> float:
    """Mean √(Cb'² + Cr'²) of ``dec`` over that of ``ref`` (…×3 RGB arrays on any one scale)."""
    if ref.shape != dec.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {dec.shape}")
    r, d = ref @ YCBCR[1:].T, dec @ YCBCR[1:].T
    cr = np.hypot(r[..., 0], r[..., 1]).mean()
    return math.nan if cr < 1e-9 else float(np.hypot(d[..., 0], d[..., 1]).mean() / cr)


def chroma_ratio(ref, dec) -> float:
    """Mean chroma magnitude √(Cb'² + Cr'²) of ``dec`` over that of ``ref``: 1 keeps the colour
    strength, 0 is a grey image, above 1 is over-saturated (NaN when ``ref`` itself is grey)."""
    return _chroma_ratio(_rgb64(ref), _rgb64(dec))


def chroma_ratio_batch(ref: torch.Tensor, dec: torch.Tensor) -> float:
    """:func:`chroma_ratio` of float N×3×H×W batches in [0, 1] (``lic train`` logs it per logged step)."""
    as_rgb = lambda t: t.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).double().numpy()
    return _chroma_ratio(as_rgb(ref), as_rgb(dec))
