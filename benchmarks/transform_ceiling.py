#!/usr/bin/env python
"""Training diagnostic of a one-shot transform codec (bmshj2018-hyperprior, attention-*): where is the
distortion lost, in the transforms or in the quantization?

Per quality level and Kodak image, three reconstructions of the same latents y = g_a(x)·γ_Q:

* ``ceiling``: g_s(y·γ'_Q), no quantization at all: the best the transforms can do at this gain;
* ``rounded``: g_s(round(y)·γ'_Q), the latents the coder really sends (no entropy coding needed);
* ``est_bpp``: the model's own rate estimate of those latents (eval-mode likelihoods, coder tables).

A ceiling far below the published model's PSNR at the same quality means the transforms, not the
entropy model, limit the rate-distortion curve (they need more training, or more width); a large
ceiling − rounded gap at a high quality means the gains leave the quantization too coarse.

    python benchmarks/transform_ceiling.py [--model bmshj2018-hyperprior | runs/x/model.safetensors ...]
           [--images kodim01.png ...] [--kodak ../shared/data/kodak] [--threads 2]

Writes OUT/<name>.json (default OUT = results/transform_ceiling) and prints the per-quality means
(PSNR: mean of per-image PSNR over all RGB samples, on the float output clamped to [0, 1], not rounded
to 8 bits as a decoded file is: within about 0.01 dB of kodak_rd.py's PSNR of the rounded latents).
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
from lic.errors import LicError  # noqa: E402
from lic.imageio import read_image  # noqa: E402
from lic.models.base import pad_to  # noqa: E402
from lic.models.transform import TransformCodec  # noqa: E402
from lic.train import bpp_of  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b) ** 2).mean())
    return float(-10 * np.log10(max(mse, 1e-12)))


@torch.no_grad()
def measure(model: TransformCodec, x: torch.Tensor, y0: torch.Tensor, quality: int) -> dict:
    """y0 = g_a(padded x), before the gain."""
    h, w = x.shape[-2:]
    y = y0 * model._gain(quality)
    inv = model._gain(quality, inverse=True)
    ceiling = model.g_s(y * inv)[..., :h, :w]
    rounded = model.g_s(torch.round(y) * inv)[..., :h, :w]
    _, lik = model.latent(y)
    return {"ceiling": _psnr(ceiling, x), "rounded": _psnr(rounded, x), "est_bpp": float(bpp_of(lik, h * w))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["bmshj2018-hyperprior"], help="shipped names or weights files")
    ap.add_argument("--images", nargs="+", help="Kodak file names (default: all 24)")
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "transform_ceiling"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kodak = Path(args.kodak)
    paths = [kodak / n for n in args.images] if args.images else sorted(kodak.glob("kodim*.png"))
    if not paths or not all(p.is_file() for p in paths):
        print(f"transform_ceiling: Kodak images not found in {kodak}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.model:
        try:
            model = zoo.load_model(name).float().eval()
        except LicError as e:
            print(f"transform_ceiling: {e}", file=sys.stderr)
            return 2
        if not isinstance(model, TransformCodec):
            print(f"transform_ceiling: {name} is not a one-shot transform codec", file=sys.stderr)
            return 2
        model.ensure_tables()
        per_image: dict[str, dict] = {}
        for p in paths:
            a = np.asarray(read_image(p).convert("RGB"), dtype=np.float32) / 255
            x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None]
            with torch.no_grad():
                y0 = model.g_a(pad_to(x, model.PAD)).float()
            per_image[p.name] = {str(q): measure(model, x, y0, q) for q in model.qualities}
        means = {str(q): {k: float(np.mean([r[str(q)][k] for r in per_image.values()]))
                          for k in ("ceiling", "rounded", "est_bpp")} for q in model.qualities}
        label = Path(name).parent.name + "_" + Path(name).stem if Path(name).suffix else name
        (out / f"{label}.json").write_text(json.dumps(
            {"model": str(name), "config": model.config(), "images": len(paths),
             "means": means, "per_image": per_image}, indent=1))
        print(f"{name} ({len(paths)} images)")
        print("   q  est bpp  rounded dB  ceiling dB")
        for q, m in means.items():
            print(f"  {q:>2}  {m['est_bpp']:7.4f}  {m['rounded']:10.2f}  {m['ceiling']:10.2f}")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
