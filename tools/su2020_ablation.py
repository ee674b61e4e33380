#!/usr/bin/env python
"""The paper's ablation from trained weights: the same scalable codec without its hyperprior.

    python tools/su2020_ablation.py --data ../shared/data/train --out runs/suf-init/model.safetensors   # from the shipped model
    lic train --resume runs/suf-init/model.safetensors --name su2020-rnn-factorized --data DIR --out runs/suf ...

Su et al. (ICIP 2020) report their codec with and without the RNN hyperprior.  Training the ablation from
scratch beside the hyperprior model only compares two young models; this tool instead copies a trained
``su2020-rnn-hyperprior`` into ``su2020-rnn-factorized`` (the same widths, cell, λ and gains), keeps every
transform, and replaces the hyperprior with fresh per-layer factorized priors:

    su2020-rnn-hyperprior:   enc ─ ŷ_k ─ dec         ŷ_k ~ N(0, σ_k),  σ_k = h_s(ẑ_k, state)   ẑ_k ~ factorized
    su2020-rnn-factorized:   enc ─ ŷ_k ─ dec         ŷ_k ~ factorized prior of layer k (fresh)
                             └─ copied ─┘

Fresh priors start wide (kodim23 coded at 2.70 bpp over the four layers, 0.63 once they are fitted) and
learn slowly at the training learning rate, while their rate gradient pulls on the copied transforms.  So
with ``--data`` the priors are first fitted, transforms frozen, to the rounded latents of training crops
(Adam on the priors alone, ``--fit-steps``), and the ablation starts where the hyperprior model stands: with
entropy models that match its latents.  Both then train for the same time on the same data, so the
difference left is the hyperprior's.

``--check IMAGE`` codes an image at every layer with the file just written (real files) and prints bpp / PSNR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from lic import zoo  # noqa: E402
from lic.models import build  # noqa: E402
from su2020_from_toderici import sample_crops, write  # noqa: E402


def convert(src) -> torch.nn.Module:
    """A factorized-prior ScalableRecurrentCodec with ``src``'s transforms and gains; fresh priors."""
    cfg = src.config()
    if cfg.get("arch") != "ScalableRecurrentCodec" or not cfg.get("hyperprior"):
        raise SystemExit("the source must be a scalable recurrent codec with a hyperprior (su2020-rnn-hyperprior)")
    dst = build({**cfg, "hyperprior": False})
    new = dict(dst.state_dict())
    for k, v in src.state_dict().items():
        if k in new:  # the transforms and gains; the hyperprior's tensors have no counterpart
            new[k] = v.float()
    dst.load_state_dict(new)
    return dst


@torch.no_grad()
def layer_latents(model, crops: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's latent y_k (before rounding) for ``crops`` (N, 3, H, W) in [0, 1], the decoder fed round(y_k)."""
    from lic.models.base import pad_to

    xp = pad_to(crops, model.PAD) - 0.5
    enc, dec, x_hat, ys = [None] * len(model.enc_rnn), [None] * len(model.dec_rnn), None, []
    for k in range(model.layers):
        y = model._encode_step(xp if x_hat is None else xp - x_hat, enc, k)
        ys.append(y)
        x_hat = model._decode_step(torch.round(y), dec, x_hat, k)
    return ys


def fit_priors(model, ys: list[torch.Tensor], steps: int = 300, lr: float = 0.02) -> list[tuple[float, float]]:
    """Fits each layer's factorized prior to its latents (additive uniform noise, as in training), nothing
    else; returns (bits per latent before, after) per layer, measured on the rounded latents."""
    out = []
    for prior, y in zip(model.y_priors, ys):
        def bits():
            prior.eval()
            with torch.no_grad():
                return float(-torch.log2(prior(y)[1]).mean())

        before = bits()
        params = list(prior.parameters())
        opt = torch.optim.Adam(params, lr=lr)
        prior.train()
        for _ in range(steps):
            opt.zero_grad()
            _, lik = prior(y)
            (-torch.log2(lik).mean()).backward()
            opt.step()
        out.append((before, bits()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="su2020-rnn-hyperprior", help="model name or weights file")
    ap.add_argument("--out", required=True, help="weights file to write (.safetensors)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--data", help="folder of training images: fit the fresh priors to crops of it first")
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--fit-steps", type=int, default=300)
    ap.add_argument("--check", metavar="IMAGE", help="also code IMAGE at every layer with the file just written")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} exists (use --force)")
    src = zoo.load_model(args.source).float().eval()
    model = convert(src).eval()
    fit = None
    if args.data:
        fit = fit_priors(model, layer_latents(model, sample_crops(args.data, args.crops, args.crop)),
                         steps=args.fit_steps)
        for k, (a, b) in enumerate(fit, 1):
            print(f"layer {k} prior: {a:.3f} -> {b:.3f} bits per latent on {args.crops} crops of {args.crop}")
        model.eval()
    write(model, out, "su2020-rnn-factorized",
          {"from": str(args.source), "source_digest": zoo.model_digest(src).hex(), "tool": "tools/su2020_ablation.py",
           "priors_fitted": None if fit is None else {"data": args.data, "crops": args.crops, "crop": args.crop,
                                                      "steps": args.fit_steps}}, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
