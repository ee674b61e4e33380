"""The ``bench``, ``rd``, ``compare`` and ``report`` subcommands of ``lic``.

:func:`register` adds them to the main parser's subparsers; each sets ``func(args) -> int``.
User errors are raised as :class:`lic.errors.LicError` subclasses, which the main CLI prints
as one line with a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError, OutputError
from .codecs import SPEC_HELP


def _note(msg: str) -> None:
    print(f"lic: note: {msg}", file=sys.stderr)


def _check_new_file(out: Path, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    for i in inputs:
        if i.exists() and out.exists() and out.resolve() == i.resolve():
            raise OutputError(f"{out}: output would overwrite the input")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder")
    if out.exists() and not force:
        raise OutputError(f"{out}: already exists (use --force to overwrite)")


def cmd_bench(args) -> int:
    from . import codecs as registry
    from .runner import run_bench

    if args.list_codecs:
        for name in registry.names():
            c = registry.get_codec(name)
            reason = c.missing()
            print(f"{name:9s} {'skipped: ' + reason if reason else ' '.join(c.settings)}  — {c.description}")
        print("lic:MODEL  the learned codec, one setting per quality of MODEL")
        return 0
    if args.dir is None:
        raise InputError("give the image folder: lic bench DIR --out RESULTS_DIR")
    if args.out is None:
        raise InputError("give the results folder: --out RESULTS_DIR")
    outcome = run_bench(args.dir, registry.split_specs(args.codecs), args.out, jobs=args.jobs, limit=args.limit,
                        progress=not args.quiet, log=_note)
    for f in outcome.failures[:20]:
        print(f"lic: error: {f}", file=sys.stderr)
    if len(outcome.failures) > 20:
        print(f"lic: error: ... and {len(outcome.failures) - 20} more failed measurements", file=sys.stderr)
    if not args.quiet:
        print(f"{outcome.measured} measured, {outcome.already_done} already there, {len(outcome.failures)} failed "
              f"in {outcome.seconds:.1f} s -> {Path(args.out) / 'per_image.csv'}, {Path(args.out) / 'summary.json'}")
    return 1 if outcome.failures else 0


def cmd_rd(args) -> int:
    from .rd import parse_range, run_rd

    run_rd(args.results, anchor=args.anchor, metric=args.metric, published=args.published, out=args.out,
           only=args.only, auc_range=parse_range(args.auc_range))
    return 0


def cmd_compare(args) -> int:
    from .codecs import split_specs
    from .compare import run_compare

    out = Path(args.output)
    _check_new_file(out, args.force, (Path(args.image),))
    run_compare(args.image, args.bpp, split_specs(args.codecs), out, crop=args.crop,
                log=print if not args.quiet else (lambda m: None))
    return 0


def cmd_report(args) -> int:
    from .rd import parse_range
    from .report import run_report

    results = Path(args.results)
    out = Path(args.output) if args.output else results / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"{out}: the report is an HTML file: use a .html name")
    inputs = (results / "summary.json", results / "per_image.csv") + ((Path(args.published),) if args.published else ())
    _check_new_file(out, args.force, inputs)
    run_report(args.results, out, anchor=args.anchor, published=args.published, only=args.only,
               auc_range=parse_range(args.auc_range))
    return 0


def _rd_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--anchor", help="codec every other is compared with (default: jpeg if measured, else the first); "
                                    "a published name or its unique prefix works too")
    p.add_argument("--published", metavar="CSV", help="overlay published RD points (columns codec,bpp,psnr,ms_ssim,...), "
                                                      "e.g. shared/anchors/kodak_rd.csv")
    p.add_argument("--only", metavar="GLOBS", help="keep only codecs matching these comma-separated globs "
                                                   "(the anchor is always kept), e.g. 'jpeg,webp,bpg*,vtm'")
    p.add_argument("--auc-range", default="0.25,1.0", metavar="LO,HI",
                   help="bpp interval of the mean-quality (AUC) column (default 0.25,1.0)")


def register(subparsers) -> None:
    """Add ``bench``, ``rd``, ``compare`` and ``report`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "bench", help="measure codecs on a folder of images (bytes, bpp, PSNR, MS-SSIM, PSNR-HVS, time, memory)",
        description="Encode and decode every image with every codec setting; append to RESULTS_DIR/per_image.csv "
                    "(resumable) and write RESULTS_DIR/summary.json. Codecs whose library is missing are skipped "
                    "with a note.")
    p.add_argument("dir", nargs="?", help="folder of images (PNG, JPEG, ...; RGBA/gray converted to RGB)")
    p.add_argument("--codecs", default="classical", help=SPEC_HELP + "; 'classical' = every classical codec "
                                                                      "(default)")
    p.add_argument("--out", "-o", help="results folder (created; an existing one is resumed)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes for classical codecs (default 1; "
                                                             "lic models always run in the main process)")
    p.add_argument("--limit", type=int, help="only the first N images (sorted by name)")
    p.add_argument("--list-codecs", action="store_true", help="list codecs, their settings and availability")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)

    p = subparsers.add_parser(
        "rd", help="BD-rate / BD-metric table against an anchor, AUC, and RD plots",
        description="Read RESULTS_DIR/summary.json; print and write bdrate.csv/.md and rd_*.png/.svg.")
    p.add_argument("results", help="a 'lic bench' results folder")
    p.add_argument("--metric", default="psnr", choices=["psnr", "msssim", "psnrhvs", "psnrhvsm"],
                   help="quality for the BD table (msssim is in dB; default psnr)")
    p.add_argument("--out", "-o", help="folder for the table and plots (default RESULTS_DIR/rd)")
    _rd_options(p)
    p.set_defaults(func=cmd_rd)

    p = subparsers.add_parser(
        "compare", help="one image through several codecs near a target bpp: figure with full views and crops")
    p.add_argument("image")
    p.add_argument("--bpp", type=float, required=True, help="target bits per pixel")
    p.add_argument("--codecs", default="jpeg,webp,heic,avif,jxl", help=SPEC_HELP)
    p.add_argument("--crop", metavar="X,Y,W,H", help="zoomed region in pixels (default: the most detailed square "
                                                      "of a quarter of the short side)")
    p.add_argument("-o", "--output", required=True, help="figure file (.png, .svg, .pdf, .jpg)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing figure")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("report", help="self-contained HTML report of a results folder")
    p.add_argument("results", help="a 'lic bench' results folder")
    p.add_argument("-o", "--output", help="HTML file (default RESULTS_DIR/report.html)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing report")
    _rd_options(p)
    p.set_defaults(func=cmd_report)
