#!/usr/bin/env python
"""Which step size suits ``--refine`` for a model: the exact cost J after N steps, per step size and quality.

Encoder-side refinement (:mod:`lic.models.refine`) takes Adam steps on the latents; the step size in
quantization bins is the model's ``refine_lr(quality)``.  This script tries other step sizes on centre
crops (512x384) of training photos, never Kodak, and prints J (the model's training objective for that
one image: exact table bits and decoded 8-bit pixels) before and after, per crop, quality and step size,
with the sum over the crops per (quality, step size).

    python benchmarks/refine_step_size.py --model attention-hyperprior --lrs 0.01 0.02 0.05 0.1 \
        --qualities 1 3 6 [--steps 50] [--crops 2] [--data ../shared/data/train] [--threads 2]

Writes results/refine_step_size/MODEL.csv.  About 1 s a step for attention-hyperprior on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lic  # noqa: E402
from lic.data import list_images  # noqa: E402
from lic.imageio import to_tensor  # noqa: E402
from lic.models.base import pad_to  # noqa: E402
from lic.models.refine import refine_latents  # noqa: E402
from lic.models.tiling import run_tiled  # noqa: E402

W, H = 512, 384


def crops(folder: Path, n: int) -> list[tuple[str, Image.Image]]:
    out = []
    for f in list_images(folder):
        with Image.open(f) as im:
            im = im.convert("RGB")
        if im.width < W or im.height < H:
            continue
        left, top = (im.width - W) // 2, (im.height - H) // 2
        out.append((f.name, im.crop((left, top, left + W, top + H))))
        if len(out) == n:
            break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=lic.DEFAULT_MODEL)
    ap.add_argument("--lrs", type=float, nargs="+", required=True, help="step sizes to try, in quantization bins")
    ap.add_argument("--qualities", type=int, nargs="+", required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--crops", type=int, default=2, help="how many training photos (the first ones, sorted)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = lic.load_model(args.model)
    if not model.refinable or model.progressive:
        raise SystemExit(f"{model.name}: this script tries one-shot refinable models (bmshj2018, attention)")
    images = crops(Path(args.data), args.crops)
    if not images:
        raise SystemExit(f"{args.data}: no photo of at least {W}x{H}")
    out = Path(args.out or ROOT / "results" / "refine_step_size" / f"{model.name}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, own = [], {q: model.refine_lr(q) for q in args.qualities}
    print(f"{model.name}, {args.steps} steps, {len(images)} crops {W}x{H}; the model's own step sizes: "
          + ", ".join(f"q{q} {v:.4g}" for q, v in own.items()))
    print(f"{'crop':24} {'q':>2} {'lr':>7} {'J before':>9} {'J after':>9} {'change':>8} {'s':>6}")
    model._channels_last()
    for name, im in images:
        x = pad_to(to_tensor(np.asarray(im)), model.PAD).contiguous(memory_format=torch.channels_last)
        for q in args.qualities:
            with torch.no_grad():
                y0 = run_tiled(model.g_a, x, model.TILE, model.HALO_A, down=16).contiguous() * model._gain(q)
            j0 = model.refine_problem(x, (H, W), q).exact(y0)
            for lr in args.lrs:
                model.refine_lr = lambda quality, lr=lr: lr  # this instance only
                t = time.perf_counter()
                y = refine_latents(model, x, y0, q, args.steps, (H, W))
                j = model.refine_problem(x, (H, W), q).exact(y)
                secs = time.perf_counter() - t
                rows.append({"crop": name, "quality": q, "lr": lr, "j_before": j0, "j_after": j, "seconds": secs})
                print(f"{name:24} {q:>2} {lr:>7.4g} {j0:>9.5f} {j:>9.5f} {100 * (j / j0 - 1):>+7.2f}% {secs:>6.1f}",
                      flush=True)
            del model.refine_lr
    print("sum of J after over the crops (lower is better):")
    for q in args.qualities:
        sums = {lr: sum(r["j_after"] for r in rows if r["quality"] == q and r["lr"] == lr) for lr in args.lrs}
        best = min(sums, key=sums.get)
        print(f"  q{q}: " + ", ".join(f"{lr:g}: {s:.5f}{' *' if lr == best else ''}" for lr, s in sums.items()))
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
