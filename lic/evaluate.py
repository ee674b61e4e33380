"""``lic eval``: a model on a folder of images, measured on real files.

For every image and quality: bytes of the real ``.lic`` file, bpp, RGB PSNR,
MS-SSIM, encode/decode seconds, and the ideal size under the coding tables
(to show that the files are as small as the model says).  Writes
``per_image.csv`` and ``summary.json`` (means per quality) into the output folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np

from . import codec, metrics
from .data import display_name, list_images
from .errors import InputError, OutputError
from .files import check_creatable_folder, make_folders, write_atomic
from .imageio import read_image

FIELDS = ["image", "width", "height", "quality", "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db",
          "table_bytes", "encode_s", "decode_s"]


def _mean(values: list[float]) -> float | None:
    """Mean over the values that are defined and finite (MS-SSIM is not for small images; the PSNR of an image
    decoded without loss is infinite); None if there are none."""
    kept = [v for v in values if math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def _json_value(v):
    """Strict JSON has no NaN or Infinity: such values are written as null."""
    return v if not isinstance(v, float) or math.isfinite(v) else None


def _measure(model, img, name: str, qualities, refine: int, bar) -> list[dict]:
    """One image at every quality: real file, decode, metrics, seconds."""
    ref = codec.reference_rgb(img)
    h, w = ref.shape[:2]
    rows = []
    for q in qualities:
        enc, dec, enc_s, dec_s = codec.timed_round_trip(img, model, q, refine=refine)
        rgb = np.asarray(dec.convert("RGB"))
        ms = metrics.ms_ssim(ref, rgb)
        rows.append({"image": name, "width": w, "height": h, "quality": q, "bytes": len(enc.data),
                     "bpp": 8 * len(enc.data) / (w * h), "psnr": metrics.psnr(ref, rgb), "ms_ssim": ms,
                     "ms_ssim_db": metrics.ms_ssim_db(ms) if not math.isnan(ms) else math.nan,
                     "table_bytes": (enc.table_bits or 0) / 8, "encode_s": enc_s, "decode_s": dec_s})
        bar.update(1)
    return rows


def evaluate(model, folder, out=None, qualities=None, max_images=None, progress=True, refine: int = 0) -> dict:
    """``refine``: encoder-side latent search steps (``lic compress --refine``), 0 for the plain encoder."""
    codec.check_refine(model, refine)
    files = list_images(folder)
    if not files:
        raise InputError(f"no images found in {folder}")
    if max_images is not None and max_images < 1:
        raise InputError(f"--limit takes a number of images >= 1, got {max_images}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise OutputError(f"--out must be a folder: {out} is a file")
    if out is not None:
        check_creatable_folder(Path(out), "--out")  # before the evaluation, not after it
    if max_images:
        files = files[:max_images]
    qualities = list(dict.fromkeys(qualities or model.qualities))  # each once, in the order given
    for q in qualities:
        model.check_quality(q)
    rows, skipped = [], []
    from tqdm import tqdm

    with tqdm(total=len(files) * len(qualities), desc="eval", unit="file", disable=not progress) as bar:
        for path in files:
            try:
                img = read_image(path)
            except InputError as exc:  # one broken file does not end an evaluation; it is named and counted
                warnings.warn(f"skipped: {exc}", stacklevel=2)
                skipped.append(display_name(path, folder))
                bar.update(len(qualities))
                continue
            with warnings.catch_warnings(record=True) as caught:  # e.g. "16-bit reduced": once per image, not
                warnings.simplefilter("always")                     # once per quality and once for the reference
                rows += _measure(model, img, display_name(path, folder), qualities, refine, bar)
            for message in dict.fromkeys(str(w.message) for w in caught):
                warnings.warn(message, stacklevel=2)
    if skipped and len(skipped) == len(files):
        raise InputError(f"none of the {len(files)} images in {folder} could be read")
    summary = {"model": getattr(model, "lic_name", model.name), "images": len(files) - len(skipped),
               "skipped": skipped, "refine": refine, "qualities": {}}
    for q in qualities:
        sel = [r for r in rows if r["quality"] == q]
        summary["qualities"][str(q)] = {k: _mean([r[k] for r in sel]) for k in FIELDS[4:]}
        summary["qualities"][str(q)]["ms_ssim_images"] = sum(not math.isnan(r["ms_ssim"]) for r in sel)
        lossless = sum(math.isinf(r["psnr"]) for r in sel)
        if lossless:  # identical pixels: PSNR is infinite, and the mean PSNR is over the other images
            summary["qualities"][str(q)]["lossless_images"] = lossless
    if any(math.isinf(r["psnr"]) for r in rows):
        warnings.warn("some images decode without loss (infinite PSNR): the mean PSNR leaves them out "
                      "(summary.json: lossless_images)", stacklevel=2)
    small = sum(math.isnan(r["ms_ssim"]) for r in rows if r["quality"] == qualities[0])
    if small:
        warnings.warn(f"MS-SSIM needs images of at least {metrics.MS_SSIM_MIN_SIDE} px on the short side: not measured "
                      f"for {small} of {summary['images']} images (their means leave them out; null when none is left)",
                      stacklevel=2)
    if out is not None:
        out = Path(out)
        make_folders(out, "--out")
        table = io.StringIO(newline="")
        wr = csv.DictWriter(table, fieldnames=FIELDS)
        wr.writeheader()
        wr.writerows(rows)
        write_atomic(out / "per_image.csv", table.getvalue().encode("utf-8"))
        strict = {**summary, "qualities": {q: {k: _json_value(v) for k, v in m.items()}
                                           for q, m in summary["qualities"].items()}}
        write_atomic(out / "summary.json", json.dumps(strict, indent=1, allow_nan=False).encode("utf-8"))
    return summary
