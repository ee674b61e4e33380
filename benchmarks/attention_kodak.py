#!/usr/bin/env python
"""Kodak RD of the attention autoencoder (issue 6), factorized vs hyperprior entropy model, from real files.

For each variant, Kodak image and quality: the real .lic size (bpp), RGB PSNR, MS-SSIM (and in dB),
PSNR per Y / Cb / Cr plane and the chroma ratio (how much of the original's colour strength the
decoded image keeps: 1 all of it, 0 grey; :func:`lic.metrics.chroma_ratio`),
the payload against the model's estimate (−Σ log2 p, eval mode), encode / decode wall seconds, and a
check that every decoded image equals the encoder's reconstruction.  Then the BD-rate of the
hyperprior variant against the factorized one (the seed's entropy model), on PSNR and on MS-SSIM dB
(PCHIP; cubic too with ≥ 4 rates), and per variant the quality whose mean bpp is nearest 0.23.

The issue's aim is MS-SSIM at least HEIC's at the same bpp near 0.23 bpp.  When ``lic bench`` results
for the same images exist (``--classical``, default ``results/kodak/per_image.csv``, which
``benchmarks/kodak_docs.py`` writes; ``--versus heic``), each quality's mean MS-SSIM (dB) and PSNR are
set beside the classical codec's at the same mean bpp (its mean curve over the same images,
interpolated linearly in log bpp between its measured settings; outside its range: n/a), and the
BD-rates of each variant against it are added.

``--reuse`` keeps the rows already in OUT/per_image.csv for a variant whose weights have the same
digest (:func:`lic.zoo.model_digest`) as recorded in OUT/summary.json (or, for a summary written before
digests were recorded, the same path) and measures only the images and qualities missing: a 12-image run grows to 24 images.

    python benchmarks/attention_kodak.py --factorized F.safetensors --hyperprior H.safetensors
           [--kodak ../shared/data/kodak] [--images 24] [--threads 2] [--jobs 1] [--out results/attention_kodak]
           [--reuse]
    python benchmarks/attention_kodak.py --untrained [--config '{"N": 64}'] --images 2   # smoke run

``--untrained`` measures randomly initialised models (labelled so in the output): it checks the
pipeline and the speed, its RD numbers mean nothing.  Without Kodak images the script says so and
exits 0.  Writes OUT/per_image.csv and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import codec, metrics, zoo  # noqa: E402
from lic.bench.bdrate import bd_rate  # noqa: E402
from lic.bench.measure import machine  # noqa: E402
from lic.data import list_images  # noqa: E402
from lic.imageio import read_image, to_tensor  # noqa: E402
from lic.models import AttentionCodec  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
TARGET_BPP = 0.23
MEANS = ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "psnr_y", "psnr_cb", "psnr_cr", "chroma_ratio", "encode_s",
         "decode_s")


def load(args, entropy: str):
    if args.untrained:
        torch.manual_seed(0)
        m = AttentionCodec(entropy=entropy, **json.loads(args.config or "{}")).eval()
        m.update()
        m.lic_name = f"attention-{entropy}"
        return m, "untrained (random initialisation)"
    path = getattr(args, entropy)
    if not path:
        return None, None
    m = zoo.load_weights(path)
    if not isinstance(m, AttentionCodec) or m.entropy != entropy:
        raise SystemExit(f"{path}: not an attention-{entropy} model")
    return m, str(path)


def _typed(row: dict) -> dict:
    """A per_image.csv row with the types :func:`measure` gives."""
    out = dict(row)
    out["quality"], out["bytes"] = int(row["quality"]), int(row["bytes"])
    out["decoded_equals_encoder"] = row["decoded_equals_encoder"] == "True"
    for k, v in row.items():
        if k not in ("variant", "image", "quality", "bytes", "decoded_equals_encoder"):
            out[k] = float(v)
    return out


def reusable_rows(out: Path, entropy: str, weights: str, digest: str) -> list[dict]:
    """Rows of an earlier run in ``out`` for this variant, if it measured the same weights (see ``--reuse``)."""
    try:
        old = json.loads((out / "summary.json").read_text())["variants"][entropy]
        with open(out / "per_image.csv", newline="") as f:
            rows = [_typed(r) for r in csv.DictReader(f) if r["variant"] == f"attention-{entropy}"]
    except (OSError, KeyError, ValueError):
        return []
    same = old.get("digest") == digest if "digest" in old else old.get("weights") == weights
    return rows if same else []


def measure(model, variant: str, files: list[Path], qualities, done: list[dict] = ()) -> list[dict]:
    have = {(r["image"], r["quality"]): r for r in done}
    rows = []
    for path in files:
        img = read_image(path)
        ref = np.asarray(img.convert("RGB"))
        h, w = ref.shape[:2]
        for q in qualities:
            if (path.name, q) in have:
                rows.append(have[(path.name, q)])
                continue
            enc, dec, enc_s, dec_s = codec.timed_round_trip(img, model, q, reconstruct=True)
            rgb = np.asarray(dec.convert("RGB"))
            with torch.no_grad():
                lik = model(to_tensor(ref), q)["likelihoods"]
            est = sum((-torch.log2(l)).sum().item() for l in lik.values()) / 8
            payload = sum(len(c) for c in codec.read_header(enc.data).model_chunks())
            ms = metrics.ms_ssim(ref, rgb)
            py, pcb, pcr = metrics.psnr_ycbcr(ref, rgb)
            rows.append({"variant": variant, "image": path.name, "quality": q, "bytes": len(enc.data),
                         "bpp": 8 * len(enc.data) / (w * h), "psnr": metrics.psnr(ref, rgb), "ms_ssim": ms,
                         "ms_ssim_db": metrics.ms_ssim_db(ms), "psnr_y": py, "psnr_cb": pcb, "psnr_cr": pcr,
                         "chroma_ratio": metrics.chroma_ratio(ref, rgb), "payload_bytes": payload,
                         "estimate_bytes": est,
                         "decoded_equals_encoder": bool(np.array_equal(rgb, np.asarray(enc.reconstruction))),
                         "encode_s": enc_s, "decode_s": dec_s})
        print(f"{variant}: {path.name} done", file=sys.stderr)
    return rows


def summarize(rows: list[dict]) -> dict:
    out = {}
    for q in sorted({r["quality"] for r in rows}):
        sel = [r for r in rows if r["quality"] == q]
        s = {k: float(np.nanmean([r[k] for r in sel])) for k in MEANS}
        pay, est = sum(r["payload_bytes"] for r in sel), sum(r["estimate_bytes"] for r in sel)
        s["payload_vs_estimate_pct"] = 100 * (pay / est - 1)
        s["all_decoded_equal_encoder"] = all(r["decoded_equals_encoder"] for r in sel)
        out[str(q)] = s
    return out


def bd(anchor: dict, test: dict, metric: str) -> dict:
    a = sorted((v["bpp"], v[metric]) for v in anchor.values())
    t = sorted((v["bpp"], v[metric]) for v in test.values())
    res = {}
    for method in ("pchip", "cubic"):
        if method == "cubic" and min(len(a), len(t)) < 4:
            continue
        try:
            r = bd_rate([p[0] for p in a], [p[1] for p in a], [p[0] for p in t], [p[1] for p in t], method=method)
            res[method] = {"bd_rate_pct": r.value, "quality_range": [r.lo, r.hi]}
        except ValueError as exc:  # the curves do not overlap in quality, too few points
            res[method] = {"bd_rate_pct": None, "why": str(exc)}
    return res


def run_variant(args, entropy: str, files: list[Path]) -> tuple[list[dict], dict]:
    """Measure one variant (in this process, or in a worker of ``--jobs``): its rows and its summary."""
    torch.set_num_threads(args.threads)
    model, source = load(args, entropy)
    qualities = [q for q in model.qualities if not args.qualities or q in args.qualities]
    digest = zoo.model_digest(model).hex()
    done = reusable_rows(Path(args.out), entropy, source, digest) if args.reuse and not args.untrained else []
    if done:
        print(f"attention-{entropy}: reusing {len(done)} measurements in {args.out}", file=sys.stderr)
    rows = measure(model, f"attention-{entropy}", files, qualities, done)
    per_q = summarize(rows)
    near = min(per_q, key=lambda q: abs(per_q[q]["bpp"] - TARGET_BPP))
    return rows, {"weights": source, "digest": digest, "config": model.config(),
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "qualities": per_q, f"quality_nearest_{TARGET_BPP}_bpp": int(near),
                  "reused_measurements": len({(r["image"], r["quality"]) for r in rows}
                                             & {(r["image"], r["quality"]) for r in done})}


def classical_curve(path: Path, codec_name: str, images: set[str]) -> dict | None:
    """Mean bpp / PSNR / MS-SSIM (dB) per setting of one codec in a ``lic bench`` per_image.csv, over
    exactly ``images`` (settings that lack any of them are left out); None without such results.
    (:func:`lic.bench.results.load_results` gives the means over every image measured, not over a subset.)"""
    if not path.is_file():
        return None
    per = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["codec"] == codec_name and r["image"] in images:
                per.setdefault(r["setting"], []).append(r)
    curve = {}
    for setting, sel in per.items():
        if {r["image"] for r in sel} == images:
            curve[setting] = {k: float(np.mean([float(r[k]) for r in sel])) for k in ("bpp", "psnr", "ms_ssim_db")}
    return curve or None


def at_bpp(curve: dict, bpp: float, metric: str) -> float | None:
    """The curve's metric at ``bpp``: linear in log bpp between the two nearest settings; None outside."""
    b, m = zip(*sorted((v["bpp"], v[metric]) for v in curve.values()))
    value = np.interp(np.log(bpp), np.log(b), m, left=np.nan, right=np.nan)
    return None if np.isnan(value) else float(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factorized", help="weights of a trained attention-factorized model")
    ap.add_argument("--hyperprior", help="weights of a trained attention-hyperprior model")
    ap.add_argument("--untrained", action="store_true", help="random-init models (pipeline and speed check only)")
    ap.add_argument("--config", help="with --untrained: constructor arguments as JSON, e.g. '{\"N\": 64}'")
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", type=int, help="at most this many Kodak images")
    ap.add_argument("--qualities", type=int, nargs="+", help="only these quality levels")
    ap.add_argument("--threads", type=int, default=2, help="threads per variant (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=1, help="2: both variants at once, one process each (then give "
                    "--threads 1 on a 2-core machine)")
    ap.add_argument("--out", default=str(ROOT / "results" / "attention_kodak"))
    ap.add_argument("--classical", default=str(ROOT / "results" / "kodak" / "per_image.csv"),
                    help="lic bench results with the codec to compare with (default: %(default)s)")
    ap.add_argument("--versus", default="heic", help="that codec's name in them (default: %(default)s)")
    ap.add_argument("--reuse", action="store_true", help="keep OUT's earlier measurements of the same weights; "
                    "measure only what is missing")
    args = ap.parse_args()
    if not (args.untrained or args.factorized or args.hyperprior):
        ap.error("give --factorized and/or --hyperprior weights, or --untrained for a smoke run")
    kodak = Path(args.kodak)
    files = list_images(kodak) if kodak.is_dir() else []
    if not files:
        print(f"attention_kodak: skipped, no Kodak images in {kodak} (pass --kodak DIR)")
        return 0
    files = files[:args.images] if args.images else files
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, summary = [], {"images": len(files), "threads": args.threads, "jobs": args.jobs, "torch": torch.__version__,
                         "cpu": machine(),
                         "command": "python benchmarks/attention_kodak.py " + " ".join(sys.argv[1:]), "variants": {}}
    wanted = [e for e in ("factorized", "hyperprior") if args.untrained or getattr(args, e)]
    if args.jobs > 1 and len(wanted) > 1:  # one process per variant, ``threads`` each
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(len(wanted), mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(run_variant, [args] * len(wanted), wanted, [files] * len(wanted)))
    else:
        results = [run_variant(args, e, files) for e in wanted]
    for entropy, (r, info) in zip(wanted, results):
        rows += r
        summary["variants"][entropy] = info
    v = summary["variants"]
    if "factorized" in v and "hyperprior" in v:
        summary["bd_rate_hyperprior_vs_factorized"] = {
            m: bd(v["factorized"]["qualities"], v["hyperprior"]["qualities"], m) for m in ("psnr", "ms_ssim_db")}
    versus = classical_curve(Path(args.classical), args.versus, {p.name for p in files})
    if versus:
        summary["versus"] = {"codec": args.versus, "results": args.classical, "curve": versus}
        for entropy, s in v.items():
            for r in s["qualities"].values():
                for metric in ("ms_ssim_db", "psnr"):
                    ref = at_bpp(versus, r["bpp"], metric)
                    r[f"{args.versus}_{metric}_same_bpp"] = ref
            s[f"bd_rate_vs_{args.versus}"] = {m: bd(versus, s["qualities"], m) for m in ("psnr", "ms_ssim_db")}
    with open(out / "per_image.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for entropy, s in v.items():
        print(f"\nattention-{entropy}  ({s['weights']}, {len(files)} images, {s['parameters']:,} parameters)")
        print(f"{'q':>2} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>8} {'dB':>6} {'Y dB':>6} {'chroma':>6} {'file/est':>9} "
              f"{'enc s':>6} {'dec s':>6} exact")
        for q, r in s["qualities"].items():
            print(f"{q:>2} {r['bpp']:7.4f} {r['psnr']:6.2f} {r['ms_ssim']:8.4f} {r['ms_ssim_db']:6.2f} "
                  f"{r['psnr_y']:6.2f} {r['chroma_ratio']:6.3f} {r['payload_vs_estimate_pct']:+8.2f}% "
                  f"{r['encode_s']:6.2f} {r['decode_s']:6.2f} "
                  f"{'yes' if r['all_decoded_equal_encoder'] else 'NO'}")
        print(f"nearest {TARGET_BPP} bpp: q{s[f'quality_nearest_{TARGET_BPP}_bpp']}")
        if versus:
            name = args.versus
            for q, r in s["qualities"].items():
                ref = r[f"{name}_ms_ssim_db_same_bpp"]
                cmp = (f"{name} {ref:.2f} dB, ours {r['ms_ssim_db'] - ref:+.2f} dB" if ref is not None
                       else f"outside {name}'s measured range")
                print(f"   q{q} at {r['bpp']:.4f} bpp: MS-SSIM {r['ms_ssim_db']:.2f} dB; {cmp}")
            for metric, res in s[f"bd_rate_vs_{name}"].items():
                r = res.get("pchip", {})
                text = (f"{r['bd_rate_pct']:+.1f}%" if r.get("bd_rate_pct") is not None else f"n/a ({r.get('why')})")
                print(f"   BD-rate vs {name} ({metric}, pchip): {text}")
    for metric, res in summary.get("bd_rate_hyperprior_vs_factorized", {}).items():
        for method, r in res.items():
            text = (f"{r['bd_rate_pct']:+.1f}% over {r['quality_range'][0]:.2f}-{r['quality_range'][1]:.2f}"
                    if r["bd_rate_pct"] is not None else f"n/a ({r['why']})")
            print(f"BD-rate hyperprior vs factorized ({metric}, {method}): {text}")
    print(f"written: {out / 'per_image.csv'}, {out / 'summary.json'}")
    exact = all(r["decoded_equals_encoder"] for r in rows)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
