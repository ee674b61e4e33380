"""``lic report RESULTS_DIR -o report.html``: one self-contained HTML page.

Everything is inside the file (plots as base64 SVG ``<img>`` data URLs, thumbnails as base64
JPEG, CSS inline, no JavaScript), so it opens from disk in any browser and can be mailed around.

Sections: run information (images, library versions, conventions, skipped codecs); for each
metric an RD plot and the BD table against the anchor; the mean value of every codec and
setting; per image, a thumbnail of the original and the PCHIP BD-rate (PSNR) of every codec
against the anchor on that image alone, with all its measurements in a collapsed block.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from pathlib import Path
from typing import Callable

from ..errors import InputError, OutputError
from . import bdrate
from .rd import PLOTS, _display, caption, gather, rd_table
from .results import METRICS
from .runner import CSV_NAME, read_rows

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}td{white-space:nowrap}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.good{color:#0a7a2f}.bad{color:#b3261e}.muted{color:#777;font-size:12px}
img.plot{max-width:100%;height:auto;border:1px solid #eee}
img.thumb{height:64px;display:block}
details{margin:2px 0}summary{cursor:pointer;color:#555}
code{background:#f5f5f5;padding:1px 4px}
table.info td{text-align:left;white-space:normal}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(v, digits=2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _table(head: list[str], body: list[list[str]], raw: bool = False, cls: str = "") -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    rows = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in r) + "</tr>" for r in body)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{rows}</tbody></table>'


def _svg_img(fig, alt: str) -> str:
    from .plots import svg_text

    data = base64.b64encode(svg_text(fig).encode()).decode()
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/svg+xml;base64,{data}">'


def _thumb(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((128, 96))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
    except OSError:
        return '<span class="muted">(image not found)</span>'
    return f'<img class="thumb" alt="{_e(path.name)}" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _bd_class(v: float) -> str:
    return "" if not math.isfinite(v) else ("good" if v < 0 else "bad")


def _per_image(rows: list[dict], anchor: str, images_dir: Path) -> str:
    by_image: dict[str, list[dict]] = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    codecs = list(dict.fromkeys(r["codec"] for r in rows if r["codec"] != anchor))
    head = ["image", "original", "size"] + [f"{c} BD-rate" for c in codecs] + ["measurements"]
    body = []
    for name, rs in sorted(by_image.items()):
        curves: dict[str, list[tuple[float, float]]] = {}
        for r in rs:
            curves.setdefault(r["codec"], []).append((r["bpp"], r["psnr"]))
        cells = [_e(name), _thumb(images_dir / name), f"{rs[0]['width']}×{rs[0]['height']}"]
        for c in codecs:
            try:
                a, t = curves[anchor], curves[c]
                v = bdrate.bd_rate([p[0] for p in a], [p[1] for p in a], [p[0] for p in t], [p[1] for p in t], "pchip").value
            except (KeyError, ValueError):
                v = math.nan
            cells.append(f'<span class="{_bd_class(v)}">{_num(v, 1)}{" %" if math.isfinite(v) else ""}</span>')
        detail_rows = [[r["codec"], r["setting"], str(r["bytes"]), _num(r["bpp"], 3), _num(r["psnr"]),
                        _num(r["ms_ssim"], 4), _num(r["psnr_hvs"]), _num(r["psnr_hvsm"]), _num(r["enc_s"], 3),
                        _num(r["dec_s"], 3)] for r in sorted(rs, key=lambda r: (r["codec"], r["bpp"]))]
        detail = _table(["codec", "setting", "bytes", "bpp", "PSNR", "MS-SSIM", "PSNR-HVS", "PSNR-HVS-M", "enc s", "dec s"],
                        detail_rows)
        cells.append(f"<details><summary>{len(rs)} rows</summary>{detail}</details>")
        body.append(cells)
    note = (f'<p class="muted">BD-rate (PCHIP, RGB PSNR) of each codec against <b>{_e(anchor)}</b> on that image '
            "alone; negative (green) = fewer bits than the anchor for the same PSNR.</p>")
    return note + _table(head, body, raw=True)


def _summary_table(curves) -> str:
    head = ["codec", "setting", "n", "bpp", "PSNR", "MS-SSIM", "MS-SSIM dB", "PSNR-HVS", "PSNR-HVS-M",
            "enc s", "dec s", "enc MiB", "dec MiB"]
    body = []
    for c in curves.values():
        if c.source != "measured":
            continue
        for p in c.points:
            body.append([c.name, p["label"], _num(p.get("n")), _num(p["bpp"], 3), _num(p["psnr"]), _num(p["ms_ssim"], 4),
                         _num(p["ms_ssim_db"]), _num(p["psnr_hvs"]), _num(p["psnr_hvsm"]), _num(p["enc_s"], 3),
                         _num(p["dec_s"], 3), _num(p["enc_peak_mib"], 1), _num(p["dec_peak_mib"], 1)])
    return _table(head, body)


def build_html(results_dir, anchor=None, published=None, only=None, auc_range=(0.25, 1.0)) -> str:
    from .plots import rd_figure

    results_dir = Path(results_dir)
    curves, meta, anchor_name = gather(results_dir, published, only, anchor)
    images_dir = Path(meta.get("images_dir", ""))
    n_img = meta.get("n_images", "?")
    parts = [f"<h1>Image codec benchmark — {_e(images_dir.name or results_dir.name)}</h1>"]
    info = [
        ["results", str(results_dir.resolve())],
        ["images", f"{images_dir} ({n_img} images)"],
        ["anchor", anchor_name],
        ["published results", published or "none"],
        ["measured", meta.get("updated", "?")],
        ["report written", time.strftime("%Y-%m-%d %H:%M:%S")],
        ["peak memory", meta.get("memory_method", "?")],
    ]
    info += [[f"convention: {k}", v] for k, v in meta.get("conventions", {}).items()]
    info += [[f"codec {k}", v] for k, v in meta.get("codecs", {}).items()]
    info += [["version " + k, v] for k, v in meta.get("versions", {}).items()]
    info += [["skipped", s] for s in meta.get("skipped", [])]
    parts.append("<h2>Run</h2>" + _table(["", ""], info, cls="info"))

    for m in PLOTS:
        column, label = METRICS[m]
        if not any(c.has(column) for c in curves.values()):
            continue
        parts.append(f"<h2>{_e(label)}</h2>")
        fig = rd_figure(list(curves.values()), column, label, f"{label} vs rate ({n_img} images)", anchor_name)
        parts.append(_svg_img(fig, f"RD plot {label}"))
        try:
            anchor_curve, rows = rd_table(curves, anchor_name, m, auc_range)
        except InputError as e:
            parts.append(f'<p class="muted">{_e(e)}</p>')
            continue
        head, body = _display(rows)
        parts.append(_table(head, body) + f'<p class="muted">{_e(caption(anchor_curve, m, auc_range))}</p>')

    parts.append("<h2>Mean per codec and setting</h2>" + _summary_table(curves))
    rows = read_rows(results_dir / CSV_NAME)
    if rows:
        parts.append("<h2>Per image</h2>" + _per_image(rows, anchor_name if any(r["codec"] == anchor_name for r in rows)
                                                       else rows[0]["codec"], images_dir))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lic benchmark report</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def run_report(results_dir, out, anchor=None, published=None, only=None, auc_range=(0.25, 1.0),
               log: Callable[[str], None] = print) -> Path:
    """The ``lic report`` command; returns the path written."""
    text = build_html(results_dir, anchor, published, only, auc_range)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e}") from e
    log(f"wrote {out} ({len(text) // 1024} KiB)")
    return out
