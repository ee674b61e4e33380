#!/usr/bin/env python
"""Kodak benchmark of the scalable recurrent codec (Su et al. 2020), with and without its RNN
hyperprior, measured on real files.

For each variant (``hyper``: su2020-rnn-hyperprior, ``flat``: the factorized-prior ablation),
each Kodak image and each layer k = 1..L (one encode to L; the file for k is the real prefix
file, header included): bytes, bpp, RGB PSNR, MS-SSIM, the hyper-latent share of the bits,
the ideal size under the integer tables; encode seconds (all L layers, one pass) and decode
seconds of every prefix file, with a check that each decoded image equals the encoder's
reconstruction after k layers.

    python benchmarks/scalable_kodak.py [--hyper W.safetensors] [--flat W.safetensors]
           [--variants hyper,flat] [--kodak ../shared/data/kodak] [--images N] [--threads 2] [--out results/scalable_kodak]

Without weights a variant uses the default configuration with random weights (seed 0),
labelled ``untrained`` in the results: the numbers then show that the pipeline works and
how fast it is, not compression performance.  Writes OUT/<variant>.json,
OUT/<variant>_per_image.csv and OUT/summary.json (both variants side by side).
Exits 0 with a message when the Kodak folder is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import codec, metrics, ratecontrol, zoo  # noqa: E402
from lic.data import list_images  # noqa: E402
from lic.imageio import from_tensor, prepare, read_image  # noqa: E402
from lic.models.scalable import ScalableRecurrentCodec  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
FIELDS = ["image", "layer", "bytes", "bpp", "psnr", "ms_ssim", "hyper_bits", "ideal_bits", "coded_bits",
          "encode_s", "decode_s"]


def load_variant(path: str | None, hyperprior: bool):
    if path:
        m = zoo.load_weights(path)
        if not isinstance(m, ScalableRecurrentCodec) or m.hyperprior != hyperprior:
            raise SystemExit(f"{path}: not a scalable recurrent codec {'with' if hyperprior else 'without'} hyperprior")
        return m, str(path), True
    torch.manual_seed(0)
    m = ScalableRecurrentCodec(hyperprior=hyperprior).eval()
    zoo.prepare_for_export(m)  # fp16-rounded weights and their tables, as a shipped model would have
    m.lic_name = m.name
    return m, "untrained (random weights, seed 0)", False


def per_layer(model, img) -> list[dict]:
    p = prepare(img)
    h, w = p.rgb.shape[:2]
    t0 = time.perf_counter()
    comp, files = ratecontrol.prefix_files(p, model)  # one encode to the last layer; the real prefix files
    enc_s = time.perf_counter() - t0
    rows = []
    for k, data in enumerate(files, 1):
        t0 = time.perf_counter()
        dec = np.asarray(codec.decode(data, model=model))
        dec_s = time.perf_counter() - t0
        rgb = from_tensor(comp.extra["x_hats"][k - 1])
        if not np.array_equal(dec, rgb):
            raise SystemExit(f"decoded image differs from the encoder's reconstruction ({k} layers)")
        rows.append({"layer": k, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                     "psnr": metrics.psnr(p.rgb, dec), "ms_ssim": metrics.ms_ssim(p.rgb, dec),
                     "hyper_bits": comp.extra["layer_hyper_bits"][k - 1],
                     "ideal_bits": comp.extra["layer_table_bits"][k - 1],
                     "coded_bits": comp.extra["layer_bits"][k - 1],
                     "encode_s": enc_s, "decode_s": dec_s})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hyper", help="weights of su2020-rnn-hyperprior (default: untrained)")
    ap.add_argument("--flat", help="weights of the factorized-prior ablation (default: untrained)")
    ap.add_argument("--variants", default="hyper,flat", help="which variants to measure (default: hyper,flat)")
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", type=int, help="at most this many Kodak images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "scalable_kodak"))
    args = ap.parse_args()
    kodak = Path(args.kodak)
    files = list_images(kodak) if kodak.is_dir() else []
    if not files:
        print(f"Kodak images not found in {kodak}: skipped (put kodim01..24.png there or pass --kodak DIR)",
              file=sys.stderr)
        return 0
    files = files[:args.images] if args.images else files
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {"torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
           "python": platform.python_version()}
    summary = {"env": env, "images": [f.name for f in files], "variants": {}}
    wanted = set(args.variants.split(","))
    if not wanted or wanted - {"hyper", "flat"}:
        ap.error("--variants: hyper, flat or hyper,flat")
    for variant, path, hp in (("hyper", args.hyper, True), ("flat", args.flat, False)):
        if variant not in wanted:
            continue
        model, source, trained = load_variant(path, hp)
        rows = []
        for f in files:
            for r in per_layer(model, read_image(f)):
                rows.append({"image": f.name, **r})
            print(f"{variant}: {f.name} done", file=sys.stderr)
        layers = {}
        for k in model.qualities:
            sel = [r for r in rows if r["layer"] == k]
            s = {key: float(np.nanmean([r[key] for r in sel])) for key in FIELDS[2:]}
            s["coded_vs_ideal"] = s["coded_bits"] / s["ideal_bits"]
            layers[str(k)] = s
        res = {"variant": variant, "model": getattr(model, "lic_name", model.name), "weights": source,
               "trained": trained, "config": model.config(), "images": len(files), "env": env, "layers": layers}
        (out / f"{variant}.json").write_text(json.dumps(res, indent=1))
        with open(out / f"{variant}_per_image.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=FIELDS)
            wr.writeheader()
            wr.writerows(rows)
        summary["variants"][variant] = res
        print(f"\n{variant}: {res['model']}, {source}, {len(files)} images")
        print(f"{'layer':>5} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>8} {'hyper %':>7} {'coded/ideal':>11} "
              f"{'enc s':>6} {'dec s':>6}")
        for k, s in layers.items():
            print(f"{k:>5} {s['bpp']:7.4f} {s['psnr']:6.2f} {s['ms_ssim']:8.4f} "
                  f"{100 * s['hyper_bits'] / max(s['coded_bits'], 1):7.1f} {s['coded_vs_ideal']:11.4f} "
                  f"{s['encode_s']:6.2f} {s['decode_s']:6.2f}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
