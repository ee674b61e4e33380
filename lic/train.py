"""``lic train``: rate–distortion training with a time budget and periodic checkpoints.

Loss per step, with quality level q drawn at random each step (one network, every rate):

    L = λ_q · 255² · MSE(x, x̂) + bpp(ŷ, ẑ)

A model class that defines ``training_loss(x, out, q) -> (loss, bpp, mse)`` and
``training_quality(rng) -> q`` brings its own loss instead (the recurrent codec:
L1 on the residual summed over iterations + its bit context model's BCE); pick it
with ``--model toderici2017-rnn`` and pass constructor arguments with ``--config JSON``.  An optional
``prepare_training()`` runs before the first step (the attention codec loads its LPIPS weights there,
so missing weights stop the run at once with one line).

GPU when present (bf16 autocast for the transforms; likelihoods and the rate
term in fp32), DataLoader workers, gradient clipping, warm-up then a ×0.1
learning-rate decay over the last 15 % of the budget.  ``torchrun
--nproc_per_node K -m lic train ...`` runs data-parallel (NCCL on GPU, gloo on CPU).

``--mixed-quantization`` trains g_s on the rounded latents with a straight-through gradient while the
rate term keeps additive noise (Minnen & Singh, "Channel-wise autoregressive entropy models", ICIP 2020):
the encoder then also learns for the rounding the coder applies.

``--resume WEIGHTS --config JSON`` warm-starts with some settings changed, as long as the weights still
fit: e.g. an MSE warm-up, then ``--config '{"loss": "mix"}'`` for the attention codec.

``--decoder-only`` (with ``--resume``) fine-tunes only the synthesis transform, on the rounded latents
the coder really sends (training otherwise sees additive noise): the latents and coded bytes of every
file stay the same and only the decoded pixels change.  ``--encoder-only`` is its mirror: only g_a, its gains
and h_a learn, for the decoder and coding tables as they are (files made before still decode the same).

Outputs in ``--out``: ``ckpt.pt`` (weights + optimizer, to resume exactly),
``model.safetensors`` (fp16, with coding tables: what gets shipped), ``log.jsonl`` (per logged step: loss,
bpp, PSNR, and the chroma ratio of that step's batch, :func:`lic.metrics.chroma_ratio`)
``result.json`` (steps, minutes, weights digest) and, with ``--eval-dir``, ``eval/per_image.csv`` /
``eval/summary.json`` measured on real files.  A folder that holds a run is only continued (``--resume
OUT/ckpt.pt``) or, with ``--force``, started over; options are checked, and the images listed, before the folder
is made.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import pickle
import random
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from . import metrics, zoo
from .data import CropDataset
from .errors import InputError, Interrupted, LicError, ModelError, TrainingError
from .files import make_folders, remove_empty
from .layers import GDN
from .layers.integer import keep_storable_
from .models import build, check_config
from .train_options import MIN_CROP, add_arguments, check_arguments, is_checkpoint  # noqa: F401  (public names)


def _dist_setup():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def _config_arg(args) -> dict:
    """--config as a dict of constructor arguments ({} when absent)."""
    if not args.config:
        return {}
    try:
        extra = json.loads(args.config)
    except json.JSONDecodeError as exc:
        raise InputError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise InputError("--config must be a JSON object of constructor arguments")
    return extra


def _build(cfg: dict):
    try:
        check_config(cfg)
        return build(cfg)
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. a negative width
        raise InputError(f"bad model configuration: {exc}") from None


def _export_name(args, model) -> str:
    """The name the run's weights carry: --name, else that of the weights or checkpoint it resumed, else the
    architecture's."""
    return args.name or getattr(model, "lic_name", None) or model.name


def _model_arg_known(name: str) -> dict:
    from .models import ARCHITECTURES, config_for

    try:
        return config_for(name)
    except KeyError:
        names = ", ".join(n for cls in ARCHITECTURES.values() for n in (getattr(cls, "variants", None) or [cls.name]))
        raise ModelError(f"unknown model to train: {name} (trainable: {names})") from None


def _check_model_arg(args, config: dict) -> None:
    """--model with --resume must name what the resumed weights are (it cannot change the architecture)."""
    if not args.model:
        return
    want = _model_arg_known(args.model)
    if any(config.get(k) != v for k, v in want.items()):
        raise InputError(f"--model {args.model} does not match the weights of {args.resume} (a {config.get('arch')}"
                         f"); --resume continues their architecture: leave out --model, or drop --resume to start "
                         f"a new {args.model}")


def _initial_model(args):
    """New model, or warm start from shipped weights / a weights file / a checkpoint.

    A checkpoint (.pt) resumes exactly, with its own configuration.  Weights warm-start a model of their
    configuration updated by --config, so a run can change what does not change the tensors' shapes, e.g.
    the loss (``--config '{"loss": "mix"}'`` after an MSE warm-up; λ then follow the new loss unless
    --config gives them too)."""
    exact = bool(args.resume) and is_checkpoint(args.resume)
    if args.resume and (args.lambdas or args.channels or (exact and args.config)):
        warnings.warn(f"{'--config/' if exact else ''}--lambda/--channels ignored: --resume continues with the "
                      "model configuration stored in its checkpoint or weights", stacklevel=2)
    if exact:
        try:
            ckpt = torch.load(args.resume, map_location="cpu", weights_only=False)
            model = build(ckpt["config"])
            model.load_state(ckpt["model"])
            if ckpt.get("name"):
                model.lic_name = ckpt["name"]  # the run goes on exporting under its name
            config = ckpt["config"]
        except (LicError, OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError,
                pickle.UnpicklingError) as exc:
            raise InputError(f"{args.resume}: not a lic training checkpoint ({exc.__class__.__name__})") from None
        _check_model_arg(args, config)
        return model, ckpt
    extra = _config_arg(args)
    if args.resume:
        src = zoo.load_model(args.resume)
        cfg = src.config()
        _check_model_arg(args, cfg)
        old_lambdas = cfg.get("lambdas")
        if "loss" in extra and extra["loss"] != cfg.get("loss") and "lambdas" not in extra:
            cfg.pop("lambdas", None)  # the new loss's own λ ladder
        cfg.update(extra)
        model = _build(cfg)
        levels = getattr(model, "lambdas", None)
        if old_lambdas is not None and levels is not None and len(levels) != len(old_lambdas):
            raise InputError(f"the weights of {args.resume} have {len(old_lambdas)} quality levels, the new "
                             f"configuration {len(levels)}: give {len(old_lambdas)} 'lambdas' in --config")
        try:
            model.load_state(src.state_dict())
        except RuntimeError:
            raise InputError(f"--config {args.config} changes the model's shape: the weights of {args.resume} "
                             "no longer fit (only settings such as the loss can change on a warm start)") from None
        if getattr(src, "meta", {}).get("name"):
            model.lic_name = src.meta["name"]  # continuing toderici2017-rnn-msssim exports toderici2017-rnn-msssim
        return model, None
    cfg = _model_arg_known(args.model or zoo.DEFAULT_MODEL)
    if cfg["arch"] == "ScaleHyperprior":
        if args.lambdas:
            cfg["lambdas"] = args.lambdas
        if args.channels:
            cfg["N"], cfg["M"] = args.channels
    elif cfg["arch"] == "ScalableRecurrentCodec" and args.lambdas and not args.channels:
        cfg["lambdas"] = args.lambdas  # one λ per layer (and so the number of layers)
    elif args.lambdas or args.channels:
        raise InputError("--lambda/--channels apply to the hyperprior; use --config for this model")
    cfg.update(extra)
    return _build(cfg), None


def _require_transform_codec(model, what: str) -> None:
    from .models.transform import TransformCodec

    if not isinstance(model, TransformCodec):
        raise InputError(f"{what} one-shot transform codecs (bmshj2018-hyperprior, attention-*), not {model.name}")


SYNTHESIS_PARTS = ("g_s.", "log_inv_gain")  # --decoder-only
ANALYSIS_PARTS = ("g_a.", "latent.h_a.", "log_gain")  # --encoder-only


def _freeze_all_but(model, parts: tuple[str, ...], option: str) -> None:
    """Only the parameters named ``parts`` learn; the rest is frozen.

    ``--decoder-only`` (the synthesis transform g_s and the inverse gains): the encoder, the hyperprior and the
    entropy model run as in coding (rounded latents, the coder's own tables: the latent codec stays in eval
    mode), so g_s learns from the very latents the files hold, and every file keeps its latents and coded
    bytes; only the decoded pixels (and the weights digest) change.

    ``--encoder-only`` (g_a with its forward gains, and the hyper-analysis h_a): everything the decoder runs
    (g_s, the inverse gains, h_s, the factorized prior) is frozen, so the coding tables stay those of the
    weights resumed and a file made before decodes to the same pixels; the encoder learns better latents for
    the decoder it has (what ``--refine`` searches per image, amortized)."""
    _require_transform_codec(model, f"{option} fine-tunes")
    model.ensure_tables()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(parts))


class _StopOnInterrupt:
    """Ctrl-C (SIGINT) or ``kill`` (SIGTERM, what ``timeout`` and job schedulers send first) during training stops
    the run after the step under way, saves a checkpoint and the weights, and says how to continue
    (:class:`~lic.errors.Interrupted`, exit status 128 + the signal's number); a second signal stops at once.  Only
    in the main thread of a single process (torchrun's ranks keep the default, so that every rank stops together)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    requested = False
    signum = signal.SIGINT

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum
        print("\nlic: stopping after this step to save a checkpoint (a second Ctrl-C or kill stops at once)", file=sys.stderr)

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        return False


def _ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which finishes its step and saves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _batches(loader):
    """The loader's batches; a lic error raised in a DataLoader worker (which torch re-raises with the
    worker's traceback in its message) comes out as its own one-line message."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except LicError as exc:
            last = str(exc).strip().splitlines()[-1]
            raise type(exc)(last.split(f"{type(exc).__name__}: ", 1)[-1]) from None
        yield batch


def _diverged(step: int, out: Path) -> TrainingError:
    kept = f"; {out / 'ckpt.pt'} keeps the last checkpoint" if (out / "ckpt.pt").exists() else ""
    return TrainingError(f"training diverged at step {step} (the loss is not finite): lower --lr or λ and train "
                         f"again{kept}")


def bpp_of(likelihoods: dict, num_pixels: int) -> torch.Tensor:
    return sum(torch.log2(l.float()).sum() for l in likelihoods.values()) / (-num_pixels)


def train(args) -> dict:
    rank, world = _dist_setup()
    seed = args.seed + rank
    random.seed(seed)
    torch.manual_seed(seed)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    model, ckpt = _initial_model(args)
    data = CropDataset(args.data, crop=args.crop, length=10 ** 7)  # lists the images: fails before --out is made
    data.check_decodable()  # and at least one of them decodes
    for m in model.modules():
        if isinstance(m, GDN):
            m.settle_bounds()  # the same function: frozen layers keep their outputs exactly
    decoder_only = bool(getattr(args, "decoder_only", False) or (ckpt or {}).get("decoder_only", False))
    if decoder_only:
        _freeze_all_but(model, SYNTHESIS_PARTS, "--decoder-only")
    encoder_only = bool(getattr(args, "encoder_only", False) or (ckpt or {}).get("encoder_only", False))
    if encoder_only:
        _freeze_all_but(model, ANALYSIS_PARTS, "--encoder-only")
    mixed = bool(getattr(args, "mixed_quantization", False) or (ckpt or {}).get("mixed_quantization", False))
    mixed = mixed or encoder_only  # the encoder learns for the rounding the coder applies (g_s sees round(y))
    if mixed:
        _require_transform_codec(model, "--mixed-quantization trains")
        model.mixed_quantization = True
    if hasattr(model, "prepare_training"):  # e.g. load a perceptual loss's weights: fail before step 1
        model.prepare_training()
    model.to(dev).train()
    if decoder_only:
        model.latent.eval()  # rounding instead of additive noise; rates of the coder's tables
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    storable = model.integer_coded_layers()
    ddp = model
    if world > 1:
        # coding tables are buffers that training never uses (and gloo cannot broadcast int16/uint8)
        DDP = torch.nn.parallel.DistributedDataParallel
        DDP._set_params_and_buffers_to_ignore_for_model(model, [n for n, _ in model.named_buffers()])
        ddp = DDP(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    step, used = 0, 0.0
    if ckpt is not None:
        opt.load_state_dict(ckpt["opt"])  # same parameter order under upgrade_state (tested)
        step, used = ckpt["step"], ckpt["elapsed"]

    sampler = DistributedSampler(data, world, rank, shuffle=True, seed=args.seed) if world > 1 else None
    loader = DataLoader(data, batch_size=args.batch, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, pin_memory=dev.type == "cuda", drop_last=True,
                        persistent_workers=args.workers > 0, worker_init_fn=_ignore_interrupts)
    budget = args.minutes * 60.0 if args.minutes else math.inf
    max_steps = args.steps or math.inf
    if step >= max_steps or used >= budget:  # an exact resume whose checkpoint has spent this budget already
        spent = f"is at step {step}" if step >= max_steps else f"has trained {used / 60:.1f} minutes"
        raise InputError(f"{args.resume} {spent} already: on an exact resume --steps and --minutes are the run's "
                         "totals; give a larger budget")
    lambdas = getattr(model, "lambdas", None)
    custom_loss = getattr(model, "training_loss", None)  # models other than the hyperprior bring their loss
    out = Path(args.out)  # made only now: a run refused above leaves nothing behind
    made = make_folders(out, "--out")
    had_log = (out / "log.jsonl").exists()
    log = open(out / "log.jsonl", "w" if getattr(args, "force", False) else "a") if rank == 0 else None
    bar = None
    if rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=None if max_steps == math.inf else int(max_steps), initial=step, unit="step",
                   desc="train", dynamic_ncols=True, disable=args.quiet)

    def progress() -> float:
        return max(used / budget if budget < math.inf else 0.0, step / max_steps if max_steps < math.inf else 0.0)

    def save(weights: bool = True):
        if rank != 0:
            return
        tmp = out / "ckpt.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": used,
                    "config": model.config(), "decoder_only": decoder_only, "encoder_only": encoder_only,
                    "mixed_quantization": mixed, "name": _export_name(args, model)}, tmp)
        os.replace(tmp, out / "ckpt.pt")
        if weights:
            export(final=False)

    def export(final: bool):
        # fp16 weights with coding tables, beside every checkpoint: ckpt.pt (fp32 + Adam state) is
        # ~5x larger, and the fp16 file is what travels back from a lent GPU and what ships.
        # A copy is exported, so the weights being trained are never rounded to fp16.
        m = model if final else copy.deepcopy(model)
        m.eval().cpu()
        tmp = out / "model.safetensors.tmp"
        digest = zoo.save_weights(m, tmp, name=_export_name(args, model),
                                  card=f"trained by lic train: {step} steps, {used / 60:.1f} min on {dev.type}",
                                  extra={"train": {"steps": step, "minutes": round(used / 60, 2), "device": str(dev),
                                                   "data": str(args.data), "batch": args.batch, "crop": args.crop}})
        os.replace(tmp, out / "model.safetensors")
        return digest

    t_start = time.monotonic() - used
    last_ckpt = time.monotonic()
    run = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}
    done = False
    stop = _StopOnInterrupt() if world == 1 else contextlib.nullcontext()  # torchrun: Ctrl-C ends every rank
    failed = True
    try:
        with stop:
            while not done:
                for batch in _batches(loader):
                    frac = progress()
                    lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 if frac >= 0.85 else 1.0)
                    for g in opt.param_groups:
                        g["lr"] = lr
                    rng = random.Random(args.seed * 1000003 + step)  # same q on every rank
                    q = model.training_quality(rng) if custom_loss else rng.randint(1, len(lambdas))
                    x = batch.to(dev, non_blocking=True).float().div_(255.0)
                    if dev.type == "cuda":
                        x = x.contiguous(memory_format=torch.channels_last)
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda" and args.bf16):
                        res = ddp(x, q)
                    if custom_loss:
                        loss, bpp, mse = custom_loss(x, res, q)
                    else:
                        mse = F.mse_loss(res["x_hat"].float(), x)
                        bpp = bpp_of(res["likelihoods"], x.shape[0] * x.shape[2] * x.shape[3])
                        loss = lambdas[q - 1] * 255 ** 2 * mse + bpp
                    if not torch.isfinite(loss):
                        raise _diverged(step + 1, out)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                    opt.step()
                    keep_storable_(storable)  # the coder's integer copies must be able to hold these weights
                    step += 1
                    used = time.monotonic() - t_start
                    run["loss"] += loss.item(); run["bpp"] += bpp.item(); run["mse"] += mse.item(); run["n"] += 1
                    if bar is not None:
                        bar.update(1)
                        if step % 10 == 0:
                            bar.set_postfix(loss=f"{run['loss'] / run['n']:.3f}", bpp=f"{run['bpp'] / run['n']:.3f}",
                                            min=f"{used / 60:.1f}")
                    if step % args.log_every == 0 and log is not None:
                        n = max(run["n"], 1)
                        psnr = -10 * math.log10(max(run["mse"] / n, 1e-12))
                        entry = {"step": step, "minutes": round(used / 60, 2), "lr": lr, "loss": run["loss"] / n,
                                 "bpp": run["bpp"] / n, "psnr": psnr}
                        x_hat = res.get("x_hat") if isinstance(res, dict) else None
                        if torch.is_tensor(x_hat) and x_hat.shape == x.shape and x.shape[1] == 3:
                            # colour kept on this step's batch (1 all, 0 grey): perceptual losses trade colour for rate
                            entry["chroma"] = round(metrics.chroma_ratio_batch(x, x_hat), 4)
                        log.write(json.dumps(entry) + "\n")
                        log.flush()
                        run = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}
                    if time.monotonic() - last_ckpt >= args.ckpt_minutes * 60:
                        save()
                        last_ckpt = time.monotonic()
                    if used >= budget or step >= max_steps or getattr(stop, "requested", False):
                        done = True
                        break
        failed = False
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
        if failed and rank == 0 and not (out / "ckpt.pt").exists():  # failed before its first checkpoint
            if not had_log:
                (out / "log.jsonl").unlink(missing_ok=True)
            remove_empty(made)
    if getattr(stop, "requested", False):
        save()
        stopped = Interrupted(f"interrupted at step {step}: saved {out / 'ckpt.pt'} and {out / 'model.safetensors'}; "
                              f"--resume {out / 'ckpt.pt'} continues the run")
        stopped.exit_code = 128 + int(stop.signum)  # 130 for Ctrl-C, 143 for kill
        raise stopped
    save(weights=False)  # the final weights are exported below
    result = {"steps": step, "minutes": used / 60}
    if rank == 0:
        digest = export(final=True)
        result["digest"] = digest.hex()
        if args.eval_dir:
            from .evaluate import evaluate

            # the networks on the training GPU, the coding on the CPU (as lic eval --device cuda)
            m = zoo.load_weights(out / "model.safetensors", device=str(dev) if dev.type == "cuda" else "cpu")
            summary = evaluate(m, args.eval_dir, out / "eval", max_images=args.eval_images, progress=not args.quiet)
            result["eval"] = summary
        (out / "result.json").write_text(json.dumps(result, indent=1))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result
