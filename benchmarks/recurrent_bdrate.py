#!/usr/bin/env python
"""BD-rate between recurrent_kodak.py results: each variant against the first, over its iteration points.

    python benchmarks/recurrent_bdrate.py results/recurrent_kodak/A/X.json results/recurrent_kodak/B/X.json [...]

Prints the PSNR and MS-SSIM-dB BD-rate (PCHIP) of every later file against the first one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic.bench.bdrate import bd_rate  # noqa: E402
from lic.metrics import ms_ssim_db  # noqa: E402


def points(path: str, metric: str):
    its = json.loads(Path(path).read_text())["iterations"].values()
    y = [v["psnr"] if metric == "psnr" else ms_ssim_db(v["ms_ssim"]) for v in its]
    return [v["bpp"] for v in its], y


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    anchor = argv[0]
    for test in argv[1:]:
        for metric in ("psnr", "ms_ssim_db"):
            try:
                r = bd_rate(*points(anchor, metric), *points(test, metric), method="pchip")
                text = f"{r.value:+.2f} % over {r.lo:.2f}-{r.hi:.2f}"
            except ValueError as exc:
                text = f"n/a ({exc})"
            print(f"{test} vs {anchor}: {metric} BD-rate {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
