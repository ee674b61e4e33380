#!/usr/bin/env python
"""Start the scalable recurrent codec (issue 5, Su et al. 2020) from trained toderici2017-rnn weights.

    python tools/su2020_from_toderici.py --data ../shared/data/train --out runs/su-init/model.safetensors
    python tools/su2020_from_toderici.py --entropy factorized --data ../shared/data/train --out runs/suf-init/model.safetensors
    lic train --resume runs/su-init/model.safetensors --name su2020-rnn-hyperprior --data DIR --out runs/su ...

Su et al. build their codec on Toderici's recurrent encoder and decoder; only the bottleneck differs.
Trained from scratch on a CPU, the scalable codec spent its first two hours learning what the shipped
progressive codec already knows (docs/training.md: 23.2 dB at 1.07 bpp after 112 minutes).  So this tool
copies the progressive codec's networks into it, module for module, and training then has to learn the
new bottleneck, the entropy models, and four layers where the source has sixteen iterations:

    toderici2017-rnn:  r ─ enc_stem ─ enc_rnn ×3 ─ binarizer (1×1, tanh, sign) ─ b ∈ {±1}³² ─ dec_stem ─ dec_rnn ×4 ─ dec_out
    su2020:            r ─ enc_stem ─ enc_rnn ×3 ─ enc_out (1×1) ·γ_k ─ round ─ ŷ ·γ'_k ─ dec_stem ─ dec_rnn ×4 ─ dec_out
                                                   └── the binarizer's 1×1 convolution

(same cell type, widths and kernels as the source; M = the source's 32 bits.)  The gains are set so that the
decoder first sees what it was trained on, values about ±1: with a_c the binarizer's pre-activation of channel
c and s_c its median |a_c| over crops of ``--data`` (first iteration), γ_k,c = c_k / s_c and γ'_k = 1 / c_k,
so ŷ·γ'_k ≈ a_c / s_c, quantized in steps of 1 / c_k; c_k = ``--step`` · sqrt(λ_k / λ_1) grows with the
layer's λ as in the model's own initialization.  The hyperprior (``--entropy hyperprior``) or the per-layer
factorized priors (``--entropy factorized``, the ablation) start fresh.  The binary context model of the
source has no counterpart and is dropped.

``--check IMAGE`` codes an image at every layer with the file just written (real files) and prints bpp / PSNR.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.models import build  # noqa: E402

LAMBDAS = (0.0025, 0.005, 0.01, 0.02)
SHARED = ("enc_stem", "enc_rnn", "dec_stem", "dec_rnn", "dec_out")


@torch.no_grad()
def binarizer_scale(src, crops: torch.Tensor) -> torch.Tensor:
    """Median |pre-activation| of each binarizer channel at the first iteration, over ``crops`` (N, 3, H, W) in [0, 1]."""
    from lic.models.base import pad_to
    from lic.models.recurrent_trunk import run_encoder

    a = src.binarizer(run_encoder(src, pad_to(crops, src.PAD) - 0.5, [None] * len(src.enc_rnn)))
    return a.abs().transpose(0, 1).reshape(a.shape[1], -1).median(dim=1).values.clamp_min(1e-3)


def convert(src, entropy: str, lambdas, scale: torch.Tensor, step: float = 1.0) -> torch.nn.Module:
    cfg = src.config()
    if cfg.get("arch") != "RecurrentCodec":
        raise SystemExit("the source must be a toderici2017-rnn model (RecurrentCodec)")
    if cfg["cell"] != cfg["encoder_cell"]:
        raise SystemExit("the source's encoder and decoder cells differ; the scalable codec has one cell type")
    if cfg["reconstruction"] != "additive":
        raise SystemExit("the source must use additive reconstruction (the scalable codec's)")
    dst = build({"arch": "ScalableRecurrentCodec", "hyperprior": entropy == "hyperprior", "lambdas": list(lambdas),
                 "cell": cfg["cell"], "enc_channels": cfg["enc_channels"], "dec_channels": cfg["dec_channels"],
                 "latent": cfg["bits"], "kernel": cfg["kernel"], "enc_hidden_kernel": cfg["enc_hidden_kernel"],
                 "dec_hidden_kernels": cfg["dec_hidden_kernels"]})
    s = {k: v.float() for k, v in src.state_dict().items()}
    new = dict(dst.state_dict())
    for k, v in s.items():
        if k.split(".")[0] in SHARED:
            assert new[k].shape == v.shape, (k, new[k].shape, v.shape)
            new[k] = v
    new["enc_out.weight"], new["enc_out.bias"] = s["binarizer.weight"], s["binarizer.bias"]
    c = torch.tensor([step * math.sqrt(v / lambdas[0]) for v in lambdas]).unsqueeze(1)  # (layers, 1)
    new["log_gain"] = torch.log(c / scale.unsqueeze(0))
    new["log_inv_gain"] = -torch.log(c).expand_as(new["log_gain"]).clone()
    dst.load_state_dict(new)
    return dst


def sample_crops(folder: str, n: int, crop: int) -> torch.Tensor:
    """``n`` random crops of ``crop``² from ``folder`` as (n, 3, crop, crop) in [0, 1] (torch seed 0)."""
    from lic.data import CropDataset

    torch.manual_seed(0)
    data = CropDataset(folder, crop=crop, length=n)
    return torch.stack([data[i] for i in range(n)]).float() / 255


def write(model, out: Path, name: str, init: dict, check_image: str | None = None) -> None:
    """Saves ``model`` as ``name`` to ``out`` (through a temporary file, so no half-written weights), records
    ``init`` in the file, and with ``check_image`` codes it at every layer from the file just written."""
    tmp = out.with_name(out.name + ".tmp")
    digest = zoo.save_weights(model, tmp, name, extra={"init": init})
    tmp.replace(out)
    print(f"{name} -> {out} (digest {digest.hex()})")
    if check_image:
        model = zoo.load_weights(out)
        for q, (bpp, psnr) in enumerate(check(model, check_image), 1):
            print(f"{Path(check_image).name} {q} {model.prefix_unit}: {bpp:.4f} bpp, {psnr:.2f} dB PSNR")


def add_output_arguments(ap: argparse.ArgumentParser) -> None:
    """--out, --force and --check, as the tools that write converted weights (:func:`write`) take them."""
    ap.add_argument("--out", required=True, help="weights file to write (.safetensors)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--check", metavar="IMAGE",
                    help="also code IMAGE at every iteration or layer with the file just written")


def output_path(args) -> Path:
    """``--out``, refused before any work when it exists and ``--force`` is not given."""
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} exists (use --force)")
    return out


def check(model, image: str) -> list[tuple[float, float]]:
    """(bpp of the real prefix file, PSNR) after each layer, for one image."""
    import numpy as np

    from lic import codec, metrics
    from lic.imageio import read_image

    img = read_image(image)
    ref = np.asarray(img.convert("RGB"))
    rows = []
    for q in model.qualities:
        data = codec.encode(img, model=model, quality=q).data
        rec = np.asarray(codec.decode(data, model=model).convert("RGB"))
        rows.append((8 * len(data) / (img.width * img.height), metrics.psnr(ref, rec)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="toderici2017-rnn", help="model name or weights file")
    ap.add_argument("--entropy", choices=("hyperprior", "factorized"), default="hyperprior")
    ap.add_argument("--lambdas", type=float, nargs="+", default=list(LAMBDAS), help="one λ per layer")
    ap.add_argument("--step", type=float, default=1.0, help="c_1: quantization steps per median |activation|, layer 1")
    ap.add_argument("--data", required=True, help="folder of training images: crops set the gains")
    ap.add_argument("--crops", type=int, default=32)
    add_output_arguments(ap)
    args = ap.parse_args(argv)
    out = output_path(args)
    crops = sample_crops(args.data, args.crops, 128)
    src = zoo.load_model(args.source).float().eval()
    scale = binarizer_scale(src, crops)
    print(f"binarizer |pre-activation| median per channel: {float(scale.min()):.3f} .. {float(scale.max()):.3f}")
    model = convert(src, args.entropy, args.lambdas, scale, args.step).eval()
    write(model, out, f"su2020-rnn-{args.entropy}",
          {"from": str(args.source), "step": args.step, "tool": "tools/su2020_from_toderici.py"}, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
