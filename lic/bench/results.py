"""RD curves read back from a results folder or from a published-results CSV.

A :class:`Curve` is one codec's list of RD points (mean bpp and mean quality per setting).
Measured curves come from ``summary.json`` (written by :mod:`.runner`); published curves come
from a CSV with at least ``codec`` and ``bpp`` columns plus any of ``psnr``, ``ms_ssim``,
``ms_ssim_db``, ``psnr_hvs``, ``psnr_hvsm`` (the format of ``shared/anchors/kodak_rd.csv``;
``quality`` or ``setting`` label the points when present).  A published codec whose name is
also a measured one is renamed ``NAME (published)``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .runner import SUMMARY_NAME

#: ``--metric`` choice → (column, axis label)
METRICS = {
    "psnr": ("psnr", "PSNR RGB [dB]"),
    "msssim": ("ms_ssim_db", "MS-SSIM RGB [dB]"),
    "psnrhvs": ("psnr_hvs", "PSNR-HVS luma [dB]"),
    "psnrhvsm": ("psnr_hvsm", "PSNR-HVS-M luma [dB]"),
}
_QUALITY_COLUMNS = ("psnr", "ms_ssim", "ms_ssim_db", "psnr_hvs", "psnr_hvsm")


@dataclass
class Curve:
    name: str
    source: str  # "measured" or "published"
    points: list[dict] = field(default_factory=list)  # bpp, label, n, quality columns

    def xy(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(bpp, quality) of the points whose ``column`` is a finite number, by increasing bpp."""
        pts = [(p["bpp"], p.get(column)) for p in self.points]
        pts = sorted((b, q) for b, q in pts if _finite(b) and _finite(q) and b > 0)
        return np.array([b for b, _ in pts]), np.array([q for _, q in pts])

    def has(self, column: str) -> bool:
        return len(self.xy(column)[0]) > 0


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _db(ms_ssim):
    return -10 * math.log10(1 - ms_ssim) if _finite(ms_ssim) and ms_ssim < 1 else None


def load_results(results_dir: str | Path) -> tuple[dict[str, Curve], dict]:
    """Measured curves of a ``lic bench`` output folder, and its ``meta`` block."""
    results_dir = Path(results_dir)
    path = results_dir / SUMMARY_NAME
    if not results_dir.is_dir():
        raise InputError(f"{results_dir}: not a directory")
    if not path.exists():
        raise InputError(f"{results_dir}: no {SUMMARY_NAME} (run 'lic bench ... --out {results_dir}' first)")
    try:
        summary = json.loads(path.read_text())  # UnicodeDecodeError is a ValueError
        codecs = summary["codecs"]
        curves = {}
        for name, points in codecs.items():
            pts = [{**p, "label": p.get("setting", "")} for p in points]
            curves[name] = Curve(name, "measured", pts)
        meta = summary.get("meta", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # not JSON, or not of this shape
        raise InputError(f"{path}: not a lic bench summary ({e.__class__.__name__}: {e})") from None
    return curves, meta


def _num(text: str | None):
    if text is None or text.strip() == "" or text.strip().lower() in ("n/a", "na", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def load_published(csv_path: str | Path) -> dict[str, Curve]:
    """Curves of a published-results CSV (see the module docstring)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: no such file")
    try:
        return _read_published(csv_path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{csv_path}: not a CSV file of RD points ({e.__class__.__name__})") from None


def _read_published(csv_path: Path) -> dict[str, Curve]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"codec", "bpp"} <= cols or not cols & set(_QUALITY_COLUMNS):
            raise InputError(f"{csv_path}: needs columns codec, bpp and one of {', '.join(_QUALITY_COLUMNS)}")
        curves: dict[str, Curve] = {}
        for row in reader:
            bpp = _num(row.get("bpp"))
            if bpp is None:
                continue
            p = {"bpp": bpp, "label": row.get("quality") or row.get("setting") or "", "n": None}
            for c in _QUALITY_COLUMNS:
                p[c] = _num(row.get(c))
            if p["ms_ssim_db"] is None:
                p["ms_ssim_db"] = _db(p["ms_ssim"])
            curves.setdefault(row["codec"], Curve(row["codec"], "published")).points.append(p)
    if not curves:
        raise InputError(f"{csv_path}: no RD points")
    return curves


def merge(measured: dict[str, Curve], published: dict[str, Curve]) -> dict[str, Curve]:
    out = dict(measured)
    for name, c in published.items():
        if name in out:
            name = f"{name} (published)"
            c = Curve(name, c.source, c.points)
        out[name] = c
    return out


def find_curve(curves: dict[str, Curve], name: str) -> Curve:
    """Exact name, else the only name starting with ``name``; otherwise a clear InputError."""
    if name in curves:
        return curves[name]
    matches = [n for n in curves if n.startswith(name)]
    if len(matches) == 1:
        return curves[matches[0]]
    if matches:
        raise InputError(f"anchor {name!r} is ambiguous: {', '.join(matches)}")
    raise InputError(f"no codec {name!r} in the results; have: {', '.join(curves)}")
