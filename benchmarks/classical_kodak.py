"""Classical-codec sweep over Kodak: ``python benchmarks/classical_kodak.py [--kodak DIR]``.

Runs every available classical codec (JPEG 4:2:0/4:4:4, WebP, AVIF 4:2:0/4:4:4, JPEG XL,
HEIC 4:2:0/4:4:4, JPEG 2000; BPG and VVC when their binaries are on PATH) at its default
6-setting sweep (about 0.1–2 bpp) on the 24 Kodak images, then writes

* ``results/classical_kodak/per_image.csv`` and ``summary.json`` (see ``lic bench``),
* ``results/classical_kodak/rd/`` — BD-rate table against JPEG (PSNR) and RD plots, with the
  published Kodak points of ``shared/anchors/kodak_rd.csv`` overlaid when that file exists,
* ``results/classical_kodak/report.html``,
* ``results/classical_kodak/run.json`` — wall time, jobs, measurement counts.

It resumes: rerunning measures only what is missing.  On a 2-core machine the whole sweep is
sized to finish in well under 15 minutes with ``--jobs 2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic.bench import codecs as registry  # noqa: E402
from lic.bench.rd import run_rd  # noqa: E402
from lic.bench.report import run_report  # noqa: E402
from lic.bench.runner import run_bench  # noqa: E402
from lic.errors import LicError  # noqa: E402

SHARED = ROOT.parent / "shared"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", default=str(SHARED / "data" / "kodak"), help="folder with kodim01..24.png")
    ap.add_argument("--out", default=str(ROOT / "results" / "classical_kodak"))
    ap.add_argument("--codecs", default="classical", help="codec specs (default: every classical codec)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only the first N images (for a quick try)")
    ap.add_argument("--published", default=str(SHARED / "anchors" / "kodak_rd.csv"))
    args = ap.parse_args(argv)

    kodak = Path(args.kodak)
    if not kodak.is_dir() or not any(kodak.glob("*.png")):
        print(f"classical_kodak: no Kodak images in {kodak}; pass --kodak DIR (the 24 kodimNN.png files)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    published = args.published if Path(args.published).is_file() else None
    t0 = time.perf_counter()
    try:
        outcome = run_bench(kodak, registry.split_specs(args.codecs), out, jobs=args.jobs, limit=args.limit)
        bench_s = time.perf_counter() - t0
        run_rd(out, anchor="jpeg", metric="psnr", published=published,
               only="jpeg*,webp*,avif*,jxl,heic*,j2k,jpeg2000,bpg*,vtm,hm,av1" if published else None)
        run_report(out, out / "report.html", anchor="jpeg", published=published,
                   only="jpeg*,webp*,avif*,jxl,heic*,j2k,jpeg2000,bpg*,vtm,hm,av1" if published else None)
    except LicError as e:
        print(f"classical_kodak: error: {e}", file=sys.stderr)
        return e.exit_code
    run = {
        "wall_s_total": round(time.perf_counter() - t0, 1),
        "wall_s_bench": round(bench_s, 1),
        "jobs": args.jobs,
        "measured": outcome.measured,
        "already_done": outcome.already_done,
        "failed": outcome.failures,
        "skipped_codecs": outcome.skipped_codecs,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (out / "run.json").write_text(json.dumps(run, indent=1))
    print(f"bench {run['wall_s_bench']} s ({outcome.measured} new measurements), total {run['wall_s_total']} s "
          f"-> {out}")
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
