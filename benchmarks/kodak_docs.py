#!/usr/bin/env python
"""Regenerate docs/kodak.md: Kodak RD plots and BD-rate tables, shipped lic models vs classical codecs.

    python benchmarks/kodak_docs.py [--kodak DIR] [--jobs 2]

1. ``lic bench`` over Kodak for every classical codec and every shipped lic model, into
   ``results/kodak`` (resumable: only what is missing is measured; ~10 min for the classical part
   on 2 cores, ~5 min per lic model);
2. ``lic rd`` for PSNR and MS-SSIM (dB), JPEG 4:2:0 as anchor, with selected published curves
   (``../shared/anchors/kodak_rd_plus_external.csv``) overlaid, into ``docs/kodak/``;
3. ``docs/kodak.md`` with the plots and tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.bench.rd import run_rd  # noqa: E402
from lic.cli import main as lic_main  # noqa: E402

SHARED = ROOT.parent / "shared"
PUBLISHED_KEEP = "bmshj2018-hyperprior_mse_cpu,bpg_444_x265_ycbcr,vtm,tfc-toderici-2017-cvpr,jpeg,webp"


def _spec(name: str) -> str:
    """``lic:NAME``; a progressive model at 1, 2, 3, 4, 6, 8, 12, 16 iterations rather than every one."""
    model = zoo.load_model(name)
    if getattr(model, "progressive", False) and len(model.qualities) > 8:
        n = model.qualities[-1]
        picks = sorted({k for k in (1, 2, 3, 4, 6, 8, 12, 16, n) if k <= n})
        return f"lic:{name}@" + "/".join(f"q{k}" for k in picks)
    return f"lic:{name}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", default=str(SHARED / "data" / "kodak"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", default=str(ROOT / "results" / "kodak"))
    args = ap.parse_args()
    if not Path(args.kodak).is_dir():
        print(f"kodak_docs: Kodak not found at {args.kodak}", file=sys.stderr)
        return 2
    models = list(zoo.shipped())
    codecs = ",".join(["classical"] + [_spec(m) for m in models])
    rc = lic_main(["bench", args.kodak, "--codecs", codecs, "--out", args.results, "--jobs", str(args.jobs), "-q"])
    if rc:
        return rc
    published = SHARED / "anchors" / "kodak_rd_plus_external.csv"
    if not published.exists():
        published = SHARED / "anchors" / "kodak_rd.csv"
    docs = ROOT / "docs" / "kodak"
    only = ",".join(["jpeg*", "webp", "avif*", "jxl", "heic*", "j2k", "lic*"] + PUBLISHED_KEEP.split(","))
    # each folder holds its metric's table and only the plots no other folder has
    for metric, plots in (("psnr", ("psnr", "psnrhvs")), ("msssim", ("msssim",))):
        run_rd(args.results, anchor="jpeg", metric=metric, only=only, out=docs / metric, plots=plots,
               published=str(published) if published.exists() else None)
    lines = ["# Kodak results", "",
             "Regenerate with `python benchmarks/kodak_docs.py` (real files; classical codecs through Pillow, "
             "pillow-heif and pillow-jxl-plugin on this machine; `*` marks published curves from "
             "`shared/anchors`).", ""]
    lines += [f"Shipped lic models: {', '.join(models)} — see their model cards in `lic/weights/`.", ""]
    for metric, title in (("psnr", "PSNR (RGB)"), ("msssim", "MS-SSIM (dB)")):
        lines += [f"## {title}", "", f"![Kodak RD, {title}](kodak/{metric}/rd_{'psnr' if metric == 'psnr' else 'msssim'}.svg)", ""]
        table = docs / metric / "bdrate.md"
        if table.exists():
            lines += [table.read_text(), ""]
    (ROOT / "docs" / "kodak.md").write_text("\n".join(lines))
    _readme_block(docs, models)
    print(f"written: {ROOT / 'docs' / 'kodak.md'}, {docs}/ and the Kodak block of README.md")
    return 0


BEGIN, END = "<!-- kodak:begin (written by benchmarks/kodak_docs.py) -->", "<!-- kodak:end -->"


def _readme_block(docs: Path, models: list[str]) -> None:
    """The README's Kodak section: the PSNR plot and BD-rate table, between the two markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print("kodak_docs: README.md has no Kodak markers; left as it is", file=sys.stderr)
        return
    table = (docs / "psnr" / "bdrate.md").read_text().strip() if (docs / "psnr" / "bdrate.md").exists() else ""
    block = [BEGIN, "",
             f"24 Kodak images, real files, RGB PSNR; lic models: {', '.join(models)}; JPEG 4:2:0 is the anchor; "
             "`*` = published curves. MS-SSIM and more in [docs/kodak.md](docs/kodak.md); regenerate with "
             "`python benchmarks/kodak_docs.py`.", "",
             "![Kodak RD, PSNR](docs/kodak/psnr/rd_psnr.svg)", "", table, "", END]
    head, rest = text.split(BEGIN, 1)
    readme.write_text(head + "\n".join(block) + rest.split(END, 1)[1])


if __name__ == "__main__":
    sys.exit(main())
