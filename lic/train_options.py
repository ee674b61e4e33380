"""The options of ``lic train`` and their checks, apart from the training loop (:mod:`lic.train`) so that
``lic --help`` and a refused option answer at once, without importing torch."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from . import DEFAULT_MODEL
from .errors import InputError, OutputError
from .files import check_creatable_folder

MIN_CROP = 16  # pixels: smaller training crops are padded to the models' 16-pixel grid anyway


def add_arguments(p) -> None:
    p.add_argument("--model",
                   help="architecture to train: bmshj2018-hyperprior, toderici2017-rnn, attention-factorized, "
                        f"attention-hyperprior, ... (an unknown name lists them all; default: {DEFAULT_MODEL}, or "
                        "with --resume the architecture of what it resumes)")
    p.add_argument("--data", required=True, help="folder of training images (searched recursively)")
    p.add_argument("--out", required=True, help="folder for checkpoints, weights and logs")
    p.add_argument("--lambda", dest="lambdas", type=float, nargs="+", help="λ per quality level (default: the model's)")
    p.add_argument("--channels", type=int, nargs=2, metavar=("N", "M"), help="transform widths (default 128 192)")
    p.add_argument("--config", help="constructor arguments as JSON, e.g. '{\"cell\": \"gru\", \"iterations\": 8}'; "
                   "with --resume WEIGHTS, the settings to change (e.g. '{\"loss\": \"mix\"}')")
    p.add_argument("--minutes", type=float, help="training time budget")
    p.add_argument("--steps", type=int, help="stop after this many steps")
    p.add_argument("--resume", help="checkpoint (.pt) to resume exactly, or weights / shipped model name to warm-start")
    p.add_argument("--decoder-only", action="store_true",
                   help="fine-tune only the synthesis transform on the rounded latents the coder sends (with "
                        "--resume): files keep their coded bytes, decoded pixels improve")
    p.add_argument("--encoder-only", action="store_true",
                   help="fine-tune only the analysis transforms (g_a, its gains, h_a) for the decoder as it is (with "
                        "--resume): the decoder and its coding tables stay the same")
    p.add_argument("--mixed-quantization", action="store_true",
                   help="transform codecs: the synthesis transform sees the rounded latents (straight-through "
                        "gradient) while the rate keeps additive noise")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--ckpt-minutes", type=float, default=1.0, help="minutes between checkpoints (0: after every step; default 1)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-dir", help="evaluate the final weights on real files from this folder")
    p.add_argument("--eval-images", type=int, help="evaluate on at most this many images")
    p.add_argument("--name", help="model name recorded in the weights (default: the architecture's name)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-f", "--force", action="store_true", help="start a new run in an --out that holds one (its "
                   "checkpoint and weights are replaced)")
    p.add_argument("--quiet", action="store_true")


def is_checkpoint(path) -> bool:
    """A training checkpoint (``.pt``, any case), resumed exactly; anything else given to --resume is weights."""
    return str(path).lower().endswith(".pt")


def check_arguments(args) -> None:
    """What a user can get wrong on the command line, checked before a folder is made or a model built."""
    if not Path(args.data).is_dir():
        if Path(args.data).exists():
            raise InputError(f"--data must be a folder of images: {args.data} is a file")
        raise InputError(f"training data folder not found: {args.data}")
    for flag, value in (("--minutes", args.minutes), ("--lr", args.lr), ("--clip", args.clip)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{flag} takes a positive number, got {value:g}")
    if not (math.isfinite(args.ckpt_minutes) and args.ckpt_minutes >= 0):  # 0: a checkpoint after every step
        raise InputError(f"--ckpt-minutes takes a number >= 0, got {args.ckpt_minutes:g}")
    for flag, value, least in (("--steps", args.steps, 1), ("--batch", args.batch, 1), ("--warmup", args.warmup, 1),
                               ("--log-every", args.log_every, 1), ("--workers", args.workers, 0),
                               ("--eval-images", args.eval_images, 1), ("--crop", args.crop, MIN_CROP)):
        if value is not None and value < least:
            raise InputError(f"{flag} takes a whole number >= {least}, got {value}")
    if not (args.minutes or args.steps):
        raise InputError("give a budget: --minutes M or --steps N")
    if args.lambdas and not all(math.isfinite(v) and v > 0 for v in args.lambdas):
        raise InputError(f"--lambda takes positive numbers, got {' '.join(f'{v:g}' for v in args.lambdas)}")
    if args.channels and min(args.channels) < 1:
        raise InputError(f"--channels takes two positive widths, got {' '.join(map(str, args.channels))}")
    if args.eval_dir and not Path(args.eval_dir).is_dir():
        raise InputError(f"--eval-dir: no such folder: {args.eval_dir}")
    if args.eval_dir:
        from .data import readable_images

        try:  # refused now, not after the whole training budget
            readable_images(args.eval_dir)
        except InputError as exc:
            raise InputError(f"--eval-dir: {exc}") from None
    if args.eval_images is not None and not args.eval_dir:
        raise InputError("--eval-images limits --eval-dir: give --eval-dir FOLDER too")
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", args.name):
        raise InputError(f"--name takes a plain model name (letters, digits, '-', '_', '.', '+'), got {args.name!r}")
    if args.device:
        from .zoo import check_device

        check_device(args.device)
    if args.resume and is_checkpoint(args.resume) and not Path(args.resume).is_file():
        raise InputError(f"checkpoint not found: {args.resume}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out must be a folder: {args.out} is a file")
    check_creatable_folder(out, "--out")
    held = [n for n in ("ckpt.pt", "model.safetensors", "log.jsonl") if (out / n).exists()]
    resumed = Path(args.resume).resolve() if args.resume and Path(args.resume).is_file() else None
    if resumed is not None and resumed.parent == out.resolve() and resumed.name != "ckpt.pt":
        raise OutputError(f"--resume {args.resume} lies in --out, where this run writes its own weights: "
                          f"--resume {out / 'ckpt.pt'} continues that run exactly, or give another --out")
    continues = resumed is not None and resumed == (out / "ckpt.pt").resolve()
    if held and not continues and not getattr(args, "force", False):
        raise OutputError(f"{args.out} already holds a run ({', '.join(held)}): --resume {out / 'ckpt.pt'} continues "
                          "it, --force starts over there, or give another --out")
    if getattr(args, "decoder_only", False) and not args.resume:
        raise InputError("--decoder-only fine-tunes trained weights: give them with --resume")
    if getattr(args, "encoder_only", False) and not args.resume:
        raise InputError("--encoder-only fine-tunes trained weights: give them with --resume")
    if getattr(args, "encoder_only", False) and getattr(args, "decoder_only", False):
        raise InputError("--encoder-only and --decoder-only exclude each other: give one")
