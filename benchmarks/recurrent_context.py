#!/usr/bin/env python
"""Which bit context pays?  Trains context models of several shapes on the bits of a trained
recurrent codec (the codec itself is frozen) and measures held-out bits per coded bit.

    python benchmarks/recurrent_context.py --weights runs/rnn/model.safetensors|toderici2017-rnn --data DIR
           [--crops 96] [--crop 256] [--steps 400]

Variants: earlier iterations only (1 step), + checkerboard (2 steps), + 2, 4 or 8 channel
groups, with and without checkerboard; a wider network, a 5×5 middle layer.  The first row is
the weights' own context model (trained with the codec) on the same held-out bits.  Also the
decode time of each context at 768×512 for all iterations (integer network, 1 thread).
Writes OUT/context_variants.json (default OUT: results/recurrent_context).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.data import CropDataset  # noqa: E402
from lic.entropy.binary import BinaryContextModel  # noqa: E402

VARIANTS = {  # name: (groups, checkerboard, hidden, kernel)
    "history-only": (1, False, (32, 32), 3),
    "checkerboard": (1, True, (32, 32), 3),
    "groups2": (2, False, (32, 32), 3),
    "groups2+checkerboard": (2, True, (32, 32), 3),
    "groups4 (default)": (4, False, (32, 32), 3),
    "groups4+checkerboard": (4, True, (32, 32), 3),
    "groups8": (8, False, (32, 32), 3),
    "groups8+checkerboard": (8, True, (32, 32), 3),
    "groups4 wide": (4, False, (64, 64), 3),
    "groups4 5x5": (4, False, (32, 32), 5),
    "groups4 wide 5x5": (4, False, (64, 64), 5),
}


def bits_of(model, crops: torch.Tensor) -> torch.Tensor:
    """(B, T, C, h, w) ±1: the bits coding sees."""
    from lic.models.base import pad_to
    from lic.models.recurrent import _hard

    with torch.no_grad():
        _, det, _ = model._run(pad_to(crops, model.PAD) - 0.5, model.iterations, _hard)
    return torch.stack(det, 1).float()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="weights file or shipped model name")
    ap.add_argument("--data", required=True, help="folder of training images")
    ap.add_argument("--crops", type=int, default=96)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="*", help="names of the variants to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "results" / "recurrent_context"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(0)
    torch.manual_seed(0)
    model = zoo.load_model(args.weights).eval()  # a weights file or a shipped name
    ds = CropDataset(args.data, crop=args.crop, length=args.crops)
    crops = torch.stack([ds[i] for i in range(args.crops)]).float() / 255
    bits = torch.cat([bits_of(model, crops[i:i + 8]) for i in range(0, len(crops), 8)])
    n_train = int(0.75 * len(bits))
    train, test = bits[:n_train], bits[n_train:]
    C, T = bits.shape[2], bits.shape[1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    with torch.no_grad():  # the weights' own context model (trained with the codec) on the same held-out bits
        own = (-torch.log2(model.context.likelihoods(test))).mean(dim=(0, 2, 3, 4))
    own_name = "weights' own"
    results[own_name] = {"groups": model.context.groups, "checkerboard": model.context.checkerboard,
                         "bits_per_bit": float(own.mean()), "per_iteration": own.tolist()}
    print(f"{own_name:32s} {own.mean():.4f} bits/bit  per it: " + " ".join(f"{v:.3f}" for v in own.tolist()))
    for name, (groups, cb, hidden, kernel) in VARIANTS.items():
        if args.variants and name not in args.variants:
            continue
        torch.manual_seed(0)
        cm = BinaryContextModel(C, model.iterations, hidden, kernel, groups, cb)
        opt = torch.optim.Adam(cm.parameters(), lr=2e-3)
        t0 = time.perf_counter()
        for step in range(args.steps):
            idx = torch.randint(0, len(train), (8,))
            loss = -torch.log2(cm.likelihoods(train[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            per_it = (-torch.log2(cm.likelihoods(test))).mean(dim=(0, 2, 3, 4))
        cm.update()
        b = torch.where(torch.rand(T, C, 32, 48) < 0.5, 1, -1)
        t1 = time.perf_counter()
        chunks, _ = cm.encode(b)
        t2 = time.perf_counter()
        cm.decode(chunks, 32, 48)
        t3 = time.perf_counter()
        results[name] = {"groups": groups, "checkerboard": cb, "hidden": list(hidden), "kernel": kernel,
                         "bits_per_bit": float(per_it.mean()), "per_iteration": per_it.tolist(),
                         "train_s": t1 - t0, "encode_s_768x512": t2 - t1, "decode_s_768x512": t3 - t2}
        print(f"{name:32s} {per_it.mean():.4f} bits/bit  per it: "
              + " ".join(f"{v:.3f}" for v in per_it.tolist())
              + f"  (context decode {t3 - t2:.2f} s at 768x512, {T} it)")
        write(out, args, results)  # after every variant: an interrupted run keeps what it measured
    write(out, args, results)
    return 0


def write(out: Path, args, results: dict) -> None:
    (out / "context_variants.json").write_text(json.dumps({"weights": args.weights, "crops": args.crops,
                                                           "crop": args.crop, "steps": args.steps,
                                                           "variants": results}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
