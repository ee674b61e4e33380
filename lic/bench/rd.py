"""``lic rd RESULTS_DIR``: BD-rate / BD-metric table against an anchor, AUC, and RD plots.

For every codec (measured, plus published ones with ``--published``) against the anchor:
BD-rate and BD-metric with the cubic fit and with PCHIP, the quality interval the BD-rate was
integrated over, the bpp interval of the BD-metric, and the mean quality over a stated bpp
range (AUC / width, see :func:`bdrate.auc`).  The table is printed and written as
``bdrate.csv`` and ``bdrate.md``; plots ``rd_psnr``, ``rd_msssim``, ``rd_psnrhvs`` as PNG + SVG.
"""

from __future__ import annotations

import csv
import fnmatch
import math
from pathlib import Path
from typing import Callable

from ..errors import InputError, OutputError
from . import bdrate
from .results import METRICS, Curve, find_curve, load_published, load_results, merge

COLUMNS = [
    "codec", "source", "points", "bd_rate_cubic_pct", "bd_rate_pchip_pct", "bd_metric_cubic", "bd_metric_pchip",
    "metric_lo", "metric_hi", "bpp_lo", "bpp_hi", "auc_mean", "note",
]
PLOTS = ("psnr", "msssim", "psnrhvs")


def select(curves: dict[str, Curve], patterns: str | None, keep: str | None = None) -> dict[str, Curve]:
    """Curves whose name matches one of the comma-separated glob ``patterns`` (plus ``keep``)."""
    if not patterns:
        return curves
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    if pats and not any(fnmatch.fnmatchcase(n, p) for n in curves for p in pats):  # a typo: say so, not a bare table
        raise InputError(f"--only {patterns} matches no codec (there are: {', '.join(curves)})")
    return {n: c for n, c in curves.items() if n == keep or any(fnmatch.fnmatchcase(n, p) for p in pats)}


def default_anchor(curves: dict[str, Curve]) -> str:
    if "jpeg" in curves:
        return "jpeg"
    measured = [n for n, c in curves.items() if c.source == "measured"]
    return (measured or list(curves))[0]


def _bd_row(anchor: Curve, c: Curve, column: str, auc_range: tuple[float, float]) -> dict:
    ra, qa = anchor.xy(column)
    rt, qt = c.xy(column)
    row = {"codec": c.name, "source": c.source, "points": len(rt), "note": ""}
    notes = []
    for method in bdrate.METHODS:
        try:
            r = bdrate.bd_rate(ra, qa, rt, qt, method)
            m = bdrate.bd_metric(ra, qa, rt, qt, method)
            row[f"bd_rate_{method}_pct"], row[f"bd_metric_{method}"] = r.value, m.value
            row.update(metric_lo=r.lo, metric_hi=r.hi, bpp_lo=m.lo, bpp_hi=m.hi)
        except ValueError as e:
            row[f"bd_rate_{method}_pct"] = row[f"bd_metric_{method}"] = math.nan
            notes.append(f"{method}: {e}")
    for k in ("metric_lo", "metric_hi", "bpp_lo", "bpp_hi"):
        row.setdefault(k, math.nan)
    row["auc_mean"] = bdrate.auc(rt, qt, *auc_range).mean if len(rt) else math.nan
    if c.name == anchor.name:
        notes = ["anchor"]
    row["note"] = "; ".join(dict.fromkeys(notes))
    return row


def rd_table(curves: dict[str, Curve], anchor_name: str, metric: str, auc_range=(0.25, 1.0)) -> tuple[Curve, list[dict]]:
    """(anchor, rows): the anchor's row first, then every other curve that has the metric."""
    column = METRICS[metric][0]
    anchor = find_curve(curves, anchor_name)
    if not anchor.has(column):
        small = {"msssim": "MS-SSIM needs images of at least 161 px on the short side",
                 "psnrhvs": "PSNR-HVS needs images of at least 8x8 px", "psnrhvsm": "PSNR-HVS-M needs images of "
                 "at least 8x8 px", "psnr": "every image was coded without loss"}
        why = f" ({small[metric]})" if metric in small else ""
        raise InputError(f"anchor {anchor.name!r} has no {metric} values{why}")
    others = [c for c in curves.values() if c.name != anchor.name and c.has(column)]
    return anchor, [_bd_row(anchor, c, column, auc_range) for c in [anchor, *others]]


def _cell(v, digits=2) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def _display(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["codec", "pts", "BD-rate cubic", "BD-rate pchip", "BD-metric cubic", "BD-metric pchip",
            "metric range", "bpp range", "mean quality (AUC)", "note"]
    body = []
    for r in rows:
        body.append([
            r["codec"] + (" *" if r["source"] == "published" else ""),
            str(r["points"]),
            _cell(r["bd_rate_cubic_pct"]) + " %", _cell(r["bd_rate_pchip_pct"]) + " %",
            _cell(r["bd_metric_cubic"], 3), _cell(r["bd_metric_pchip"], 3),
            f"{_cell(r['metric_lo'])}–{_cell(r['metric_hi'])}", f"{_cell(r['bpp_lo'], 3)}–{_cell(r['bpp_hi'], 3)}",
            _cell(r["auc_mean"]), r["note"],
        ])
    return head, body


def caption(anchor: Curve, metric: str, auc_range) -> str:
    label = METRICS[metric][1]
    return (
        f"Anchor: {anchor.name}. Metric: {label}. BD-rate < 0 and BD-metric > 0 mean better than the anchor. "
        f"BD-rate integrates over the metric range shown, BD-metric over the bpp range shown. "
        f"Mean quality = area under the {label} curve over [{auc_range[0]}, {auc_range[1]}] bpp "
        f"(PCHIP) divided by the width; n/a where a curve does not span it. * = published results."
    )


def format_text(rows: list[dict]) -> str:
    head, body = _display(rows)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def format_markdown(rows: list[dict], anchor: Curve, metric: str, auc_range) -> str:
    head, body = _display(rows)
    lines = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    lines += [f"| {' | '.join(r)} |" for r in body]
    return "\n".join(lines) + "\n\n" + caption(anchor, metric, auc_range) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})


def gather(results_dir, published: str | None, only: str | None, anchor: str | None) -> tuple[dict[str, Curve], dict, str]:
    """Measured (+ published) curves after ``--only``, the meta block, and the anchor name."""
    curves, meta = load_results(results_dir)
    if published:
        curves = merge(curves, load_published(published))
    if not curves:
        raise InputError(f"{results_dir}: no codec measured yet (run 'lic bench ... --out {results_dir}')")
    anchor_name = find_curve(curves, anchor).name if anchor else default_anchor(curves)
    return select(curves, only, keep=anchor_name), meta, anchor_name


def parse_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"bad bpp range {text!r}: expected LO,HI such as 0.25,1.0") from None
    if not 0 <= lo < hi:
        raise InputError(f"bad bpp range {text!r}: need 0 <= LO < HI")
    return lo, hi


def run_rd(results_dir, anchor=None, metric="psnr", published=None, out=None, only=None,
           auc_range=(0.25, 1.0), log: Callable[[str], None] = print, plots=PLOTS) -> list[Path]:
    """The ``lic rd`` command; returns the files written.  ``plots``: which of PLOTS to draw."""
    from .plots import rd_figure, save_figure

    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    out = Path(out) if out else Path(results_dir) / "rd"
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out must be a folder: {out} is a file")
    curves, meta, anchor_name = gather(results_dir, published, only, anchor)
    anchor_curve, rows = rd_table(curves, anchor_name, metric, auc_range)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out}: {e.strerror or e}") from None

    log(format_text(rows))
    log(caption(anchor_curve, metric, auc_range))
    n = {p.get("n") for c in curves.values() if c.source == "measured" for p in c.points}
    if len(n) > 1:
        log(f"note: measured points average different numbers of images ({sorted(n)}); finish the run for a fair table")
    written = [out / "bdrate.csv", out / "bdrate.md"]
    write_csv(rows, written[0])
    written[1].write_text(format_markdown(rows, anchor_curve, metric, auc_range))

    n_img = meta.get("n_images")
    where = f"{Path(meta.get('images_dir', '')).name or 'images'}, {n_img} images:" if n_img else ""
    for m in plots:
        column, label = METRICS[m]
        if not any(c.has(column) for c in curves.values()):
            continue
        fig = rd_figure(list(curves.values()), column, label, f"{where} {label} vs rate".strip(), anchor_name)
        written += save_figure(fig, out / f"rd_{m}")
    log("wrote " + ", ".join(str(p) for p in written))
    return written
