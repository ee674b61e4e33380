#!/usr/bin/env python
"""BD-rate between recurrent_kodak.py results: each variant against the first, over its iteration points;
or (``--published NAME``) each against a published curve of ``../shared/anchors``; or (``--measured NAME``)
against a codec measured here by ``lic bench`` (``benchmarks/kodak_docs.py`` writes ``results/kodak``).

    python benchmarks/recurrent_bdrate.py results/recurrent_kodak/A/X.json results/recurrent_kodak/B/X.json [...]
    python benchmarks/recurrent_bdrate.py --published tfc-toderici-2017-cvpr results/recurrent_kodak/B/X.json
    python benchmarks/recurrent_bdrate.py --measured jpeg results/recurrent_kodak/B/X.json

Prints the PSNR and MS-SSIM-dB BD-rate (PCHIP) of every later file against the first one.  Against a published
or measured curve it also prints, at each point of ours inside that curve's rate range, our quality minus the
curve's interpolated (PCHIP in log-rate) at the same bpp: a BD-rate averages over the common quality range
and can hide that a curve is ahead at low rates and behind at high ones.  ``--json OUT`` writes it all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic.bench.bdrate import bd_rate  # noqa: E402
from lic.metrics import ms_ssim_db  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors"
METRICS = ("psnr", "ms_ssim_db")


def points(path: str, metric: str):
    its = json.loads(Path(path).read_text())["iterations"].values()
    y = [v["psnr"] if metric == "psnr" else ms_ssim_db(v["ms_ssim"]) for v in its]
    return [v["bpp"] for v in its], y


def published(name: str, csv_path: Path):
    from lic.bench.results import load_published

    curve = load_published(csv_path).get(name)
    if curve is None:
        raise SystemExit(f"recurrent_bdrate: no curve '{name}' in {csv_path}")
    return {m: curve.xy(m) for m in METRICS}


def measured(name: str, results_dir: Path):
    """A codec's mean curve from a ``lic bench`` results folder (bpp from real files)."""
    from lic.bench.results import load_results
    from lic.errors import InputError

    try:
        curves, _ = load_results(results_dir)
    except InputError as exc:
        raise SystemExit(f"recurrent_bdrate: {exc}") from None
    curve = curves.get(name)
    if curve is None:
        raise SystemExit(f"recurrent_bdrate: no codec '{name}' in {results_dir} (it has: {', '.join(sorted(curves))})")
    return {m: curve.xy(m) for m in METRICS}


def per_point(anchor_xy, test_xy) -> list[dict]:
    """Our quality minus the anchor curve's at each of our bpp within the anchor's rate range."""
    from scipy.interpolate import PchipInterpolator

    ab, aq = anchor_xy
    f = PchipInterpolator(np.log(ab), aq)
    return [{"bpp": float(b), "measured": float(q), "published": float(f(np.log(b))), "diff": float(q - f(np.log(b)))}
            for b, q in zip(*test_xy) if ab[0] <= b <= ab[-1]]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="recurrent_kodak.py result files (the first is the anchor without "
                                               "--published or --measured)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--published", help="codec name of a published curve, e.g. tfc-toderici-2017-cvpr")
    which.add_argument("--measured", help="codec name in a lic bench results folder (--results), e.g. jpeg")
    ap.add_argument("--anchors", default=str(ANCHORS / "kodak_rd_plus_external.csv"))
    ap.add_argument("--results", default=str(ROOT / "results" / "kodak"),
                    help="lic bench results folder for --measured (default: results/kodak)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.published:
        anchor_name, anchor = args.published, published(args.published, Path(args.anchors))
        tests = args.files
    elif args.measured:
        anchor_name, anchor = f"{args.measured} ({args.results})", measured(args.measured, Path(args.results))
        tests = args.files
    else:
        if len(args.files) < 2:
            ap.error("give two result files or more, or --published NAME or --measured NAME")
        anchor_name = args.files[0]
        anchor = {m: points(anchor_name, m) for m in METRICS}
        tests = args.files[1:]
    out = {"anchor": anchor_name, "results": {}}
    for test in tests:
        row = out["results"].setdefault(test, {})
        for metric in METRICS:
            txy = points(test, metric)
            if len(anchor[metric][0]) < 2:  # e.g. MS-SSIM not measured (images under 161 pixels a side)
                row[metric] = {"bd_rate_pct": None, "why": f"{anchor_name} has fewer than 2 {metric} points"}
                print(f"{test} vs {anchor_name}: {metric} n/a ({row[metric]['why']})")
                continue
            try:
                r = bd_rate(*anchor[metric], *txy, method="pchip")
                row[metric] = {"bd_rate_pct": r.value, "range": [r.lo, r.hi]}
                text = f"{r.value:+.2f} % over {r.lo:.2f}-{r.hi:.2f}"
            except ValueError as exc:
                row[metric] = {"bd_rate_pct": None, "why": str(exc)}
                text = f"n/a ({exc})"
            print(f"{test} vs {anchor_name}: {metric} BD-rate {text}")
            if args.published or args.measured:
                pts = per_point(tuple(np.asarray(v) for v in anchor[metric]), txy)
                row[metric]["per_point"] = pts
                unit = "dB"
                print("  " + ", ".join(f"{p['bpp']:.3f} bpp {p['diff']:+.2f} {unit}" for p in pts))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
