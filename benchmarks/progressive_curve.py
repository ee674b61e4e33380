#!/usr/bin/env python
"""Training diagnostics of a progressive model (toderici2017-rnn, su2020-*): does every iteration help?

For each weights file and each image, the model's own forward pass (eval mode: the rounding /
sign the coder uses, no entropy coding) gives the PSNR after every iteration or layer

* on the whole image, and
* averaged over non-overlapping T×T tiles (``--tile``, e.g. the training crop size): a model that
  does much better on tiles than on the whole image has learnt the crop size (its borders) and
  will not generalise to photos;

and, for the recurrent binary codec, per iteration: mean |residual| fed to the encoder, mean
|binarizer activation| and the share of activations beyond ±0.9 (an encoder whose activations sink
towards 0 sends nearly random bits in training, and the decoder learns to ignore them).

    python benchmarks/progressive_curve.py --weights runs/x/model.safetensors [more ...]
           [--images kodim23.png kodim01.png] [--kodak ../shared/data/kodak] [--tile 96] [--threads 2]

Writes OUT/<weights-stem>.json (default OUT = results/progressive_curve).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.imageio import read_image  # noqa: E402
from lic.models.recurrent import RecurrentCodec  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"


def _psnr(mse: float) -> float:
    return float(-10 * np.log10(max(mse, 1e-12)))


@torch.no_grad()
def curve(model, x: torch.Tensor) -> list[float]:
    """Mean squared error after every iteration / layer (pixels in [0, 1], output clamped)."""
    return [((xh.clamp(0, 1) - x) ** 2).mean().item() for xh in model(x)["x_hats"]]


@torch.no_grad()
def tiled_curve(model, x: torch.Tensor, t: int) -> list[float]:
    h, w = x.shape[-2:]
    errs = [curve(model, x[..., i:i + t, j:j + t]) for i in range(0, h - t + 1, t) for j in range(0, w - t + 1, t)]
    return np.mean(errs, 0).tolist()


@torch.no_grad()
def binarizer_stats(model: RecurrentCodec, x: torch.Tensor) -> list[dict]:
    """Per iteration: what the encoder's first layer is fed and what the binarizer's 1×1 conv gives (before tanh)."""
    stats = []

    def fed(module, inputs):
        stats.append({"residual_abs": inputs[0].abs().mean().item()})

    def binarized(module, inputs, output):
        y = torch.tanh(output)
        stats[-1].update(activation_abs=y.abs().mean().item(), saturated=(y.abs() > 0.9).float().mean().item())

    hooks = [model.enc_stem.register_forward_pre_hook(fed), model.binarizer.register_forward_hook(binarized)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", required=True)
    ap.add_argument("--images", nargs="+", default=["kodim23.png", "kodim01.png"])
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--tile", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "progressive_curve"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = [Path(args.kodak) / n for n in args.images]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"progressive_curve: image not found: {missing[0]}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for wpath in args.weights:
        model = zoo.load_weights(wpath).eval()
        if not getattr(model, "progressive", False):
            print(f"progressive_curve: {wpath} is not a progressive model", file=sys.stderr)
            return 2
        res = {"weights": str(wpath), "config": model.config(), "tile": args.tile, "images": {}}
        for p in paths:
            a = np.asarray(read_image(p).convert("RGB"), dtype=np.float32) / 255
            x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None]
            whole, tiles = curve(model, x), tiled_curve(model, x, args.tile)
            r = {"psnr_whole": [_psnr(m) for m in whole], "psnr_tiles": [_psnr(m) for m in tiles]}
            if isinstance(model, RecurrentCodec):
                r["binarizer"] = binarizer_stats(model, x)
            res["images"][p.name] = r
            print(f"{Path(wpath).parent.name}/{Path(wpath).name}  {p.name}")
            print("  whole  " + " ".join(f"{v:5.2f}" for v in r["psnr_whole"]))
            print(f"  {args.tile}²   " + " ".join(f"{v:5.2f}" for v in r["psnr_tiles"]))
            if "binarizer" in r:
                print("  |r|    " + " ".join(f"{s['residual_abs']:5.3f}" for s in r["binarizer"]))
                print("  |y|    " + " ".join(f"{s['activation_abs']:5.2f}" for s in r["binarizer"]))
        name = f"{Path(wpath).parent.name}_{Path(wpath).stem}".replace("/", "-")
        (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
