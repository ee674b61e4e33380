"""``lic demo`` (``make demo``): the main job on a built-in sample.

Compresses scikit-image's astronaut photo (512×512) with the default model,
decodes the real file, and prints bytes, bpp, PSNR and MS-SSIM next to JPEG
(Pillow, 4:2:0) at the same file size: the largest JPEG quality whose file
is no bigger than lic's.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import codec, metrics, zoo
from .errors import InputError, OutputError


def sample_image() -> Image.Image:
    try:
        from skimage import data
    except ImportError:
        raise InputError("the demo photo comes from scikit-image: pip install scikit-image") from None
    return Image.fromarray(data.astronaut())


def jpeg_at_size(img: Image.Image, max_bytes: int) -> tuple[int, bytes]:
    """Largest JPEG quality whose file fits in max_bytes (quality 1 if none fits)."""
    lo, hi, best = 1, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        if buf.tell() <= max_bytes:
            best, lo = (q, buf.getvalue()), q + 1
        else:
            hi = q - 1
    if best is None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=1)
        best = (1, buf.getvalue())
    return best


def _row(label, nbytes, px, ref, rgb):
    ms = metrics.ms_ssim(ref, rgb)
    return f"{label:<26} {nbytes:>8,} {8 * nbytes / px:>7.3f} {metrics.psnr(ref, rgb):>7.2f} {ms:>8.4f}"


def run_demo(args) -> int:
    model = zoo.load_model(args.model or zoo.DEFAULT_MODEL)
    qualities = model.qualities if args.quality is None else [model.check_quality(args.quality)]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out must be a folder: {out} is a file")
    img = sample_image()
    ref = np.asarray(img)
    px = img.size[0] * img.size[1]
    out.mkdir(parents=True, exist_ok=True)
    name = getattr(model, "lic_name", model.name)
    print(f"lic demo: {name}, scikit-image astronaut {img.size[0]}x{img.size[1]}; files in {out}/")
    print(f"{'codec':<26} {'bytes':>8} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8}")
    for q in qualities:
        t0 = time.perf_counter()
        enc = codec.encode(img, model=model, quality=q)
        t1 = time.perf_counter()
        (out / f"astronaut-q{q}.lic").write_bytes(enc.data)
        dec = codec.decode((out / f"astronaut-q{q}.lic").read_bytes(), model=model)  # the weights it was made with
        t2 = time.perf_counter()
        dec.save(out / f"astronaut-q{q}.png")
        rgb = np.asarray(dec)
        print(_row(f"lic q{q} (enc {t1 - t0:.2f}s dec {t2 - t1:.2f}s)", len(enc.data), px, ref, rgb))
        jq, jdata = jpeg_at_size(img, len(enc.data))
        jrgb = np.asarray(Image.open(io.BytesIO(jdata)).convert("RGB"))
        print(_row(f"  JPEG q{jq} (same size)", len(jdata), px, ref, jrgb))
    img.save(out / "astronaut.png")
    return 0
