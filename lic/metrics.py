"""Image quality metrics on 8-bit RGB images (numpy uint8, H×W×3 or H×W).

PSNR is computed over all RGB samples together (the convention of the
CompressAI and tensorflow-compression Kodak results).  MS-SSIM uses
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


def ms_ssim(a, b) -> float:
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _as_array(a), _as_array(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < 161:
        return math.nan
    ta = torch.from_numpy(a.astype(np.float32)).reshape(a.shape[0], a.shape[1], -1).permute(2, 0, 1)[None]
    tb = torch.from_numpy(b.astype(np.float32)).reshape(b.shape[0], b.shape[1], -1).permute(2, 0, 1)[None]
    return float(_ms_ssim(ta, tb, data_range=255.0, size_average=True))


def ms_ssim_db(v: float) -> float:
    """MS-SSIM on a dB scale, −10·log10(1 − MS-SSIM)."""
    return math.inf if v >= 1 else -10 * math.log10(1 - v)
