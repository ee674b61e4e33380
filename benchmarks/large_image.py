#!/usr/bin/env python
"""Time and peak memory of coding large photos with a lic model, tiled (as lic codes) and in one piece.

The test image is a mosaic of Kodak photos (``--kodak DIR``; scikit-image's photos when Kodak is absent)
cut to each size asked for.  For each size: real file bytes and bpp, encode and decode wall seconds, peak
memory (RSS high-water mark above the baseline, lic.bench.measure), and, with ``--whole-up-to MP``, the
same in one piece (the model's tile size raised beyond the image) for sizes up to MP megapixels, with
the largest difference between the two decoded images.  The recurrent models (toderici2017-rnn*, su2020-*)
are not tiled: they are measured as they code, in one piece.

    python benchmarks/large_image.py [--model NAME] [--sizes 768x512,2048x1536,4000x3000] [--whole-up-to 3.2]

Writes results/large_image/MODEL.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lic  # noqa: E402
from lic import codec, metrics  # noqa: E402
from lic.bench.measure import MEMORY_METHOD, PeakMemory, machine, write_json  # noqa: E402
from lic.runtime import keep_freed_memory  # noqa: E402


def mosaic(width: int, height: int, kodak: Path) -> tuple[Image.Image, str]:
    files = sorted(kodak.glob("*.png"))
    if files:  # 768×512 each; portrait ones turned
        photos = [np.asarray(im if im.width >= im.height else im.transpose(Image.Transpose.ROTATE_90))
                  for im in (Image.open(f).convert("RGB") for f in files)]
        source = f"Kodak mosaic ({kodak})"
    else:
        from skimage import data

        photos = [np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB").resize((768, 512)))
                  for n in ("astronaut", "coffee", "chelsea", "rocket")]
        source = "scikit-image photo mosaic"
    canvas = np.zeros((-(-height // 512) * 512, -(-width // 768) * 768, 3), np.uint8)
    k = 0
    for y in range(0, canvas.shape[0], 512):
        for x in range(0, canvas.shape[1], 768):
            canvas[y:y + 512, x:x + 768] = photos[k % len(photos)]
            k += 1
    return Image.fromarray(np.ascontiguousarray(canvas[:height, :width])), source


def measure(model, img: Image.Image, quality: int) -> tuple[dict, np.ndarray]:
    codec.encode(img.crop((0, 0, 64, 64)), model=model, quality=quality)  # warm-up
    with PeakMemory() as em:
        t0 = time.perf_counter()
        enc = codec.encode(img, model=model, quality=quality)
        enc_s = time.perf_counter() - t0
    with PeakMemory() as dm:
        t0 = time.perf_counter()
        dec = codec.decode(enc.data, model=model)
        dec_s = time.perf_counter() - t0
    rgb = np.asarray(dec)
    return {"bytes": len(enc.data), "bpp": 8 * len(enc.data) / (img.width * img.height),
            "psnr": metrics.psnr(np.asarray(img), rgb), "encode_s": enc_s, "decode_s": dec_s,
            "encode_peak_mib": em.mib, "decode_peak_mib": dm.mib}, rgb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=lic.DEFAULT_MODEL)
    ap.add_argument("--quality", type=int)
    ap.add_argument("--sizes", default="768x512,2048x1536,4000x3000")
    ap.add_argument("--whole-up-to", type=float, default=3.2, help="also code in one piece up to this many megapixels")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the lic command does
    model = lic.load_model(args.model)
    name = getattr(model, "lic_name", model.name)
    q = args.quality or model.default_quality
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        img, source = mosaic(w, h, Path(args.kodak))
        row, tiled = measure(model, img, q)
        tile = getattr(model, "TILE", None)  # the recurrent models code the whole image at once
        row = {"size": f"{w}x{h}", "megapixels": w * h / 1e6, "tile": tile, **row}
        if tile is not None and w * h <= args.whole_up_to * 1e6:
            model.TILE = 1 << 30  # one piece
            try:
                whole_row, whole = measure(model, img, q)
            finally:
                del model.TILE
            row["one_piece"] = whole_row
            row["one_piece"]["max_pixel_difference"] = int(np.abs(tiled.astype(int) - whole.astype(int)).max())
        rows.append(row)
        one = row.get("one_piece")
        print(f"{row['size']:>10} {row['bpp']:.3f} bpp  {'tiled' if tile else 'whole'}: enc {row['encode_s']:.2f} s dec {row['decode_s']:.2f} s "
              f"peak {row['encode_peak_mib']:.0f}/{row['decode_peak_mib']:.0f} MiB"
              + (f"  | one piece: enc {one['encode_s']:.2f} s dec {one['decode_s']:.2f} s peak "
                 f"{one['encode_peak_mib']:.0f}/{one['decode_peak_mib']:.0f} MiB, max pixel diff "
                 f"{one['max_pixel_difference']}" if one else ""), flush=True)
    write_json(args.out or ROOT / "results" / "large_image" / f"{name}.json",
               {"model": name, "quality": q, "image": source, "threads": args.threads, "torch": torch.__version__,
                "cpu": machine(), "memory_method": MEMORY_METHOD,
                "command": "python benchmarks/large_image.py " + " ".join(sys.argv[1:]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
