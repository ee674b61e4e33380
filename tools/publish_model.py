#!/usr/bin/env python
"""Publish trained weights into the package, with their model card.

    # 1. weights from a training checkpoint into lic/weights/
    python tools/publish_model.py --ckpt runs/x/ckpt.pt --train-json runs/x/train.json
    # 2. measure them on Kodak (real files)
    python benchmarks/kodak_rd.py
    # 3. the same command with the measurements: metadata + lic/weights/NAME.md
    python tools/publish_model.py --ckpt runs/x/ckpt.pt --train-json runs/x/train.json \
        --kodak results/kodak_rd/NAME/summary.json

The tensors (and so the digest in every file header) do not change between 1 and 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.models import build  # noqa: E402


def card(name: str, model, train: dict, kodak: dict | None) -> str:
    cfg = model.config()
    lines = [f"# Model card: `{name}`", "",
             "Ballé, Minnen, Singh, Hwang, Johnston, *Variational image compression with a scale hyperprior*, "
             "ICLR 2018 — GDN transforms, scale hyperprior, factorized prior on the hyper-latents — with per-channel "
             "gain vectors (Cui et al., CVPR 2021) so that one network serves every quality level. MSE-optimized.", "",
             "## Architecture", "",
             f"N = {cfg['N']}, M = {cfg['M']}; qualities 1..{len(cfg['lambdas'])} with "
             f"λ = {', '.join(f'{l:g}' for l in cfg['lambdas'])} (loss λ·255²·MSE + bpp). fp16 weights, integer coding "
             "tables and the integer hyper-synthesis are stored in the safetensors file.", "",
             "## Training", ""]
    for k, v in train.items():
        lines.append(f"- **{k}**: {v}")
    if kodak:
        lines += ["", "## Kodak (24 images, real entropy-coded files)", "",
                  f"Measured with `{kodak['command']}` ({kodak['threads']} threads, torch {kodak['torch']}, "
                  f"{kodak['cpu']}); peak memory by {kodak['memory_method']}.", "",
                  "| quality | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) | file vs estimate | encode s | decode s | "
                  "decoded = encoder's |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for q, v in kodak["qualities"].items():
            lines.append(f"| {q} | {v['bpp']:.4f} | {v['psnr']:.2f} | {v['ms_ssim']:.4f} | {v['ms_ssim_db']:.2f} | "
                         f"{v['payload_vs_estimate_pct']:+.2f} % | {v['encode_s']:.3f} | {v['decode_s']:.3f} | "
                         f"{'yes' if v['all_decoded_equal_encoder'] else 'NO'} |")
        lines += ["", "BD-rate (PSNR, pchip) against published Kodak curves (`shared/anchors/kodak_rd.csv`):", ""]
        for k, v in kodak["bd_rate_psnr_vs_published"].items():
            if v.get("bd_rate_pct") is None:
                lines.append(f"- {k}: not defined ({v.get('why')})")
            else:
                lines.append(f"- {k}: {v['bd_rate_pct']:+.1f} % over {v['psnr_range'][0]:.2f}–{v['psnr_range'][1]:.2f} dB")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="training checkpoint (.pt) or weights (.safetensors)")
    ap.add_argument("--name", default=zoo.DEFAULT_MODEL)
    ap.add_argument("--train-json", help="JSON object describing the training (data, steps, device, command...)")
    ap.add_argument("--kodak", help="summary.json written by benchmarks/kodak_rd.py for these weights")
    args = ap.parse_args()
    if args.ckpt.endswith(".pt"):
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        model = build(ck["config"])
        model.load_state(ck["model"])
    else:
        src = zoo.load_weights(args.ckpt)
        model = build(src.config())
        model.load_state(src.state_dict())
    model.eval()
    train = json.loads(Path(args.train_json).read_text()) if args.train_json else {}
    kodak = json.loads(Path(args.kodak).read_text()) if args.kodak else None
    extra = {"train": train}
    if kodak:
        extra["kodak"] = {q: {"bpp": round(v["bpp"], 4), "psnr": round(v["psnr"], 2), "ms_ssim": round(v["ms_ssim"], 4)}
                          for q, v in kodak["qualities"].items()}
    text = card(args.name, model, train, kodak)
    out = zoo.WEIGHTS_DIR / f"{args.name}.safetensors"
    digest = zoo.save_weights(model, out, name=args.name, card=text, extra=extra)
    if kodak and kodak.get("digest") not in (None, digest.hex()):
        print(f"warning: the Kodak summary was measured on weights {kodak['digest']}, these are {digest.hex()}",
              file=sys.stderr)
    (zoo.WEIGHTS_DIR / f"{args.name}.md").write_text(text)
    print(f"published {out} (digest {digest.hex()}) and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
