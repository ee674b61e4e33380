"""The ``lic`` command line.

Every user-caused problem ends in one line on stderr and a non-zero exit; no
traceback (set ``LIC_DEBUG=1`` to see one), no partial output (files are
written to a temporary name and renamed), and an input is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from .errors import FormatError, InputError, Interrupted, LicError, OutputError
from .files import make_folders, remove_empty, write_atomic

PROG = "lic"


# -- helpers ----------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(out: Path, force: bool, inputs: tuple[Path, ...] = ()) -> None:
    for i in inputs:
        if _same_file(i, out) or i.resolve() == out.resolve():
            raise OutputError(f"{out}: output would overwrite the input")
    if out.exists() and out.is_dir():
        raise OutputError(f"{out}: is a folder")
    if out.exists() and not force:
        raise OutputError(f"{out}: already exists (use --force to overwrite)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")


def _fmt_size(n: int) -> str:
    return f"{n:,} bytes"


#: the file name that stands for standard input (as INPUT) or standard output (as -o), as in cwebp or gzip
STDIO = "-"


@contextmanager
def _naming(source):
    """A damaged or foreign .lic file's error names the file, as the folder modes do."""
    try:
        yield
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}") from None


def _read_stdin(what: str) -> bytes:
    stream = sys.stdin
    if stream is None or stream.isatty():
        raise InputError(f"{STDIO}: standard input is a terminal; pipe {what} into it or name a file")
    return stream.buffer.read()


def _check_stdout() -> None:
    """Before any work: binary output is not sent to a terminal (as gzip and zstd refuse to)."""
    if sys.stdout is None or sys.stdout.isatty():
        raise OutputError(f"{STDIO}: will not write binary data to a terminal (redirect standard output or give -o FILE)")


def _write_stdout(data: bytes) -> None:
    """Written only once the whole output exists, so that an error never leaves half of it in a pipe."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _safe_name(name: str) -> str:
    """A name (a folder's, a model's: both come from outside) as one path component: no separators, no leading
    dot, nothing but letters, digits and ``-_.+``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".") or "unnamed"


def _output_folder(args, made: list[Path]) -> Path:
    """``-o`` of a folder input: a folder, made when missing."""
    if not args.output or args.output == STDIO:
        raise OutputError("a folder input needs -o OUTPUT_FOLDER")
    dst = Path(args.output)
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"{dst}: exists and is not a folder")
    made += make_folders(dst)
    return dst


def _report_failures(failed: list[str]) -> int:
    """Folder modes: one error line per file that failed; exit status 1 if any did."""
    for msg in failed:
        print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1 if failed else 0


def _save_image(img, dest, fmt: str) -> None:
    """Write a decoded image to a path or binary stream, with its ICC profile and EXIF / XMP metadata where
    the format holds them."""
    from . import metadata

    icc = img.info.get("icc_profile")
    if icc and fmt not in ("PNG", "JPEG", "WEBP", "TIFF", "AVIF", "HEIF", "JXL"):
        warnings.warn(f"{fmt} output cannot hold the file's ICC colour profile; colours may shift "
                      "(write .png to keep it)", stacklevel=3)
    opts = metadata.save_options(img.info, fmt)
    img.save(dest, format=fmt, **({"icc_profile": icc} if icc else {}), **opts)


# -- commands ----------------------------------------------------------------
def cmd_compress(args) -> int:
    from . import codec, container, metadata
    from .data import list_images
    from .imageio import read_image, read_image_bytes

    from_stdin = args.input == STDIO
    src = Path(args.input)
    if not from_stdin and not src.exists():
        raise InputError(f"{src}: no such file or folder")
    keep = metadata.parse_keep(args.metadata)
    model = _load(args.model, args.device)
    if args.quality is not None:
        model.check_quality(args.quality)
    rate = {k: getattr(args, k) for k in ("iterations", "bpp", "psnr") if getattr(args, k) is not None}
    if rate and args.quality is not None:
        raise InputError("-q/--quality and --iterations/--bpp/--psnr exclude each other")

    codec.check_refine(model, args.refine)
    codec.check_exact(model, args.exact)

    def encode(img, bar: bool = False, progress=None):
        if args.refine and bar and not args.quiet:  # the one slow case: a progress bar over the search's steps
            from tqdm import tqdm

            from .ratecontrol import refine_steps

            layers = args.iterations if rate else (args.quality or model.default_quality)
            total = refine_steps(model, img.height, img.width, args.refine, layers, per_quality=bool(rate))
            with tqdm(total=total, desc="refine", unit="step", leave=False) as t:
                return encode(img, progress=t.update)
        if not rate:
            return codec.encode(img, model=model, quality=args.quality, refine=args.refine, progress=progress,
                                exact=args.exact, metadata=keep), None
        from . import ratecontrol

        choice = ratecontrol.encode(img, model, **rate, refine=args.refine, progress=progress, exact=args.exact,
                                    metadata=keep)
        return codec.Encoded(choice.data, None, container.read(choice.data).header), choice

    if not from_stdin and src.is_dir():
        files = list_images(src)
        if not files:
            raise InputError(f"{src}: no images found in this folder")
        made: list[Path] = []
        dst = _output_folder(args, made)
        from tqdm import tqdm

        failed, total_bytes, total_px, written = [], 0, 0, {}
        for f in tqdm(files, desc="compress", unit="image", disable=args.quiet):
            out = dst / f.relative_to(src).with_suffix(".lic")
            try:
                if out in written:  # photo.png and photo.jpg side by side: never one over the other
                    raise OutputError(f"{f}: its output {out} is already {written[out]}'s (rename one of them)")
                made += make_folders(out.parent)
                check_output(out, args.force, (f,))
                enc, _ = encode(read_image(f))
                write_atomic(out, enc.data)
                written[out] = f
                total_bytes += len(enc.data)
                total_px += enc.header.width * enc.header.height
            except LicError as exc:
                failed.append(str(exc))
        remove_empty(made)  # folders left empty by a run where every file in them failed
        done = len(files) - len(failed)
        if done and not args.quiet:
            print(f"{done} image{'s' if done > 1 else ''} -> {dst}: {_fmt_size(total_bytes)}, {8 * total_bytes / total_px:.4f} bpp")
        return _report_failures(failed)
    to_stdout = args.output == STDIO or (from_stdin and not args.output)
    if to_stdout:
        _check_stdout()
    else:
        out = Path(args.output) if args.output else src.with_suffix(".lic")
        check_output(out, args.force, () if from_stdin else (src,))
    img = read_image_bytes(_read_stdin("an image"), "stdin") if from_stdin else read_image(src)
    enc, choice = encode(img, bar=True)
    if to_stdout:
        _write_stdout(enc.data)
    else:
        write_atomic(out, enc.data)
    if not args.quiet:
        h = enc.header
        names = f"{'stdin' if from_stdin else src} -> {'stdout' if to_stdout else out}"
        report = sys.stderr if to_stdout else sys.stdout  # standard output carries the file
        synthesis = ", exact synthesis" if args.exact else ""
        if choice is None:
            print(f"{names}: {_fmt_size(len(enc.data))}, {8 * len(enc.data) / (h.width * h.height):.4f} bpp "
                  f"({h.width}x{h.height} {h.mode}, {h.model} q{h.quality}{synthesis})", file=report)
        else:
            c = choice.chosen
            level = codec.count(c.quality, model.prefix_unit) if model.progressive else f"q{c.quality}"
            note = "" if choice.reached else f", target {args.psnr:g} dB not reached"
            print(f"{names}: {_fmt_size(len(c.data))}, {c.bpp:.4f} bpp, PSNR {c.psnr:.2f} dB "
                  f"({h.width}x{h.height} {h.mode}, {h.model} {level}{synthesis}{note})", file=report)
    return 0


def cmd_decompress(args) -> int:
    import io

    from . import codec

    from_stdin = args.input == STDIO
    src = Path(args.input)
    if not from_stdin and src.is_dir():
        return _decompress_folder(args, src)
    if not from_stdin and not src.is_file():
        raise InputError(f"{src}: no such file")
    to_stdout = args.output == STDIO or (from_stdin and not args.output)
    if to_stdout:  # PNG: the one format that keeps every mode and the colour profile
        _check_stdout()
        fmt = "PNG"
    else:
        out = Path(args.output) if args.output else src.with_suffix(".png")
        check_output(out, args.force, () if from_stdin else (src,))
        fmt = _pil_format(out)
    data = _read_stdin("a .lic file") if from_stdin else src.read_bytes()
    with _naming("stdin" if from_stdin else src):
        h = codec.read_header(data).header
        if not to_stdout:
            _check_format_keeps(out, fmt, h.mode)  # before the decode, not after it
        dec = codec.decode_file(data, model=args.model, layers=args.layers, device=args.device)
    img = dec.image
    if to_stdout:
        buf = io.BytesIO()
        _save_image(img, buf, fmt)
        _write_stdout(buf.getvalue())
    else:
        write_atomic(out, save=lambda tmp: _save_image(img, tmp, fmt))
    if not args.quiet:
        print(f"{'stdin' if from_stdin else src} -> {'stdout (PNG)' if to_stdout else out}: "
              f"{img.size[0]}x{img.size[1]} {img.mode}{', ' + dec.prefix if dec.prefix else ''}",
              file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _decompress_folder(args, src: Path) -> int:
    """Every ``.lic`` file under ``src`` to a PNG at the same place under ``-o``; a file that fails is
    reported (one line each) and the others go on; exit status 1 if any failed."""
    from tqdm import tqdm

    from . import codec

    from .data import walk_files

    files = walk_files(src, {".lic"})
    if not files:
        raise InputError(f"{src}: no .lic files found in this folder")
    from . import zoo

    zoo.check_device(args.device)  # once, not once per file
    made: list[Path] = []
    dst = _output_folder(args, made)
    failed, written = [], {}
    for f in tqdm(files, desc="decompress", unit="file", disable=args.quiet):
        out = dst / f.relative_to(src).with_suffix(".png")
        try:
            if out in written:  # x.lic and x.LIC side by side: never one over the other
                raise OutputError(f"{f}: its output {out} is already {written[out]}'s (rename one of them)")
            made += make_folders(out.parent)
            check_output(out, args.force, (f,))
            img = codec.decode(f.read_bytes(), model=args.model, layers=args.layers, device=args.device)
            write_atomic(out, save=lambda tmp: _save_image(img, tmp, "PNG"))
            written[out] = f
        except LicError as exc:
            failed.append(str(exc) if isinstance(exc, OutputError) else f"{f}: {exc}")  # naming the file at fault
    remove_empty(made)
    done = len(files) - len(failed)
    if done and not args.quiet:
        print(f"{done} file{'s' if done > 1 else ''} -> {dst} (PNG)")
    return _report_failures(failed)


def _check_format_keeps(out: Path, fmt: str, mode: str) -> None:
    """Refuse an output format that cannot store this image as decoded: one that cannot write the mode at all,
    drops an alpha plane, or changes the size (ICNS).  Tried on a small image of that mode, with two levels of
    alpha, before anything is decoded."""
    import io

    import numpy as np
    from PIL import Image

    if fmt == "JPEG" and mode in ("LA", "RGBA"):
        raise OutputError(f"{out}: JPEG has no alpha channel and this image is {mode} (write .png, .webp or .tif)")
    bands = len(mode)
    a = np.zeros((2, 3, bands), np.uint8)
    a[..., 0] = [[0, 90, 180], [30, 120, 250]]
    if mode in ("LA", "RGBA"):
        a[..., -1] = [[255, 0, 128], [255, 64, 200]]
    probe = Image.fromarray(a[..., 0] if bands == 1 else a, mode)
    buf = io.BytesIO()
    try:
        probe.save(buf, format=fmt)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # Pillow's writers refuse modes in these ways
        raise OutputError(f"{out}: cannot write {mode} images as {fmt} ({exc}); write .png") from None
    try:
        buf.seek(0)
        with Image.open(buf) as back:
            back.load()
            size, has_alpha = back.size, "A" in back.getbands()
            alpha = np.asarray(back.getchannel("A")) if has_alpha else None
    except (OSError, ValueError, KeyError, TypeError):  # a format Pillow writes but cannot read (PDF): unchecked
        return
    if size != probe.size:
        raise OutputError(f"{out}: {fmt} does not keep the image's size; write .png")
    if mode in ("LA", "RGBA") and (alpha is None or not np.array_equal(alpha, a[..., -1])):
        raise OutputError(f"{out}: {fmt} does not keep this {mode} image's alpha plane (write .png, .webp or .tif)")


def _pil_format(out: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(out.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise OutputError(f"{out}: unknown image format '{out.suffix}' (use .png, .bmp, .tif, .webp, .jpg)")
    return fmt


def cmd_info(args) -> int:
    from . import container

    src = Path(args.input)
    if args.input == STDIO:
        data, src = _read_stdin("a .lic file"), "stdin"
    elif not src.is_file():
        raise InputError(f"{src}: no such file")
    else:
        data = src.read_bytes()
    with _naming(src):
        f = container.read(data)
    h = f.header
    px = h.width * h.height
    print(f"file      {src} ({_fmt_size(len(data))}, {8 * len(data) / px:.4f} bpp)")
    print(f"format    lic v{container.FORMAT_VERSION}")
    print(f"model     {h.model} (weights {h.digest.hex()})")
    print(f"image     {h.width}x{h.height} {h.mode}")
    print(f"quality   {h.quality}")
    if h.params == container.PARAMS_EXACT_SYNTHESIS:
        print("synthesis exact (decodes to the same pixels on every machine)")
    elif h.params:
        print(f"params    {h.params.hex()}")
    state = ("complete" if not f.truncated else f"TRUNCATED ({len(f.chunks)} of {h.n_chunks} chunks complete, "
             f"{'then part of the next' if f.partial else 'cut at a chunk boundary'})")
    print(f"chunks    {h.n_chunks} ({state})")
    print(f"  {'#':>3}  {'kind':<8} {'bytes':>10} {'cum. bpp':>9}")
    layer = 0
    names = {container.CHUNK_ALPHA: "alpha", container.CHUNK_ICC: "icc", container.CHUNK_EXIF: "exif",
             container.CHUNK_XMP: "xmp"}  # data chunks are numbered below
    for i, (c, end) in enumerate(zip(f.chunks, f.ends), 1):
        kind = names.get(c.kind, str(c.kind))
        if c.kind == container.CHUNK_MODEL:
            layer += 1
            kind = f"data {layer}"
        print(f"  {i:>3}  {kind:<8} {len(c.data):>10,} {8 * end / px:>9.4f}")
    print("  cum. bpp: the file cut after that chunk (progressive models: data k = iteration or layer k; every such cut decodes)")
    return 0


def cmd_models(args) -> int:
    import json

    from . import zoo

    models = zoo.shipped()
    if not models:
        print("no models installed")
        return 1
    for name, path in models.items():
        meta = zoo.read_metadata(path)
        cfg = json.loads(meta.get("config", "{}"))
        lams = cfg.get("lambdas", [])
        default = "  (default)" if name == zoo.DEFAULT_MODEL else ""
        print(f"{name}{default}")
        if cfg.get("arch") == "RecurrentCodec":
            print(f"  architecture  {cfg.get('arch')}  {cfg.get('cell')} cells, {cfg.get('reconstruction')} "
                  f"reconstruction, progressive, loss {cfg.get('loss', 'l1')}")
            print(f"  qualities     1..{cfg.get('iterations')} iterations "
                  f"({cfg.get('bits')} bits per 16x16 block each, before entropy coding)")
        elif cfg.get("arch") == "ScalableRecurrentCodec":
            prior = "RNN hyperprior" if cfg.get("hyperprior") else "factorized prior per layer"
            print(f"  architecture  {cfg.get('arch')}  {cfg.get('cell')} cells, {prior}, progressive, "
                  f"loss {cfg.get('loss', 'mse')}")
            print(f"  qualities     1..{len(lams)} layers  (layer-wise λ = {', '.join(f'{l:g}' for l in lams)})")
        else:
            extra = ""
            if cfg.get("arch") == "AttentionCodec":
                loss = (f"rate + λ·({cfg.get('mae', 0):g}·MAE + {cfg.get('ms_ssim', 0):g}·(1 − MS-SSIM))"
                        if cfg.get("loss") == "mix" else "rate + λ·MSE")
                extra = f", {cfg.get('entropy')} entropy model, loss {loss}"
            print(f"  architecture  {cfg.get('arch')}  N={cfg.get('N')} M={cfg.get('M')}{extra}")
            print(f"  qualities     1..{len(lams)}  (λ = {', '.join(f'{l:g}' for l in lams)})")
        kodak = json.loads(meta.get("kodak", "null") or "null")
        if kodak:
            if len(kodak) > 8:  # a progressive model: 1, 2, 4, 8, ... iterations and the last
                keys = list(kodak)
                kodak = {q: kodak[q] for i, q in enumerate(keys, 1) if i & (i - 1) == 0 or q == keys[-1]}
            perceptual = ((cfg.get("arch") == "AttentionCodec" and cfg.get("loss") == "mix")
                          or "ms-ssim" in str(cfg.get("loss", "")))
            pts = ", ".join(f"q{q}: {v['bpp']:.3f} bpp / {v['psnr']:.2f} dB"
                            + (f" / MS-SSIM {v['ms_ssim']:.4f}" if perceptual and "ms_ssim" in v else "")
                            for q, v in kodak.items())
            print(f"  Kodak         {pts}")
        print(f"  weights       {path.name}")
        if path.with_suffix(".md").exists():
            print(f"  model card    {path.with_suffix('.md')}")
    from .models import ARCHITECTURES

    trainable = [n for cls in ARCHITECTURES.values() for n in (getattr(cls, "variants", None) or [cls.name])]
    missing = [n for n in trainable if n not in models]
    if missing:
        print("\ntrainable, no weights shipped yet (lic train --model NAME ..., then --model runs/x/model.safetensors):")
        print("  " + ", ".join(missing))
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate

    if not Path(args.dir).is_dir():
        what = "is a file; lic eval takes a folder of images" if Path(args.dir).exists() else "no such folder"
        raise InputError(f"{args.dir}: {what}")
    model = _load(args.model, args.device)
    out = Path(args.out) if args.out else Path("results") / _safe_name(f"eval-{Path(args.dir).resolve().name}-"
                                                                       f"{getattr(model, 'lic_name', 'model')}")
    summary = evaluate(model, args.dir, out, qualities=args.qualities, max_images=args.limit, progress=not args.quiet,
                       refine=args.refine)
    print(f"{'q':>3} {'bpp':>8} {'PSNR':>8} {'MS-SSIM':>8} {'enc s':>7} {'dec s':>7}")
    for q, v in summary["qualities"].items():
        ms = "n/a" if v["ms_ssim"] is None else f"{v['ms_ssim']:.4f}"
        psnr = f"{v['psnr']:8.2f}" if v["psnr"] is not None else f"{'inf':>8}"  # None: every image lossless
        print(f"{q:>3} {v['bpp']:8.4f} {psnr} {ms:>8} {v['encode_s']:7.3f} {v['decode_s']:7.3f}")
    skipped = f", {len(summary['skipped'])} unreadable skipped" if summary["skipped"] else ""
    print(f"written: {out / 'per_image.csv'}, {out / 'summary.json'} ({summary['images']} images{skipped})")
    return 0


def cmd_train(args) -> int:
    from .train_options import check_arguments

    check_arguments(args)  # before torch is imported: a refused option answers at once
    from . import train

    result = train.train(args)
    if not args.quiet and result.get("digest"):
        print(f"trained {result['steps']} steps in {result['minutes']:.1f} min -> {Path(args.out) / 'model.safetensors'}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args)


DEVICE_HELP = "where the networks run: cpu (default), cuda, cuda:N; the entropy coding stays on the CPU"
THREADS_HELP = ("CPU threads for the networks (default: torch's, one per core); files and decoded images are the "
                "same whatever the count")


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _load(name, device=None):
    from . import zoo

    return zoo.load_model(name or zoo.DEFAULT_MODEL, device=device)


# -- parser -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog=PROG, description="lic: learned image compression")
    p.add_argument("--version", action="version", version=f"lic {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("compress", help="image (or folder of images) -> .lic")
    c.add_argument("input", help="image file, folder of images, or - for standard input")
    c.add_argument("-o", "--output", help="output file (folder for a folder input), - for standard output; "
                                          "default: INPUT.lic (standard output for - as INPUT)")
    c.add_argument("--model", help="model name (see 'lic models') or weights file")
    c.add_argument("-q", "--quality", type=int, help="quality level (model-specific, see 'lic models')")
    rc = c.add_mutually_exclusive_group()
    rc.add_argument("--iterations", "--layers", type=int, metavar="K", help="progressive models: code K iterations")
    rc.add_argument("--bpp", type=float, metavar="B", help="rate control: the best file of at most B bpp (real bytes)")
    rc.add_argument("--psnr", type=float, metavar="P", help="rate control: the smallest file reaching P dB")
    c.add_argument("--refine", type=int, default=0, metavar="N",
                   help="N steps of encoder-side search for the latents (or, toderici2017-rnn*, each iteration's bits), "
                        "e.g. 50 (20 for toderici2017-rnn*): smaller files at the same quality, decoding unchanged; per step "
                        "for a 768x512 photo on a 2-core CPU about 0.4 s (bmshj2018), 0.6 s (su2020, 4 layers), 1.8 s "
                        "(attention), 0.27 s per iteration (toderici2017-rnn) (default 0)")
    c.add_argument("--exact", action="store_true",
                   help="a file that decodes to the same pixels on every machine (exact arithmetic in the "
                        "synthesis; decoding takes about 4x as long: 0.8 s instead of 0.2 s for a 768x512 photo "
                        "with bmshj2018 on a 2-core CPU)")
    c.add_argument("--metadata", default="none", metavar="LIST",
                   help="the input's metadata to keep in the file: none (default), all, exif, xmp or exif,xmp "
                        "(as cwebp -metadata; lic decompress writes it back into PNG, JPEG, WebP and AVIF). "
                        "The ICC colour profile is always kept")
    c.add_argument("--device", default=None, help=DEVICE_HELP)
    c.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    c.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".lic (or folder of .lic files) -> image")
    d.add_argument("input", help=".lic file, folder of .lic files, or - for standard input")
    d.add_argument("-o", "--output", help="output image (format from the extension), - for PNG on standard output, "
                                          "or a folder for a folder input (PNG files); default: INPUT.png "
                                          "(standard output for - as INPUT)")
    d.add_argument("--model", help="weights file, when the file was made with weights that are not installed")
    d.add_argument("--layers", "--iterations", dest="layers", type=int, help="progressive models: decode the first K")
    d.add_argument("--device", default=None, help=DEVICE_HELP)
    d.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="print the header and chunk table of a .lic file")
    i.add_argument("input", help=".lic file, or - for standard input")
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("models", help="list installed models and their rates")
    m.set_defaults(func=cmd_models)

    e = sub.add_parser("eval", help="evaluate a model on a folder (real files): CSV + JSON")
    e.add_argument("dir")
    e.add_argument("--model", help="model name or weights file")
    e.add_argument("--qualities", type=int, nargs="+")
    e.add_argument("--limit", type=int, help="at most this many images")
    e.add_argument("--refine", type=int, default=0, metavar="N", help="encode with N steps of latent search "
                   "(as lic compress --refine)")
    e.add_argument("--device", default=None, help=DEVICE_HELP)
    e.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    e.add_argument("--out", help="results folder (default results/eval-DIR-MODEL)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    from .train_options import add_arguments as train_arguments

    t = sub.add_parser("train", help="train a model (GPU when present; torchrun for several)")
    train_arguments(t)
    t.set_defaults(func=cmd_train)

    dm = sub.add_parser("demo", help="compress and decompress a sample photo; compare with JPEG")
    dm.add_argument("--model", help="model name or weights file")
    dm.add_argument("-q", "--quality", type=int)
    dm.add_argument("--out", default="demo_out", help="folder for the demo files (default %(default)s)")
    dm.set_defaults(func=cmd_demo)

    try:
        from .bench.cli import register
    except ImportError:
        register = None
    if register is not None:
        register(sub)
    return p


def _warning_line(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``) raised in the main thread: the command unwinds as on Ctrl-C, so that its ``finally``
    blocks run (temporary outputs removed, ``lic bench``'s summary written) rather than dying mid-write."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextmanager
def _sigterm_unwinds():
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    with _sigterm_unwinds():
        return _main(argv)


def _main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _warning_line
    from .runtime import keep_freed_memory

    keep_freed_memory()  # a short-lived process: reusing freed memory makes coding faster (lic.runtime)
    try:
        _set_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except LicError as exc:
        kind = "" if isinstance(exc, Interrupted) else "error: "  # a run stopped on request, and saved
        print(f"{PROG}: {kind}{exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 143  # 128 + SIGTERM, what a shell reports for a process the signal ended
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lic models | head`: the reader left; stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError):
            pass
        return 141
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # torch reports a failed allocation as a RuntimeError (CUDA: OutOfMemoryError)
        text = str(exc)
        if "can't allocate memory" in text or "out of memory" in text.lower():
            print(f"{PROG}: error: out of memory ({text.splitlines()[0][:160]})", file=sys.stderr)
            return 1
        if os.environ.get("LIC_DEBUG"):
            raise
        print(f"{PROG}: internal error: {exc.__class__.__name__}: {exc} (set LIC_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, not a user error: still one line unless debugging
        if os.environ.get("LIC_DEBUG"):
            raise
        print(f"{PROG}: internal error: {exc.__class__.__name__}: {exc} (set LIC_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
