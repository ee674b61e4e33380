#!/usr/bin/env python
"""Publish trained weights into the package, with their model card.

    # 1. weights from a training checkpoint into lic/weights/
    python tools/publish_model.py --ckpt runs/x/ckpt.pt --train-json runs/x/train.json
    # 2. measure them on Kodak (real files)
    python benchmarks/kodak_rd.py
    # 3. the same command with the measurements: metadata + lic/weights/NAME.md
    python tools/publish_model.py --ckpt runs/x/ckpt.pt --train-json runs/x/train.json \
        --kodak results/kodak_rd/NAME/summary.json

``--train-json`` is a JSON object written by hand for the card's Training section (``lic train`` writes
``result.json``, not this): e.g. ``{"start": "...", "data": "...", "steps": 1555, "device": "...", "minutes": 80,
"command": "lic train ...", "note": "..."}``; each key becomes one line of the card.  A new round of weights that
are already shipped keeps their history with ``--train-from lic/weights/NAME.md``: the card's Training lines come
first, and the JSON's keys replace the lines of the same name or follow them.

The tensors (and so the digest in every file header) do not change between 1 and 3.  ``--kodak`` also takes
the JSON of benchmarks/recurrent_kodak.py and scalable_kodak.py (one variant), and the summary.json of
benchmarks/attention_kodak.py (both attention variants: the card shows the model's own).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.codec import count  # noqa: E402
from lic.models import build  # noqa: E402


def _intro(model) -> list[str]:
    """Paper and architecture, from the model: the hyperprior's text, else its module docstring's first paragraph."""
    cfg = model.config()
    if cfg.get("arch") == "ScaleHyperprior":
        return ["Ballé, Minnen, Singh, Hwang, Johnston, *Variational image compression with a scale hyperprior*, "
                "ICLR 2018 — GDN transforms, scale hyperprior, factorized prior on the hyper-latents — with per-channel "
                "gain vectors (Cui et al., CVPR 2021) so that one network serves every quality level. MSE-optimized.", "",
                "## Architecture", "",
                f"N = {cfg['N']}, M = {cfg['M']}; qualities 1..{len(cfg['lambdas'])} with "
                f"λ = {', '.join(f'{l:g}' for l in cfg['lambdas'])} (loss λ·255²·MSE + bpp). fp16 weights, integer "
                "coding tables and the integer hyper-synthesis are stored in the safetensors file.", ""]
    doc = (sys.modules[type(model).__module__].__doc__ or "").strip().split("\n\n")[0]
    n_params = sum(p.numel() for p in model.parameters())
    return [" ".join(doc.split()), "",
            "## Architecture", "",
            f"`{type(model).__name__}` ({n_params / 1e6:.2f} M parameters), configuration:", "",
            "```json", json.dumps(cfg), "```", "",
            "fp16 weights and the integer coding tables are stored in the safetensors file.", ""]


def _kodak_rows(kodak: dict) -> list[str]:
    if "qualities" in kodak:  # benchmarks/kodak_rd.py
        lines = [f"Measured with `{kodak['command']}` ({count(kodak['threads'], 'threads')}, torch {kodak['torch']}, "
                 f"{kodak['cpu']}); peak memory by {kodak['memory_method']}."
                 + (f" Timing: {kodak['timing']}; allocator: {kodak['allocator']}." if "timing" in kodak else ""), "",
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
        return lines
    if "attention_variant" in kodak:  # benchmarks/attention_kodak.py, reduced to this model's variant in main()
        v = kodak["attention_variant"]
        vs = kodak.get("versus", {}).get("codec")
        lines = [f"Measured with `{kodak['command']}` on {kodak['images']} images ({count(kodak['threads'], 'threads')}, "
                 f"torch {kodak['torch']}, {kodak['cpu']}).  Colour kept: the decoded image's mean chroma strength "
                 "over the original's (1 = all of it)."
                 + (f"  {v['reused_measurements']} of the {kodak['images'] * len(v['qualities'])} measurements were "
                    "kept from an earlier run of the same weights (`--reuse`), so the seconds mix two runs."
                    if v.get("reused_measurements") else "")
                 + (f"  {vs.upper()} at the same bpp: its mean curve over the same images (`lic bench`, "
                    "interpolated in log bpp)." if vs else ""), "",
                 "| quality | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) | colour kept | "
                 + (f"{vs.upper()} MS-SSIM (dB) at the same bpp | " if vs else "")
                 + "file vs estimate | encode s | decode s | decoded = encoder's |",
                 "|---|---|---|---|---|---|" + ("---|" if vs else "") + "---|---|---|---|"]
        for q, r in v["qualities"].items():
            ref = r.get(f"{vs}_ms_ssim_db_same_bpp") if vs else None
            lines.append(f"| {q} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | {r['ms_ssim_db']:.2f} | "
                         f"{r['chroma_ratio']:.3f} | "
                         + ((f"{ref:.2f} | " if ref is not None else "outside its range | ") if vs else "")
                         + f"{r['payload_vs_estimate_pct']:+.2f} % | {r['encode_s']:.3f} | {r['decode_s']:.3f} | "
                         f"{'yes' if r['all_decoded_equal_encoder'] else 'NO'} |")
        if vs and v.get(f"bd_rate_vs_{vs}"):
            lines += ["", f"BD-rate against {vs.upper()} (same images, pchip): " + "; ".join(
                f"{m}: " + (f"{r['pchip']['bd_rate_pct']:+.1f} %" if r.get("pchip", {}).get("bd_rate_pct") is not None
                            else "not defined")
                for m, r in v[f"bd_rate_vs_{vs}"].items())]
        bd = kodak.get("bd_rate_hyperprior_vs_factorized")
        if bd:
            lines += ["", "BD-rate of attention-hyperprior against attention-factorized (same benchmark run):", ""]
            for metric, res in bd.items():
                for method, r in res.items():
                    lines.append(f"- {metric}, {method}: " + (
                        f"{r['bd_rate_pct']:+.1f} % over {r['quality_range'][0]:.2f}–{r['quality_range'][1]:.2f}"
                        if r.get("bd_rate_pct") is not None else f"not defined ({r.get('why')})"))
        return lines
    env = kodak.get("env", {})
    if "layers" in kodak:  # benchmarks/scalable_kodak.py (one variant's JSON): one row per layer
        lines = [f"Measured with `python benchmarks/scalable_kodak.py --hyper ...` on {kodak['images']} images "
                 f"({count(env.get('threads'), 'threads')}, torch {env.get('torch')}, {env.get('cpu')}). bpp from the real "
                 "prefix files (header included); every decoded prefix equals the encoder's reconstruction.", "",
                 "| layers | bpp | PSNR (dB) | MS-SSIM | hyper-latent share | coded / ideal | encode s (all layers) | "
                 "decode s |", "|---|---|---|---|---|---|---|---|"]
        for k, v in kodak["layers"].items():
            lines.append(f"| {k} | {v['bpp']:.4f} | {v['psnr']:.2f} | {v['ms_ssim']:.4f} | "
                         f"{100 * v['hyper_bits'] / max(v['coded_bits'], 1):.1f} % | {v['coded_vs_ideal']:.4f} | "
                         f"{v['encode_s']:.2f} | {v['decode_s']:.2f} |")
        return lines
    # benchmarks/recurrent_kodak.py: one row per iteration (the real prefix file of the same encode)
    lines = [f"Measured with `python benchmarks/recurrent_kodak.py --weights ...` on {kodak['images']} images "
             f"({count(env.get('threads'), 'threads')}, torch {env.get('torch')}, {env.get('cpu')}). bpp from the real prefix "
             "files (header included); bits without entropy coding are the binarizer's 32 per 16×16 block.", "",
             "| iterations | bpp | PSNR (dB) | MS-SSIM | bits coded / raw |", "|---|---|---|---|---|"]
    for k, v in kodak["iterations"].items():
        lines.append(f"| {k} | {v['bpp']:.4f} | {v['psnr']:.2f} | {v['ms_ssim']:.4f} | {v['coded_vs_raw']:.3f} |")
    if kodak.get("timing"):
        lines += [""] + [f"- {k} iterations: encode {t['encode_s']:.2f} s, decode {t['decode_s']:.2f} s per image"
                         for k, t in kodak["timing"].items()]
    return lines


def card(name: str, model, train: dict, kodak: dict | None) -> str:
    lines = [f"# Model card: `{name}`", "", *_intro(model), "## Training", ""]
    for k, v in train.items():
        lines.append(f"- **{k}**: {v}")
    if kodak:
        lines += ["", "## Kodak (24 images, real entropy-coded files)" if kodak.get("images", 24) == 24
                  else f"## Kodak ({kodak['images']} images, real entropy-coded files)", "", *_kodak_rows(kodak)]
    return "\n".join(lines) + "\n"


def training_lines(card_text: str) -> dict[str, str]:
    """The ``- **key**: value`` lines of a card's Training section, in order (what ``card`` wrote, or edited since)."""
    _, found, rest = card_text.partition("\n## Training\n")
    section = rest.split("\n## ", 1)[0] if found else ""
    return dict(re.findall(r"^- \*\*(.+?)\*\*: (.*)$", section, flags=re.MULTILINE))


def _json_object(path: str, flag: str) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SystemExit(f"publish_model: {flag} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SystemExit(f"publish_model: {flag} {path}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SystemExit(f"publish_model: {flag} {path}: not a JSON object")
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="training checkpoint (.pt) or weights (.safetensors)")
    ap.add_argument("--name", default=zoo.DEFAULT_MODEL)
    ap.add_argument("--train-json", help="JSON object written by hand describing the training (data, steps, device, "
                    "command...), one card line per key")
    ap.add_argument("--train-from", help="an earlier model card (.md) whose Training lines come first; --train-json's "
                    "keys replace or follow them")
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
    train = _json_object(args.train_json, "--train-json") if args.train_json else {}
    if args.train_from:
        try:
            train = {**training_lines(Path(args.train_from).read_text()), **train}
        except OSError as exc:
            raise SystemExit(f"publish_model: --train-from {args.train_from}: {exc.strerror}") from None
    kodak = _json_object(args.kodak, "--kodak") if args.kodak else None
    if kodak and "variants" in kodak:  # benchmarks/attention_kodak.py measures both variants in one summary
        entropy = getattr(model, "entropy", None)
        if entropy not in kodak["variants"]:
            raise SystemExit(f"{args.kodak} has no measurements of attention-{entropy}")
        kodak = {**{k: v for k, v in kodak.items() if k != "variants"}, "attention_variant": kodak["variants"][entropy]}
    extra = {"train": train}
    if kodak:
        points = (kodak.get("qualities") or kodak.get("iterations") or kodak.get("layers")
                  or kodak["attention_variant"]["qualities"])
        extra["kodak"] = {q: {"bpp": round(v["bpp"], 4), "psnr": round(v["psnr"], 2), "ms_ssim": round(v["ms_ssim"], 4)}
                          for q, v in points.items()}
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
