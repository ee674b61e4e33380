"""Bjøntegaard deltas and the area under an RD curve.

BD-rate (VCEG-M33, Bjøntegaard 2001): express log-rate as a function of quality for the anchor
and the test codec, integrate both over the quality interval where the two curves overlap, and
turn the mean log-rate difference into a percentage: ``exp(mean Δ log R) − 1``.  Negative means
the test codec needs fewer bits than the anchor for the same quality.

BD-metric (BD-PSNR, BD-MS-SSIM-dB, ...): the same with quality as a function of log-rate,
integrated over the overlapping log-rate interval; positive means better quality at equal rate.

Two interpolations:

* ``"cubic"`` — the original least-squares cubic polynomial through all points (needs ≥ 4);
* ``"pchip"`` — piecewise cubic Hermite interpolation (scipy ``PchipInterpolator``), the
  variant of later VCEG/JVET practice, which passes through every point and does not
  overshoot; it needs ≥ 2 points.  Its integral is exact (piecewise polynomial).

Every result carries the interval actually used, because a BD number means little without it.
The AUC helper integrates quality over a stated bpp interval on a PCHIP interpolation of
quality vs. bpp (linear rate); it refuses to extrapolate and returns NaN for a curve that does
not span the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METHODS = ("cubic", "pchip")


@dataclass(frozen=True)
class BDResult:
    """``value`` (% for BD-rate, metric units for BD-metric) over ``[lo, hi]``.

    For BD-rate the interval is in quality units; for BD-metric it is in bpp.
    """

    value: float
    lo: float
    hi: float
    method: str


def _curve(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by ``x``, duplicate ``x`` merged (mean ``y``)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError("rate and quality must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    ux = np.unique(x)
    uy = np.array([y[x == v].mean() for v in ux])
    return ux, uy


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """∫ y(x) dx over [lo, hi] with y interpolated from the points (x, y) by ``method``."""
    if method == "cubic":
        if len(x) < 4:
            raise ValueError(f"cubic fit needs at least 4 distinct points, got {len(x)}")
        p = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(p, hi) - np.polyval(p, lo))
    if method == "pchip":
        if len(x) < 2:
            raise ValueError(f"PCHIP needs at least 2 distinct points, got {len(x)}")
        from scipy.interpolate import PchipInterpolator

        return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
    raise ValueError(f"unknown method {method!r}; use one of {METHODS}")


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if not hi > lo:
        raise ValueError(f"the two curves do not overlap in {what}")
    return float(lo), float(hi)


def bd_rate(anchor_rate, anchor_q, test_rate, test_q, method: str = "pchip") -> BDResult:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent."""
    qa, la = _curve(anchor_q, np.log(np.asarray(anchor_rate, dtype=np.float64)))
    qt, lt = _curve(test_q, np.log(np.asarray(test_rate, dtype=np.float64)))
    lo, hi = _overlap(qa, qt, "quality")
    diff = (_integral(qt, lt, lo, hi, method) - _integral(qa, la, lo, hi, method)) / (hi - lo)
    return BDResult(100.0 * math.expm1(diff), lo, hi, method)


def bd_metric(anchor_rate, anchor_q, test_rate, test_q, method: str = "pchip") -> BDResult:
    """Bjøntegaard delta quality (e.g. BD-PSNR in dB) of the test curve against the anchor."""
    la, qa = _curve(np.log(np.asarray(anchor_rate, dtype=np.float64)), anchor_q)
    lt, qt = _curve(np.log(np.asarray(test_rate, dtype=np.float64)), test_q)
    lo, hi = _overlap(la, lt, "rate")
    diff = (_integral(lt, qt, lo, hi, method) - _integral(la, qa, lo, hi, method)) / (hi - lo)
    return BDResult(diff, math.exp(lo), math.exp(hi), method)


@dataclass(frozen=True)
class AUC:
    """Area under quality(bpp) over ``[lo, hi]`` bpp, and that area divided by ``hi − lo``."""

    area: float
    mean: float
    lo: float
    hi: float


def auc(rate, quality, lo: float, hi: float) -> AUC:
    """AUC of the RD curve over [lo, hi] bpp (PCHIP in linear bpp); NaN if the curve does not span it."""
    if not hi > lo:
        raise ValueError(f"empty bpp range [{lo}, {hi}]")
    x, y = _curve(rate, quality)
    if len(x) < 2 or x[0] > lo or x[-1] < hi:
        return AUC(math.nan, math.nan, lo, hi)
    area = _integral(x, y, lo, hi, "pchip")
    return AUC(area, area / (hi - lo), lo, hi)
