#!/usr/bin/env python
"""Average the weights of training runs that started from the same weights (a "model soup").

    python tools/average_weights.py runs/a/ckpt.pt runs/b/ckpt.pt --out runs/ab
    python tools/average_weights.py lic/weights/NAME.safetensors runs/b/ckpt.pt --out runs/ab  # weights files too

Two CPU runs side by side (one thread each) make more steps in all than one run on two threads; runs that
continue the same weights with different data seeds stay close enough that the mean of their weights is
often better than either (Wortsman et al., "Model soups", ICML 2022).  Whether it is, is measured on Kodak
before anything ships (toderici2017-rnn's ninth CPU round: docs/training.md).

Every floating-point tensor of the model and of the Adam state is averaged; integer tensors (the coding
tables) are rebuilt from the averaged weights when they are exported.  ``--out`` receives ``ckpt.pt``
(``--resume`` continues from it; its step count and time are the longest run's, so record what each run
did in the model card's training JSON) and ``model.safetensors`` (fp16 with coding tables, as ``lic train``
exports; existing ones only with ``--force``, never an input checkpoint).  A weights file (``.safetensors``,
e.g. the shipped model a run continued) may stand among the inputs; it has no Adam state, so then only
``model.safetensors`` is written (``lic train --resume`` takes it).  Runs of different configurations or
parameter sets, and files that are neither ``lic train`` checkpoints nor lic weights, are refused in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.errors import ModelError  # noqa: E402
from lic.models import build  # noqa: E402


def _mean(values: list):
    first = values[0]
    if isinstance(first, torch.Tensor):
        if first.is_floating_point():
            return sum((v.to(first.dtype) for v in values[1:]), first) / len(values)  # (a + b) / 2 for two
        return first
    if isinstance(first, dict):
        return {k: _mean([v[k] for v in values]) for k in first}
    if isinstance(first, list):
        return [_mean([v[i] for v in values]) for i in range(len(first))]
    return first


def _load(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    if path.suffix == ".safetensors":  # shipped or exported weights: no Adam state, no step count
        try:
            model = zoo.load_weights(path)
        except Exception:
            raise SystemExit(f"{path}: not lic weights") from None
        return {"model": {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()},
                "opt": None, "config": model.config(), "step": 0, "elapsed": 0.0,
                "decoder_only": None, "mixed_quantization": None}  # training settings: not recorded
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # anything torch cannot read
        ck = None
    if not isinstance(ck, dict) or not {"model", "opt", "config", "step", "elapsed"} <= ck.keys():
        raise SystemExit(f"{path}: not a training checkpoint of lic train (ckpt.pt)")
    return ck


def average(paths: list[Path]) -> dict:
    cks = [_load(p) for p in paths]
    for p, ck in zip(paths[1:], cks[1:]):
        if ck["config"] != cks[0]["config"]:
            raise SystemExit(f"{p}: another model configuration than {paths[0]}")
        if ck["model"].keys() != cks[0]["model"].keys() or any(
                v.shape != cks[0]["model"][k].shape for k, v in ck["model"].items() if v.is_floating_point()):
            raise SystemExit(f"{p}: other parameters than {paths[0]}")
    flags = {}
    for flag in ("decoder_only", "mixed_quantization"):
        known = {ck.get(flag, False) for ck in cks} - {None}  # weights files do not record them
        if len(known) > 1:
            raise SystemExit(f"{flag} differs between the runs to average")
        flags[flag] = known.pop() if known else False
    opts = [ck["opt"] for ck in cks]
    return {"model": _mean([ck["model"] for ck in cks]), "opt": None if None in opts else _mean(opts),
            "step": max(ck["step"] for ck in cks), "elapsed": max(ck["elapsed"] for ck in cks),
            "config": cks[0]["config"], **flags, "averaged_from": [str(p) for p in paths]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpts", nargs="+", type=Path,
                    help="ckpt.pt files (or .safetensors weights) of runs that started from the same weights")
    ap.add_argument("--out", required=True, type=Path, help="folder for ckpt.pt and model.safetensors")
    ap.add_argument("--name", help="model name written into the weights (default: the configuration's)")
    ap.add_argument("--force", action="store_true", help="replace ckpt.pt / model.safetensors already in --out")
    args = ap.parse_args()
    if len(args.ckpts) < 2:
        raise SystemExit("give at least two checkpoints to average")
    targets = [args.out / "ckpt.pt", args.out / "model.safetensors"]
    inputs = {p.resolve() for p in args.ckpts}
    if any(t.resolve() in inputs for t in targets):
        raise SystemExit(f"{args.out}: holds one of the checkpoints to average; give another --out")
    if not args.force and any(t.exists() for t in targets):
        raise SystemExit(f"{args.out}: already holds ckpt.pt or model.safetensors (--force replaces them)")
    ck = average(args.ckpts)
    model = build(ck["config"])
    model.load_state(ck["model"])
    model.eval()
    created = not args.out.exists()
    args.out.mkdir(parents=True, exist_ok=True)
    if ck["opt"] is None:  # a weights file among the inputs: nothing to resume exactly, weights only
        targets = targets[1:]
    tmp = [t.with_name(t.name + ".tmp") for t in targets]
    try:
        if ck["opt"] is not None:
            torch.save(ck, tmp[0])
        digest = zoo.save_weights(model, tmp[-1], name=args.name or model.name,
                                  card=f"mean of the weights of {', '.join(ck['averaged_from'])}",
                                  extra={"train": {"steps": ck["step"], "minutes": round(ck["elapsed"] / 60, 2),
                                                   "averaged_from": ck["averaged_from"]}})
    except ModelError as exc:  # e.g. weights its coding tables cannot hold: nothing is left behind
        for t in tmp:
            t.unlink(missing_ok=True)
        if created:
            args.out.rmdir()
        raise SystemExit(f"cannot export the mean of these runs: {exc}") from None
    for t, final in zip(tmp, targets):
        os.replace(t, final)
    print(f"averaged {len(args.ckpts)} runs into {args.out} (digest {digest.hex()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
