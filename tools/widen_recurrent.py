#!/usr/bin/env python
"""Widen a trained recurrent codec (toderici2017-rnn, su2020-rnn-*) without changing what it computes.

    python tools/widen_recurrent.py --enc 16,32,96,128 --dec 128,128,128,32,16 --out runs/wide-init/model.safetensors
    lic train --resume runs/wide-init/model.safetensors --name toderici2017-rnn --data DIR --out runs/wide ...

Issue 3's PSNR aim (ahead of JPEG 4:2:0 at every rate from 0.25 bpp) waits for wider layers than the
shipped ones (docs/training.md: every CPU round since the MSE switch gained 1-3 %, the high rates stay
~1.3 dB behind).  A wider model trained from scratch would spend a GPU round relearning what the shipped
weights know.  This tool builds the wider model so that it starts as the shipped one, unit for unit:

    every old unit keeps its weights;                     old → old:  copied
    a new unit's incoming weights are freshly drawn;      any → new:  the wide model's own initialization
    a new unit's outgoing weights are zero,               new → old:  0
    so it adds exact zeros to every old unit's sum and the codec computes what it computed before
    (up to float summation order).  Training then gives the new units a use: the gradient of a zero
    outgoing weight is the new unit's activation times the old unit's gradient, not zero.

The gated convolutions of a GRU hold their gates one after the other (z | r | candidate for ``conv_x``,
z | r for ``conv_h``), so the old units of each gate keep their place in that gate's block; the
decoder's depth-to-space takes channels 4c..4c+3 to channel c, so the new hidden units of a decoder cell
land after the old ones in the next cell's input.  The bit context model, the binarizer's 32 outputs and
the image output are unchanged (bits, iterations and the file format stay the same).  su2020's trunks are
the same modules and widen the same way; its latents, gains and hyperprior keep their sizes and weights.

``--check IMAGE`` codes an image with the source and the widened model (real files) and prints both.
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
from su2020_from_toderici import add_output_arguments, check, output_path, write  # noqa: E402  (shared with that tool)

#: gate blocks along the output channels of each GRU convolution
GATES = {"conv_x": 3, "conv_h": 2, "conv_c": 1}


def _positions(old: int, new: int, blocks: int = 1) -> torch.Tensor:
    """Where the ``old`` channels (``blocks`` equal blocks, one after the other) sit among ``new`` channels."""
    a, b = old // blocks, new // blocks
    return torch.cat([torch.arange(a) + k * b for k in range(blocks)])


def _blocks(name: str) -> int:
    parts = name.split(".")
    return GATES.get(parts[-2], 1) if len(parts) >= 2 else 1


def widen(src, enc_channels, dec_channels, seed: int = 0) -> torch.nn.Module:
    """The model ``src`` with encoder widths ``enc_channels`` and decoder widths ``dec_channels`` (each at least
    the source's), computing what ``src`` computes."""
    cfg = src.config()
    if cfg.get("arch") not in ("RecurrentCodec", "ScalableRecurrentCodec"):
        raise SystemExit("the source must be a recurrent codec (toderici2017-rnn* or su2020-rnn-*)")
    if cfg["cell"] != "gru" or cfg.get("encoder_cell", "gru") != "gru":
        raise SystemExit("only GRU cells can be widened (the shipped models' cell)")
    enc, dec = list(enc_channels), list(dec_channels)
    if len(enc) != 4 or len(dec) != 5:
        raise SystemExit("give 4 encoder widths and 5 decoder widths")
    if any(n < o for n, o in zip(enc + dec, cfg["enc_channels"] + cfg["dec_channels"])):
        raise SystemExit(f"widths can only grow: the source has encoder {cfg['enc_channels']}, "
                         f"decoder {cfg['dec_channels']}")
    if any(d % 4 for d in dec[1:]):
        raise SystemExit("decoder widths after the first must be multiples of 4 (depth-to-space)")
    torch.manual_seed(seed)
    dst = build({**cfg, "enc_channels": enc, "dec_channels": dec})
    old = {k: v.float() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    new = {k: v.clone().float() if v.is_floating_point() else v for k, v in dst.state_dict().items()}
    for k, w in new.items():
        v = old[k]
        if v.shape == w.shape or w.numel() == 0 or k.startswith("context."):  # as before; coding tables
            new[k] = v
            continue
        outs = _positions(v.shape[0], w.shape[0], _blocks(k))
        if v.dim() == 1:  # bias: old units keep theirs, new ones their initialization
            w[outs] = v
            continue
        ins = _positions(v.shape[1], w.shape[1])
        rows = w[outs]
        rows.zero_()  # old units: new inputs contribute nothing ...
        rows[:, ins] = v  # ... and old inputs what they did
        w[outs] = rows
    dst.load_state(new)  # (the coding tables' buffers take the source's sizes)
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="toderici2017-rnn", help="model name or weights file")
    ap.add_argument("--enc", required=True, help="encoder widths, 4 comma-separated numbers")
    ap.add_argument("--dec", required=True, help="decoder widths, 5 comma-separated numbers")
    ap.add_argument("--name", help="model name in the file (default: the source's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new units' initialization")
    add_output_arguments(ap)  # --out, --force, --check IMAGE (the source is coded too)
    args = ap.parse_args(argv)
    out = output_path(args)
    try:
        enc = [int(v) for v in args.enc.split(",")]
        dec = [int(v) for v in args.dec.split(",")]
    except ValueError:
        raise SystemExit("--enc and --dec take comma-separated whole numbers") from None
    src = zoo.load_model(args.source).float().eval()
    model = widen(src, enc, dec, args.seed).eval()
    n_src, n_dst = (sum(p.numel() for p in m.parameters()) for m in (src, model))
    print(f"{n_src / 1e6:.2f} M -> {n_dst / 1e6:.2f} M parameters")
    if args.check:
        for q, (bpp, psnr) in enumerate(check(src, args.check), 1):
            print(f"source: {Path(args.check).name} {q} {src.prefix_unit}: {bpp:.4f} bpp, {psnr:.2f} dB PSNR")
    out.parent.mkdir(parents=True, exist_ok=True)
    write(model, out, args.name or src.name, {"from": str(args.source), "from_digest": zoo.model_digest(src).hex()[:16],
                                              "seed": args.seed, "tool": "tools/widen_recurrent.py"}, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
