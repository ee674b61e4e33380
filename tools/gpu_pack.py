"""Build the training folder a GPU round carries: ../shared/data/train_pack's 640 crops of 256² plus more
256² crops cut from ../shared/data/train, as many as fit in --mib (the device tool carries 64 MiB in all).

    python tools/gpu_pack.py --out .data/pack            # 640 + 511 crops, 37.1 MiB (seed 2026, 17 MiB added)

One random crop per photo, photos in a seeded random order, JPEG q95 4:4:4 (the photos' own format).  The same
seed gives the same files.  Kodak is never read.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".data/pack")
    ap.add_argument("--pack", default=str(SHARED / "train_pack"), help="crops copied as they are")
    ap.add_argument("--train", default=str(SHARED / "train"), help="photos to cut more crops from")
    ap.add_argument("--mib", type=float, default=17.0, help="MiB of new crops to add (tools/gpu_stash.sh save checks the carry)")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(Path(args.pack).glob("*.jpg")):
        shutil.copy2(p, out / p.name)
    photos = sorted(Path(args.train).glob("*"))
    rng = random.Random(args.seed)
    rng.shuffle(photos)
    used, n = 0, 0
    for p in photos:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        if w < 256 or h < 256:
            continue
        x, y = rng.randrange(0, w - 255), rng.randrange(0, h - 255)
        dst = out / f"x{n:04d}.jpg"
        im.crop((x, y, x + 256, y + 256)).save(dst, quality=95, subsampling=0)
        used += dst.stat().st_size
        n += 1
        if used > args.mib * 2 ** 20:
            break
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {len(list(out.iterdir()))} crops ({n} new), {total / 2 ** 20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
