#!/usr/bin/env python
"""What encoder-side latent refinement (``lic compress --refine N``) buys on Kodak, and what it costs.

For each Kodak image and quality: the plain file and the file refined with N steps (lic.models.refine), from
real files: bytes, bpp, RGB PSNR, MS-SSIM, the model's cost J (its ``rd_cost``: table bits per pixel + λ·D of the
decoded pixels), and encode wall seconds; every file is decoded and checked to equal the encoder's reconstruction.
A progressive model (su2020-rnn-hyperprior) codes all its layers once per image, plain and refined, and each
prefix is a quality level (cost: the loss Σ_k λ_k·D_k + R of the whole file, which refinement lowers).  Then the
BD-rate of the refined curve against the plain one (mean bpp and quality per quality level, pchip), in PSNR
and in MS-SSIM dB, and (all 24 images) of both curves against the published curve the model's issue names
(../shared/anchors/kodak_rd.csv): bmshj2018-hyperprior's own, BPG 4:4:4 for su2020-rnn-hyperprior.
Decoding is the same program for both, so decode time is not measured here (benchmarks/kodak_rd.py).

    python benchmarks/refine_kodak.py [--model NAME|WEIGHTS] [--steps 50] [--every 1] [--qualities 1 2 ...]
                                      [--threads 2] [--kodak DIR] [--out DIR] [--resume] [--summary-only]

``--every K`` takes every K-th Kodak image (kodim01, kodim(1+K), ...) to spend less time.  Writes
OUT/per_image.csv (a row per image, quality and steps, appended as each image finishes) and OUT/summary.json
(default results/refine_kodak/MODEL-stepsN); OUT/run.json records the model's weights digest, steps and
qualities.  A run takes minutes per image on a 2-core CPU: ``--resume`` continues an interrupted one, keeping the
images already in OUT/per_image.csv, and refuses when OUT/run.json names other weights, steps or qualities.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lic  # noqa: E402
from lic import codec, metrics  # noqa: E402
from lic.bench.bdrate import bd_rate  # noqa: E402
from lic.bench.measure import machine  # noqa: E402
from lic.bench.results import load_published  # noqa: E402
from lic.imageio import from_tensor, read_image, to_tensor  # noqa: E402
from lic.runtime import keep_freed_memory  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors" / "kodak_rd.csv"
#: the published curve each model's issue measures it against
PUBLISHED = {"bmshj2018-hyperprior": ("bmshj2018-hyperprior_mse_cpu", "published bmshj2018-hyperprior"),
             "su2020-rnn-hyperprior": ("bpg_444_x265_ycbcr", "BPG 4:4:4 (published)")}


def published(name: str):
    """(label, curve) of the published Kodak curve ``name`` is compared with, or None (no anchors file, or no
    curve for this model)."""
    if name not in PUBLISHED or not ANCHORS.is_file():
        return None
    key, label = PUBLISHED[name]
    curve = load_published(ANCHORS).get(key)
    return (label, curve) if curve else None


def _quality(ref: np.ndarray, dec: np.ndarray) -> dict:
    ms = metrics.ms_ssim(ref, dec)
    return {"psnr": metrics.psnr(ref, dec), "ms_ssim": ms, "ms_ssim_db": metrics.ms_ssim_db(ms)}


def measure(img, ref, model, q, steps) -> dict:
    """One-shot model: the file of quality q, plain or refined; cost = the model's rd_cost of the decoded pixels."""
    t0 = time.perf_counter()
    enc = codec.encode(img, model=model, quality=q, reconstruct=True, refine=steps)
    seconds = time.perf_counter() - t0
    dec = np.asarray(codec.decode(enc.data, model=model))
    h, w = ref.shape[:2]
    cost = model.rd_cost(to_tensor(ref), to_tensor(dec), torch.tensor(enc.table_bits / (w * h)), q)
    return {"bytes": len(enc.data), "bpp": 8 * len(enc.data) / (w * h), **_quality(ref, dec), "cost": float(cost),
            "encode_s": seconds, "decoded_equals_encoder": bool(np.array_equal(dec, np.asarray(enc.reconstruction)))}


def measure_layers(img, ref, model, steps) -> list[dict]:
    """Progressive model (su2020): one file of all layers, plain or refined; a row per prefix (quality = layers),
    each cut file decoded; cost (of the whole file, on every row) = Σ_k λ_k·D_k + bits per pixel, the loss that
    refinement lowers."""
    from lic.imageio import prepare
    from lic.ratecontrol import prefix_files

    t0 = time.perf_counter()
    comp, files = prefix_files(prepare(img), model, refine=steps)
    seconds = time.perf_counter() - t0
    h, w = ref.shape[:2]
    rows, dist = [], 0.0
    for k, data in enumerate(files, 1):
        dec = np.asarray(codec.decode(data, model=model))
        own = from_tensor(comp.extra["x_hats"][k - 1])
        dist += model.lambdas[k - 1] * float(model.distortion(to_tensor(dec), to_tensor(ref)))
        rows.append({"bytes": len(data), "bpp": 8 * len(data) / (w * h), **_quality(ref, dec), "encode_s": seconds,
                     "decoded_equals_encoder": bool(np.array_equal(dec, own))})
    for r in rows:
        r["cost"] = dist + comp.extra["table_bits"] / (w * h)
    return rows


def bd(anchor: tuple, test: tuple) -> float | None:
    """BD-rate (%) of ``test`` = (bpp, quality) against ``anchor``; None where the curves do not overlap (or the
    metric is undefined, e.g. MS-SSIM of very small images)."""
    try:
        return bd_rate(*anchor, *test).value
    except ValueError:
        return None


def xy(curve: list[dict], key: str) -> tuple[list, list]:
    return [c["bpp"] for c in curve], [c[key] for c in curve]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=lic.DEFAULT_MODEL)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--every", type=int, default=1, help="every K-th Kodak image (default all 24)")
    ap.add_argument("--qualities", type=int, nargs="+")
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in OUT: keep its images, measure the rest")
    ap.add_argument("--summary-only", action="store_true",
                    help="no encoding: recompute the summary from OUT/per_image.csv of an earlier run")
    args = ap.parse_args()
    files = sorted(Path(args.kodak).glob("*.png"))[:: args.every]
    if not files and not args.summary_only:
        print(f"refine_kodak: no Kodak images in {args.kodak} (pass --kodak DIR)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    model = lic.load_model(args.model)
    if not model.refinable:
        print(f"refine_kodak: model {args.model} has no encoder-side refinement", file=sys.stderr)
        return 2
    name = getattr(model, "lic_name", model.name)
    qualities = [q for q in (args.qualities or model.qualities) if q in model.qualities]
    out = Path(args.out or ROOT / "results" / "refine_kodak" / f"{name}-steps{args.steps}")
    if args.summary_only:
        if not (out / "per_image.csv").is_file():
            print(f"refine_kodak: no {out / 'per_image.csv'} to summarize", file=sys.stderr)
            return 2
        rows = read_rows(out / "per_image.csv")
        qualities = [q for q in qualities if any(r["quality"] == q for r in rows)]
        return summarize(rows, args, name, qualities, out)
    from lic.zoo import model_digest

    run = {"model": name, "weights": model_digest(model).hex(), "steps": args.steps, "qualities": qualities}
    csv_path, run_path = out / "per_image.csv", out / "run.json"
    rows = []
    if args.resume and csv_path.is_file():
        earlier = json.loads(run_path.read_text()) if run_path.is_file() else None
        if earlier != run:
            print(f"refine_kodak: cannot resume {out}: it was measured with {earlier or 'unknown settings'}, "
                  f"this run is {run}", file=sys.stderr)
            return 2
        rows = read_rows(csv_path)
    elif csv_path.is_file():
        csv_path.unlink()  # a new run replaces an earlier one's rows
    out.mkdir(parents=True, exist_ok=True)
    run_path.write_text(json.dumps(run, indent=1))
    from tqdm import tqdm

    warm = read_image(files[0]).crop((0, 0, 64, 64))
    codec.encode(warm, model=model, quality=qualities[0], refine=2)  # first-call initialisation
    done = {r["image"] for r in rows}
    for path in tqdm([f for f in files if f.name not in done], desc="kodak", unit="image"):
        img = read_image(path)
        ref = np.asarray(img.convert("RGB"))
        new = []
        if model.progressive:
            for steps in (0, args.steps):
                new += [{"image": path.name, "quality": q, "steps": steps, **r}
                        for q, r in enumerate(measure_layers(img, ref, model, steps), 1) if q in qualities]
        else:
            for q in qualities:
                for steps in (0, args.steps):
                    new.append({"image": path.name, "quality": q, "steps": steps,
                                **measure(img, ref, model, q, steps)})
        first = not csv_path.is_file()
        with open(csv_path, "a", newline="") as f:  # a whole image at a time: an interrupted run loses at most one
            wr = csv.DictWriter(f, fieldnames=list(new[0]))
            if first:
                wr.writeheader()
            wr.writerows(new)
        rows += new
    return summarize(rows, args, name, qualities, out)


def read_rows(path: Path) -> list[dict]:
    """The rows of a per_image.csv written by this script, with their types back."""
    with open(path, newline="") as f:
        return [{k: v if k == "image" else v == "True" if k == "decoded_equals_encoder" else float(v)
                 for k, v in r.items()} for r in csv.DictReader(f)]


def summarize(rows: list[dict], args, name: str, qualities: list[int], out: Path) -> int:
    """Means per quality, BD-rates, the checks; written to OUT/summary.json and printed."""
    images = sorted({r["image"] for r in rows})
    keys = ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "cost", "encode_s")
    means = {s: [{k: float(np.mean([r[k] for r in rows if r["quality"] == q and r["steps"] == s])) for k in keys}
                 for q in qualities] for s in (0, args.steps)}
    plain, refined = means[0], means[args.steps]
    summary = {"model": name, "steps": args.steps, "images": images, "qualities": qualities,
               "threads": args.threads, "torch": torch.__version__, "cpu": machine(),
               "command": "python benchmarks/refine_kodak.py " + " ".join(sys.argv[1:]),
               "plain": dict(zip(map(str, qualities), plain)), "refined": dict(zip(map(str, qualities), refined)),
               "all_decoded_equal_encoder": all(r["decoded_equals_encoder"] for r in rows),
               "refined_cost_never_higher": all(
                   r["cost"] <= p["cost"] for p in rows if p["steps"] == 0 for r in rows
                   if r["steps"] == args.steps and (r["image"], r["quality"]) == (p["image"], p["quality"]))}
    if len(qualities) >= 2:
        summary["bd_rate_pct_refined_vs_plain"] = {k: bd(xy(plain, k), xy(refined, k)) for k in ("psnr", "ms_ssim_db")}
    pub = published(name)
    if pub and len(qualities) >= 2 and len(images) == 24:  # published curves are means over all 24 images
        label, curve = pub
        summary["bd_rate_psnr_pct_vs_published"] = {"anchor": label, **{
            which: bd(curve.xy("psnr"), xy(c, "psnr")) for which, c in (("plain", plain), ("refined", refined))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"{'q':>2} {'plain bpp':>9} {'PSNR':>6} {'MS-SSIM':>8} {'cost':>7} {'enc s':>6}   "
          f"{'refined bpp':>11} {'PSNR':>6} {'MS-SSIM':>8} {'cost':>7} {'enc s':>6}")
    for q, p, r in zip(qualities, plain, refined):
        print(f"{q:>2} {p['bpp']:9.4f} {p['psnr']:6.2f} {p['ms_ssim']:8.4f} {p['cost']:7.4f} {p['encode_s']:6.2f}   "
              f"{r['bpp']:11.4f} {r['psnr']:6.2f} {r['ms_ssim']:8.4f} {r['cost']:7.4f} {r['encode_s']:6.2f}")

    def pct(v):
        return "n/a" if v is None else f"{v:+.2f} %"

    if "bd_rate_pct_refined_vs_plain" in summary:
        b = summary["bd_rate_pct_refined_vs_plain"]
        print(f"BD-rate refined ({args.steps} steps) vs plain: {pct(b['psnr'])} (PSNR), {pct(b['ms_ssim_db'])} "
              f"(MS-SSIM dB), {len(images)} images")
    if "bd_rate_psnr_pct_vs_published" in summary:
        b = summary["bd_rate_psnr_pct_vs_published"]
        print(f"BD-rate (PSNR) vs {b['anchor']}: plain {pct(b['plain'])}, refined {pct(b['refined'])}")
    print(f"decoded = encoder's reconstruction: {summary['all_decoded_equal_encoder']}; "
          f"refined cost never higher: {summary['refined_cost_never_higher']}")
    print(f"written: {out / 'per_image.csv'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
