"""``lic eval``: a model on a folder of images, measured on real files.

For every image and quality: bytes of the real ``.lic`` file, bpp, RGB PSNR,
MS-SSIM, encode/decode seconds, and the ideal size under the coding tables
(to show that the files are as small as the model says).  Writes
``per_image.csv`` and ``summary.json`` (means per quality) into the output folder.
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

from . import codec, metrics
from .data import list_images
from .errors import InputError, OutputError
from .imageio import read_image

FIELDS = ["image", "width", "height", "quality", "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db",
          "table_bytes", "encode_s", "decode_s"]


def _mean(values: list[float]) -> float | None:
    """Mean over the values that are defined (MS-SSIM is not for small images); None if there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else None


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
                skipped.append(path.name)
                bar.update(len(qualities))
                continue
            ref = codec.reference_rgb(img)
            for q in qualities:
                t0 = time.perf_counter()
                enc = codec.encode(img, model=model, quality=q, refine=refine)
                t1 = time.perf_counter()
                dec = codec.decode(enc.data, model=model)
                t2 = time.perf_counter()
                rgb = np.asarray(dec.convert("RGB"))
                h, w = ref.shape[:2]
                ms = metrics.ms_ssim(ref, rgb)
                rows.append({"image": path.name, "width": w, "height": h, "quality": q, "bytes": len(enc.data),
                             "bpp": 8 * len(enc.data) / (w * h), "psnr": metrics.psnr(ref, rgb), "ms_ssim": ms,
                             "ms_ssim_db": metrics.ms_ssim_db(ms) if not math.isnan(ms) else math.nan,
                             "table_bytes": (enc.table_bits or 0) / 8, "encode_s": t1 - t0, "decode_s": t2 - t1})
                bar.update(1)
    if skipped and len(skipped) == len(files):
        raise InputError(f"none of the {len(files)} images in {folder} could be read")
    summary = {"model": getattr(model, "lic_name", model.name), "images": len(files) - len(skipped),
               "skipped": skipped, "refine": refine, "qualities": {}}
    for q in qualities:
        sel = [r for r in rows if r["quality"] == q]
        summary["qualities"][str(q)] = {k: _mean([r[k] for r in sel]) for k in FIELDS[4:]}
        summary["qualities"][str(q)]["ms_ssim_images"] = sum(not math.isnan(r["ms_ssim"]) for r in sel)
    small = sum(math.isnan(r["ms_ssim"]) for r in rows if r["quality"] == qualities[0])
    if small:
        warnings.warn(f"MS-SSIM needs images of at least {metrics.MS_SSIM_MIN_SIDE} px on the short side: not measured "
                      f"for {small} of {summary['images']} images (their means leave them out; null when none is left)",
                      stacklevel=2)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "per_image.csv", "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=FIELDS)
            wr.writeheader()
            wr.writerows(rows)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
