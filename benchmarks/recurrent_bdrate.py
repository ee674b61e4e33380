#!/usr/bin/env python
"""BD-rate between recurrent_kodak.py results: each variant against the first, over its iteration points;
or (``--published NAME``) each against a published curve of ``../shared/anchors``.

    python benchmarks/recurrent_bdrate.py results/recurrent_kodak/A/X.json results/recurrent_kodak/B/X.json [...]
    python benchmarks/recurrent_bdrate.py --published tfc-toderici-2017-cvpr results/recurrent_kodak/B/X.json

Prints the PSNR and MS-SSIM-dB BD-rate (PCHIP) of every later file against the first one.  Against a published
curve it also prints, at each measured point inside the published rate range, the measured quality minus the
published one interpolated (PCHIP in log-rate) at the same bpp: a BD-rate averages over the common quality range
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


def per_point(anchor_xy, test_xy) -> list[dict]:
    """Measured minus published quality at each measured bpp within the published rate range."""
    from scipy.interpolate import PchipInterpolator

    ab, aq = anchor_xy
    f = PchipInterpolator(np.log(ab), aq)
    return [{"bpp": float(b), "measured": float(q), "published": float(f(np.log(b))), "diff": float(q - f(np.log(b)))}
            for b, q in zip(*test_xy) if ab[0] <= b <= ab[-1]]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="recurrent_kodak.py result files (the first is the anchor without "
                                               "--published)")
    ap.add_argument("--published", help="codec name of a published curve, e.g. tfc-toderici-2017-cvpr")
    ap.add_argument("--anchors", default=str(ANCHORS / "kodak_rd_plus_external.csv"))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.published:
        anchor_name, anchor = args.published, published(args.published, Path(args.anchors))
        tests = args.files
    else:
        if len(args.files) < 2:
            ap.error("give two result files or more, or --published NAME")
        anchor_name = args.files[0]
        anchor = {m: points(anchor_name, m) for m in METRICS}
        tests = args.files[1:]
    out = {"anchor": anchor_name, "results": {}}
    for test in tests:
        row = out["results"].setdefault(test, {})
        for metric in METRICS:
            txy = points(test, metric)
            try:
                r = bd_rate(*anchor[metric], *txy, method="pchip")
                row[metric] = {"bd_rate_pct": r.value, "range": [r.lo, r.hi]}
                text = f"{r.value:+.2f} % over {r.lo:.2f}-{r.hi:.2f}"
            except ValueError as exc:
                row[metric] = {"bd_rate_pct": None, "why": str(exc)}
                text = f"n/a ({exc})"
            print(f"{test} vs {anchor_name}: {metric} BD-rate {text}")
            if args.published:
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
