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
           [--progressive results/recurrent_kodak/X/Y.json] [--compare-only]

Then the issue's comparisons, BD-rate (PCHIP) in PSNR and in MS-SSIM dB, written to
OUT/comparisons.json and printed: each variant against BPG 4:4:4 (published,
``../shared/anchors/kodak_rd.csv``) and against the paper's own curve of that variant
(``su2020-rnn-hyper`` / ``-nohyper`` in ``kodak_rd_plus_external.csv``), the ablation against the
hyperprior model, and with ``--progressive`` (a benchmarks/recurrent_kodak.py JSON) the binary
progressive codec against BPG and each variant against it; plus, at each of the paper's four
points, our PSNR and MS-SSIM interpolated at the paper's bpp (log-bpp PCHIP, no extrapolation).
``--compare-only`` recomputes them from OUT/<variant>.json without measuring again.

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
from scipy.interpolate import PchipInterpolator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import codec, metrics, ratecontrol, zoo  # noqa: E402
from lic.bench.bdrate import bd_rate  # noqa: E402
from lic.bench.measure import machine  # noqa: E402
from lic.bench.results import Curve, load_published  # noqa: E402
from lic.data import list_images  # noqa: E402
from lic.imageio import from_tensor, prepare, read_image  # noqa: E402
from lic.models.scalable import ScalableRecurrentCodec  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
ANCHORS = ROOT.parent / "shared" / "anchors"
BPG = ("bpg_444_x265_ycbcr", "kodak_rd.csv", "BPG 4:4:4 (published)")
PAPER = {"hyper": ("su2020-rnn-hyper", "kodak_rd_plus_external.csv", "Su 2020 with hyperprior (paper)"),
         "flat": ("su2020-rnn-nohyper", "kodak_rd_plus_external.csv", "Su 2020 without hyperprior (paper)")}
LABEL = {"hyper": "su2020-rnn-hyperprior", "flat": "su2020-rnn-factorized"}  # untrained / unnamed weights
METRICS = ("psnr", "ms_ssim_db")
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


def _curve_of_layers(name: str, layers: dict) -> Curve:
    """A variant's per-layer means (or recurrent_kodak's iterations) as an RD curve."""
    return Curve(name, "measured", [{"bpp": v["bpp"], "psnr": v["psnr"], "ms_ssim_db": metrics.ms_ssim_db(v["ms_ssim"])}
                                    for v in layers.values()])


def _published(codec_name: str, csv_name: str) -> Curve | None:
    path = ANCHORS / csv_name
    return load_published(path).get(codec_name) if path.is_file() else None


def _bd(anchor: Curve, test: Curve) -> dict:
    row = {}
    for m in METRICS:
        try:
            r = bd_rate(*anchor.xy(m), *test.xy(m), method="pchip")
            row[m] = {"bd_rate_pct": r.value, "range": [r.lo, r.hi]}
        except ValueError as exc:  # no overlap, too few points
            row[m] = {"bd_rate_pct": None, "why": str(exc)}
    return row


def _at_rate(curve: Curve, metric: str, bpp: float) -> float | None:
    x, y = curve.xy(metric)
    if len(x) < 2 or not x[0] <= bpp <= x[-1]:
        return None
    return float(PchipInterpolator(np.log(x), y)(np.log(bpp)))


def _label(variant: str, result: dict) -> str:
    """How a measured variant is named in the comparisons: the model name its weights record (an MS-SSIM
    fine-tune is not the MSE model), else the variant's default name."""
    return f"{result.get('model') or LABEL[variant]} (ours)"


def comparisons(variants: dict, progressive: dict | None, previous: dict | None = None) -> dict:
    """The issue's BD-rates and point checks, from the measured per-layer means; ``previous``: a result of
    earlier weights (``--previous``) that every variant is also compared with."""
    ours = {v: _curve_of_layers(_label(v, r), r["layers"]) for v, r in variants.items()}
    bpg = _published(BPG[0], BPG[1])
    papers = {v: _published(*PAPER[v][:2]) for v in ours}
    pairs = []  # (anchor label, anchor curve, test curve)
    for v, c in ours.items():
        pairs += [(BPG[2], bpg, c), (PAPER[v][2], papers[v], c)]
    if "hyper" in ours and "flat" in ours:
        pairs.append((ours["hyper"].name, ours["hyper"], ours["flat"]))
    if progressive:
        name = f"{progressive.get('variant', 'progressive codec')} (binary, progressive)"
        prog = _curve_of_layers(name, progressive["iterations"])
        pairs += [(BPG[2], bpg, prog)] + [(name, prog, c) for c in ours.values()]
    if previous:
        name = f"previous weights ({previous.get('weights') or previous.get('model', '?')})"
        pairs += [(name, _curve_of_layers(name, previous["layers"]), c) for c in ours.values()]
    rows = [{"test": t.name, "anchor": a, **_bd(ac, t)} for a, ac, t in pairs if ac is not None]
    points = []
    for v, c in ours.items():
        if papers[v] is None:
            continue
        for pt in sorted(papers[v].points, key=lambda pt: pt["bpp"]):
            row = {"variant": c.name, "paper_bpp": pt["bpp"]}
            for m in METRICS:
                row["paper_" + m] = pt.get(m)
                row["ours_" + m] = _at_rate(c, m, pt["bpp"])
            points.append(row)
    return {"method": "BD-rate, PCHIP on log-rate (negative: fewer bits than the anchor at equal quality)",
            "bd_rate": rows, "paper_points": points}


def print_comparisons(comp: dict) -> None:
    print("\nBD-rate (PCHIP), test vs anchor:")
    for r in comp["bd_rate"]:
        cells = []
        for m in METRICS:
            v = r[m]
            cells.append(f"{m} {v['bd_rate_pct']:+.1f} % over {v['range'][0]:.2f}-{v['range'][1]:.2f}"
                         if v["bd_rate_pct"] is not None else f"{m} n/a ({v['why']})")
        print(f"  {r['test']} vs {r['anchor']}: " + "; ".join(cells))
    if comp["paper_points"]:
        print("At the paper's points (ours interpolated at the same bpp; '-' outside our range):")
        for p in comp["paper_points"]:
            def f(v):
                return "-" if v is None else f"{v:.2f}"
            print(f"  {p['variant']} at {p['paper_bpp']:.3f} bpp: PSNR {f(p['ours_psnr'])} vs {f(p['paper_psnr'])} dB, "
                  f"MS-SSIM {f(p['ours_ms_ssim_db'])} vs {f(p['paper_ms_ssim_db'])} dB")


def _result(path: str | None, key: str, option: str, what: str) -> dict | None:
    """The JSON given to ``option`` (None when not given); ValueError, one line, when it is not ``what``."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
        data[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{option} {path}: not {what} ({exc})") from None
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hyper", help="weights of su2020-rnn-hyperprior (default: untrained)")
    ap.add_argument("--flat", help="weights of the factorized-prior ablation (default: untrained)")
    ap.add_argument("--variants", default="hyper,flat", help="which variants to measure (default: hyper,flat)")
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", type=int, help="at most this many Kodak images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "scalable_kodak"))
    ap.add_argument("--progressive", help="a benchmarks/recurrent_kodak.py JSON to compare with (binary progressive codec)")
    ap.add_argument("--previous", help="a hyper.json or flat.json of this benchmark for earlier weights: BD-rate of "
                    "each variant against them")
    ap.add_argument("--compare-only", action="store_true",
                    help="recompute the comparisons from OUT/<variant>.json, measuring nothing")
    args = ap.parse_args()
    try:
        progressive = _result(args.progressive, "iterations", "--progressive", "a benchmarks/recurrent_kodak.py result")
        previous = _result(args.previous, "layers", "--previous", "a result of this benchmark")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.compare_only:
        out = Path(args.out)
        found = {v: json.loads((out / f"{v}.json").read_text()) for v in ("hyper", "flat")
                 if (out / f"{v}.json").is_file()}
        trained = {v: r for v, r in found.items() if r.get("trained")}
        if not trained:
            print(f"{out}: no hyper.json or flat.json of trained weights (run without --compare-only first)",
                  file=sys.stderr)
            return 2
        comp = comparisons(trained, progressive, previous)
        (out / "comparisons.json").write_text(json.dumps(comp, indent=1))
        print_comparisons(comp)
        return 0
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
    env = {"torch": torch.__version__, "threads": args.threads, "cpu": machine(),
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
    trained = {v: r for v, r in summary["variants"].items() if r["trained"]}
    if trained:  # random weights say nothing about compression: no comparisons for them
        comp = comparisons(trained, progressive, previous)
        (out / "comparisons.json").write_text(json.dumps(comp, indent=1))
        print_comparisons(comp)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
