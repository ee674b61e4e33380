"""``lic bench DIR --codecs ... --out RESULTS_DIR``: measure every image × codec × setting.

Outputs, all in ``RESULTS_DIR``:

* ``per_image.csv`` — one row per (image, codec, setting), columns :data:`measure.FIELDS`;
  rows are appended as soon as they are measured, so an interrupted run loses nothing;
* ``summary.json`` — per codec, per setting: number of images and the mean of every column
  (bytes, bpp, PSNR, MS-SSIM, PSNR-HVS(-M), seconds); ``ms_ssim_db`` there is the dB value of the
  *mean* MS-SSIM (the way RD curves are usually drawn); peak memory is the maximum over images.
  ``meta`` records the image folder, the codec descriptions, skipped codecs, library versions,
  the memory method and the metric conventions;
* ``codec_versions.json`` — the version of each codec whose rows the CSV holds (see below).

Resumable: a (image, codec, setting) already in the CSV is not measured again, unless the codec
changed since (``Codec.version``: for ``lic:MODEL`` the digest of its weights): then its earlier rows
are dropped and measured again, never mixed with new ones.  The versions the rows are measured with
are written to ``codec_versions.json`` before the first row is appended (and to ``summary.json``'s
``meta`` at the end), so a run killed outright, without writing its summary, still resumes.

Parallelism: classical codecs run in ``--jobs`` worker processes (spawned, one torch thread
each, one measurement at a time per process).  ``lic:MODEL`` codecs always run afterwards in
the main process, one measurement at a time, since torch already uses several threads.  With
``--jobs`` > 1 the measurements share the CPU, so encode/decode seconds are higher than on an
idle machine; use ``--jobs 1`` for timings you intend to quote.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from ..data import display_name
from ..errors import InputError, OutputError
from ..files import write_atomic
from . import codecs as registry
from .measure import FIELDS, MEMORY_METHOD, load_rgb, machine, measure

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
CSV_NAME = "per_image.csv"
SUMMARY_NAME = "summary.json"
VERSIONS_NAME = "codec_versions.json"
KEY = ("image", "codec", "setting")
_MEAN_FIELDS = ["bytes", "bpp", "psnr", "ms_ssim", "psnr_hvs", "psnr_hvsm", "enc_s", "dec_s"]
_MAX_FIELDS = ["enc_peak_mib", "dec_peak_mib"]


@dataclass
class BenchOutcome:
    measured: int = 0
    already_done: int = 0
    skipped_codecs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    from ..data import walk_files

    images = walk_files(folder, IMAGE_EXTS)  # sub-folders too, as lic eval and folder compress search them
    if not images:
        raise InputError(f"{folder}: no images ({', '.join(sorted(IMAGE_EXTS))})")
    if limit is not None:
        if limit < 1:
            raise InputError("--limit must be at least 1")
        images = images[:limit]
    return images


# --- CSV ------------------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, float):
        return repr(v) if not math.isfinite(v) else f"{v:.8g}"
    return str(v)


def read_rows(csv_path: str | Path) -> list[dict]:
    """Rows of a per_image.csv with numeric columns as numbers."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        return []
    try:
        return _read_rows(csv_path)
    except (UnicodeDecodeError, csv.Error, ValueError, TypeError, KeyError) as e:  # not text, or bad cells
        raise InputError(f"{csv_path}: not a lic bench results table ({e.__class__.__name__}); use another "
                         f"--out") from None


def _read_rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames and list(reader.fieldnames) != FIELDS:
            raise InputError(f"{csv_path}: columns differ from this version's ({', '.join(FIELDS)}); use another --out")
        rows = []
        for r in reader:
            for k in FIELDS:
                if k in ("image", "codec", "setting"):
                    continue
                r[k] = int(r[k]) if k in ("width", "height", "bytes") else float(r[k])
            rows.append(r)
    return rows


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing or not JSON
        return None


def _recorded_versions(out_dir: Path) -> dict[str, str]:
    """The codec versions the CSV's rows were measured with: ``codec_versions.json``, written before any row
    is appended; else (a folder from before that file) ``summary.json``'s ``meta``."""
    versions = _json_or_none(out_dir / VERSIONS_NAME)
    if not isinstance(versions, dict):
        summary = _json_or_none(out_dir / SUMMARY_NAME)
        meta = summary.get("meta") if isinstance(summary, dict) else None
        versions = meta.get("codec_versions") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}


def _drop_changed(csv_path: Path, codecs, versions: dict[str, str], log) -> list[dict]:
    """Remove the rows of codecs whose version differs from the one their rows were measured with
    (rows of a versioned codec without a recorded version count as different); the rows kept."""
    rows = read_rows(csv_path)
    stale = {c.name for c in codecs if c.version and versions.get(c.name) != c.version
             and any(r["codec"] == c.name for r in rows)}
    if not stale:
        return rows
    for name in sorted(stale):
        n = sum(r["codec"] == name for r in rows)
        was = versions.get(name, "not recorded")
        now = next(c.version for c in codecs if c.name == name)
        log(f"{name}: changed since its {n} rows in {csv_path.name} were measured ({was} -> {now}): measuring again")
    keep = [r for r in rows if r["codec"] not in stale]
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in keep:
            w.writerow([_fmt(r[k]) for k in FIELDS])
    os.replace(tmp, csv_path)
    return keep


class _CsvAppender:
    def __init__(self, path: Path):
        new = not path.exists() or path.stat().st_size == 0
        self.f = open(path, "a", newline="", encoding="utf-8")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(FIELDS)
            self.f.flush()

    def add(self, row: dict) -> None:
        self.w.writerow([_fmt(row[k]) for k in FIELDS])
        self.f.flush()

    def close(self) -> None:
        self.f.close()


# --- summary --------------------------------------------------------------------------------------


def _mean(vals: list[float]) -> float | None:
    """Mean of the finite values: NaN (a metric undefined for an image, e.g. MS-SSIM below 161 px) and the
    infinite PSNR of an image coded without loss are left out; None when nothing is left."""
    vals = [v for v in vals if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def summarize(rows: list[dict], order: Iterable[str] = ()) -> dict[str, list[dict]]:
    """Per codec (those named in ``order`` first, in that order, then the rest in first-seen order), per setting
    (by increasing bpp): means over images.  ``order`` keeps tables and plots in the same order from run to run:
    rows arrive in the order parallel jobs finish, and a re-measured codec's rows move to the end of the CSV."""
    groups: dict[str, dict[str, list[dict]]] = {name: {} for name in order}
    for r in rows:
        groups.setdefault(r["codec"], {}).setdefault(r["setting"], []).append(r)
    out: dict[str, list[dict]] = {}
    for codec, by_setting in groups.items():
        if not by_setting:  # named in ``order`` but not measured
            continue
        points = []
        for setting, rs in by_setting.items():
            p: dict = {"setting": setting, "n": len(rs)}
            for k in _MEAN_FIELDS:
                p[k] = _mean([float(r[k]) for r in rs])
            lossless = sum(math.isinf(float(r["psnr"])) for r in rs)
            if lossless:  # identical pixels: left out of the mean PSNR, counted here
                p["lossless_images"] = lossless
            for k in _MAX_FIELDS:
                vals = [float(r[k]) for r in rs if not math.isnan(float(r[k]))]
                p[k] = max(vals) if vals else None
            m = p["ms_ssim"]
            p["ms_ssim_db"] = None if m is None else (-10 * math.log10(1 - m) if m < 1 else None)
            points.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in p.items()})
        out[codec] = sorted(points, key=lambda p: p["bpp"])
    return out


def write_summary(out_dir: Path, rows: list[dict], meta: dict) -> Path:
    path = out_dir / SUMMARY_NAME
    old_meta = {}
    if path.exists():
        try:
            old_meta = json.loads(path.read_text()).get("meta", {})
        except (OSError, ValueError, AttributeError):
            old_meta = {}
    descriptions = {**old_meta.get("codecs", {}), **meta.get("codecs", {})}
    order = [*meta.get("codecs", {}), *old_meta.get("codecs", {})]  # this run's codecs as listed, then earlier ones
    meta = {**old_meta, **meta, "codecs": descriptions}
    meta["n_images"] = len({r["image"] for r in rows})
    summary = {"meta": meta, "codecs": summarize(rows, order=order)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


# --- work ------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _codec(spec: str):
    return registry.get_codec(spec)


@lru_cache(maxsize=2)
def _image(path: str):
    return load_rgb(path)


def _measure_task(path: str, name: str, spec: str, setting: str) -> dict:
    return measure(_codec(spec), setting, _image(path), name)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def run_bench(
    images_dir: str | Path,
    specs: list[str],
    out_dir: str | Path,
    jobs: int = 1,
    limit: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> BenchOutcome:
    """Measure, append to ``per_image.csv``, rewrite ``summary.json``; see the module docstring."""
    t_start = time.perf_counter()
    if jobs < 1:
        raise InputError("--jobs must be at least 1")
    images = list_images(images_dir, limit)
    _codec.cache_clear()  # every run loads its codecs afresh: weights retrained since the last run count
    codecs, skipped = registry.resolve(specs)
    outcome = BenchOutcome(skipped_codecs=skipped)
    for line in skipped:
        log(line)
    if not codecs:
        raise InputError("no codec can run: " + "; ".join(skipped))

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out_dir}: {e}") from e
    csv_path = out_dir / CSV_NAME
    versions = _recorded_versions(out_dir)
    rows = _drop_changed(csv_path, codecs, versions, log)
    versions.update({c.name: c.version for c in codecs if c.version})
    # recorded before the first row is appended: a run killed outright still resumes under the right versions
    write_atomic(out_dir / VERSIONS_NAME, (json.dumps(versions, indent=1, sort_keys=True) + "\n").encode())
    done = {tuple(r[k] for k in KEY) for r in rows}

    root = Path(images_dir)
    pending: list[tuple[str, str, str, str]] = []  # (path, name, spec, setting)
    for img in images:  # image-major: an interrupted run leaves whole images done, and workers reuse the decode
        name = display_name(img, root)  # the path in the folder; bytes that are not UTF-8 as \xNN
        for codec in codecs:
            for s in codec.settings:
                if (name, codec.name, s) in done:
                    outcome.already_done += 1
                else:
                    pending.append((str(img), name, codec.spec, s))
    parallel = [t for t in pending if _codec(t[2]).parallel_safe]
    serial = [t for t in pending if not _codec(t[2]).parallel_safe]
    if outcome.already_done:
        log(f"resuming: {outcome.already_done} measurements already in {csv_path}, {len(pending)} to do")

    from tqdm import tqdm

    writer = _CsvAppender(csv_path)
    bar = tqdm(total=len(pending), disable=not progress, unit="meas", dynamic_ncols=True)

    def record(task, fn):
        try:
            row = fn()
        except Exception as e:  # a codec failing on one image must not stop the run
            outcome.failures.append(f"{task[1]} {_codec(task[2]).name} {task[3]}: {type(e).__name__}: {e}")
        else:
            writer.add(row)
            outcome.measured += 1
        bar.update(1)

    try:
        if parallel and jobs > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init) as pool:
                futures = {pool.submit(_measure_task, *t): t for t in parallel}
                try:
                    for fut in as_completed(futures):
                        record(futures[fut], fut.result)
                except KeyboardInterrupt:
                    for f in futures:
                        f.cancel()
                    raise
        else:
            for t in parallel:
                record(t, lambda t=t: _measure_task(*t))
        for t in serial:  # lic models: main process, one at a time
            record(t, lambda t=t: _measure_task(*t))
    finally:
        bar.close()
        writer.close()
        meta = {
            "images_dir": str(root.resolve()),
            "codecs": {c.name: c.description for c in codecs},
            "skipped": skipped,
            "versions": registry.library_versions(),
            "memory_method": MEMORY_METHOD,
            "codec_versions": versions,
            "jobs": jobs,
            "conventions": {
                "psnr": "RGB, all samples together, mean over images of per-image dB",
                "ms_ssim": "RGB, pytorch-msssim 5 scales; ms_ssim_db = -10 log10(1 - mean MS-SSIM)",
                "psnr_hvs": "PSNR-HVS / PSNR-HVS-M on BT.601 8-bit luma (psnr_hvsm package)",
                "bpp": "8 * file bytes / (width * height)",
            },
            "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine(),  # of this update; rows resumed from earlier runs may come from another
        }
        write_summary(out_dir, read_rows(csv_path), meta)
    outcome.seconds = time.perf_counter() - t_start
    return outcome
