#!/usr/bin/env python
"""Kodak benchmark of the progressive recurrent codec (Toderici et al. 2017), measured on real files.

For each weights file (a *variant*: cell × reconstruction × ...), each Kodak image and each
iteration k = 1..n (one encode to n; the file for k is the real prefix file, header included):
bpp, RGB PSNR, MS-SSIM, and the bits of iteration k without entropy coding (32 per 16×16
block), as coded (chunk bytes) and ideal under the integer tables.  Encode / decode wall
seconds at 2, 8 and 16 iterations (on the first ``--timing-images`` images), with a check
that every decoded image equals the encoder's reconstruction.  Then the speed of the default
size beside the shipped toderici2017-rnn's widths, twice the default widths and the paper's size (random
weights: speed does not depend on them) on a 768×512 image.

    python benchmarks/recurrent_kodak.py --weights runs/rnn/model.safetensors [more.safetensors ...]
           [--kodak ../shared/data/kodak] [--images 24] [--timing-images 4] [--threads 2] [--exact]
           [--refine N [--slope K] [--lr LR]] [--no-speed]
    python benchmarks/recurrent_kodak.py --speed-only
    python benchmarks/recurrent_kodak.py --merge A/X.json B/X.json --out C     (runs over parts of the images)

``--refine N``: files from the encoder-side search for the bits (``lic compress --refine N``,
:mod:`lic.models.refine_bits`); ``--slope``/``--lr`` override its constants, for tuning it on other photos
than Kodak (``--kodak ../shared/data/train --stride 190 --crop 256``: every 190th training photo, the
centre 256×256).  ``benchmarks/recurrent_bdrate.py`` then compares the result files.

Writes OUT/<variant>.json and OUT/<variant>_per_image.csv, and OUT/speed.json
(default OUT = results/recurrent_kodak).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import codec, metrics, ratecontrol, zoo  # noqa: E402
from lic.bench.measure import machine  # noqa: E402
from lic.data import list_images  # noqa: E402
from lic.imageio import from_tensor, prepare, read_image  # noqa: E402
from lic.models.recurrent import PAPER, RecurrentCodec, macs_per_pixel  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
TIMED = (2, 8, 16)
FIELDS = ["image", "iteration", "bytes", "bpp", "psnr", "ms_ssim", "raw_bits", "coded_bits", "ideal_bits"]


def variant_name(model) -> str:
    c = model.config()
    return (f"{getattr(model, 'lic_name', model.name)}_{c['cell']}_{c['reconstruction']}"
            f"_it{c['iterations']}").replace("/", "-")


def per_iteration(model, img, exact: bool = False, refine: int = 0) -> list[dict]:
    p = prepare(img)
    h, w = p.rgb.shape[:2]
    # one encode to the last iteration; the real prefix files
    comp, files = ratecontrol.prefix_files(p, model, exact=exact, refine=refine)
    rows = []
    for k, data in enumerate(files, 1):
        rgb = from_tensor(comp.extra["x_hats"][k - 1])
        rows.append({"iteration": k, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                     "psnr": metrics.psnr(p.rgb, rgb), "ms_ssim": metrics.ms_ssim(p.rgb, rgb),
                     "raw_bits": comp.extra["iteration_raw_bits"][k - 1],
                     "coded_bits": comp.extra["iteration_bits"][k - 1],
                     "ideal_bits": comp.extra["iteration_table_bits"][k - 1]})
    return rows


def per_iteration_means(rows: list[dict], n: int) -> dict:
    """The mean over the images of every field, per iteration 1..n (the summary's ``iterations``)."""
    out = {}
    for k in range(1, n + 1):
        sel = [r for r in rows if int(r["iteration"]) == k]
        s = {key: float(np.nanmean([float(r[key]) for r in sel])) for key in FIELDS[2:]}
        s["coded_vs_raw"] = s["coded_bits"] / s["raw_bits"]
        out[str(k)] = s
    return out


def merge(paths: list[str], out: Path) -> int:
    """One summary from the result files of runs over parts of the image set (the same weights and options,
    e.g. run side by side on a multi-core machine): their per-image rows pooled, as one run over all gives."""
    summaries = [json.loads(Path(p).read_text()) for p in paths]
    rows = []
    for p in paths:
        with open(Path(p).with_name(Path(p).stem + "_per_image.csv"), newline="") as fh:
            rows += list(csv.DictReader(fh))
    images = sorted({r["image"] for r in rows})
    if len(images) != sum(s["images"] for s in summaries):
        raise SystemExit("merge: the parts share images")
    keep = ("variant", "weights", "config", "refine", "crop", "stride")
    if any({k: s.get(k) for k in keep} != {k: summaries[0].get(k) for k in keep} for s in summaries):
        raise SystemExit("merge: the parts were measured with other weights or options")
    n = len(summaries[0]["iterations"])
    summary = {**{k: summaries[0].get(k) for k in keep}, "images": len(images), "merged_from": paths,
               "env": summaries[0]["env"], "iterations": per_iteration_means(rows, n), "timing": {}}
    out.mkdir(parents=True, exist_ok=True)
    name = summaries[0]["variant"]
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    with open(out / f"{name}_per_image.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=FIELDS)
        wr.writeheader()
        wr.writerows(sorted(rows, key=lambda r: (r["image"], int(r["iteration"]))))
    print(f"written: {out / name}.json ({len(images)} images)")
    return 0


def timings(model, img, exact: bool = False, refine: int = 0) -> dict:
    out = {}
    for k in TIMED:
        if k > model.qualities[-1]:
            continue
        enc, dec, enc_s, dec_s = codec.timed_round_trip(img, model, k, reconstruct=True, exact=exact, refine=refine)
        if not np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction)):
            raise SystemExit(f"decoded image differs from the encoder's reconstruction ({k} iterations)")
        out[k] = {"encode_s": enc_s, "decode_s": dec_s}
    return out


def speed(iterations: int = 8, paper_iterations: int = 2) -> dict:
    """Default size beside the shipped model's widths, twice the default widths and the paper's size, random
    weights, one 768×512 image."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 512, 768)
    base = RecurrentCodec().cfg
    double = {k: [2 * c for c in base[k]] for k in ("enc_channels", "dec_channels")}
    shipped = {k: v for k, v in zoo.load_model("toderici2017-rnn").config().items() if k != "arch"}
    res = {}
    for label, cfg, iterations in (("default", {}, iterations), ("shipped", shipped, iterations),
                                   ("2x-width", double, iterations), ("paper", dict(PAPER), paper_iterations)):
        m = RecurrentCodec(**cfg).eval()
        m.update()
        macs = macs_per_pixel(m)
        c0, t0 = time.process_time(), time.perf_counter()
        comp = m.compress(x, iterations)
        c1, t1 = time.process_time(), time.perf_counter()
        m.decompress(comp.chunks, 512, 768, iterations)
        c2, t2 = time.process_time(), time.perf_counter()
        res[label] = {"config": m.config(), "parameters": sum(p.numel() for p in m.parameters()),
                      "mac_per_pixel_encoder": macs["enc"], "mac_per_pixel_decoder": macs["dec"],
                      "gmac_per_iteration_768x512_encode": (macs["enc"] + macs["dec"]) * 768 * 512 / 1e9,
                      "iterations": iterations, "encode_s": t1 - t0, "decode_s": t2 - t1,
                      "encode_cpu_s": c1 - c0, "decode_cpu_s": c2 - c1,
                      "encode_s_per_iteration": (t1 - t0) / iterations, "decode_s_per_iteration": (t2 - t1) / iterations}
        print(f"{label:8s} {iterations:2d} it  {macs['enc'] / 1e3:7.1f}k + {macs['dec'] / 1e3:7.1f}k MAC/px/iteration  "
              f"encode {(t1 - t0) / iterations:6.2f} s/it  decode {(t2 - t1) / iterations:6.2f} s/it  "
              f"(768x512; CPU time {(c1 - c0) / iterations:.2f} / {(c2 - c1) / iterations:.2f} s/it)")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="*", default=[], help="weights files of trained recurrent models")
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", type=int, help="at most this many Kodak images")
    ap.add_argument("--timing-images", type=int, default=4, help="time encode/decode on this many images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exact", action="store_true", help="files with the exact synthesis (lic compress --exact)")
    ap.add_argument("--out", default=str(ROOT / "results" / "recurrent_kodak"))
    ap.add_argument("--speed-only", action="store_true", help="only the default vs paper-size speed")
    ap.add_argument("--speed-iterations", type=int, default=8, help="iterations timed for the default size")
    ap.add_argument("--no-speed", action="store_true", help="leave out the default vs paper-size speed")
    ap.add_argument("--refine", type=int, default=0, metavar="N", help="encoder-side search for the bits, N steps")
    ap.add_argument("--slope", type=float, help="the search's dB per bpp (lic.models.refine_bits.SLOPE)")
    ap.add_argument("--lr", type=float, help="the search's step size (lic.models.refine_bits.LR)")
    ap.add_argument("--crop", type=int, help="code the centre CROP x CROP of each image (tuning on other photos)")
    ap.add_argument("--stride", type=int, default=1, help="every STRIDE-th image of the folder")
    ap.add_argument("--paper-iterations", type=int, default=2, help="iterations timed for the paper's size")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="pool the result files of runs over parts of "
                    "the images into one (written to --out), and do nothing else")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, Path(args.out))
    torch.set_num_threads(args.threads)
    import lic.models.refine_bits as refine_bits

    tuned = ""
    for key, value in (("SLOPE", args.slope), ("LR", args.lr)):
        if value is not None:
            setattr(refine_bits, key, value)
            tuned += f"_{key.lower()}{value:g}"
    out = Path(args.out)
    env = {"torch": torch.__version__, "threads": args.threads, "cpu": machine(),
           "python": platform.python_version()}
    if not args.speed_only:
        if not args.weights:
            ap.error("give --weights FILE [FILE ...] (trained recurrent models), or --speed-only")
        kodak = Path(args.kodak)
        files = list_images(kodak) if kodak.is_dir() else []
        if not files:
            print(f"Kodak images not found in {kodak}: put kodim01..24.png there or pass --kodak DIR", file=sys.stderr)
            return 2
        files = files[::args.stride]
        files = files[:args.images] if args.images else files
        out.mkdir(parents=True, exist_ok=True)
        for wpath in args.weights:
            model = zoo.load_weights(wpath)
            if not isinstance(model, RecurrentCodec):
                print(f"{wpath}: not a recurrent codec", file=sys.stderr)
                return 2
            name = (variant_name(model) + ("_exact" if args.exact else "")
                    + (f"_refine{args.refine}{tuned}" if args.refine else "") + (f"_crop{args.crop}" if args.crop else ""))
            rows, times = [], []
            for i, f in enumerate(files):
                img = read_image(f)
                if args.crop:
                    w, h = img.size
                    img = img.crop(((w - args.crop) // 2, (h - args.crop) // 2, (w + args.crop) // 2, (h + args.crop) // 2))
                for r in per_iteration(model, img, args.exact, args.refine):
                    rows.append({"image": f.name, **r})
                if i < args.timing_images:
                    times.append(timings(model, img, args.exact, args.refine))
                print(f"{name}: {f.name} done", file=sys.stderr)
            n = model.qualities[-1]
            summary = {"variant": name, "weights": str(wpath), "config": model.config(), "images": len(files),
                       "env": env, "refine": {"steps": args.refine, "slope": refine_bits.SLOPE, "lr": refine_bits.LR},
                       "crop": args.crop, "stride": args.stride, "iterations": {}}
            summary["iterations"] = per_iteration_means(rows, n)
            summary["timing"] = {str(k): {key: float(np.mean([t[k][key] for t in times]))
                                          for key in ("encode_s", "decode_s")}
                                 for k in TIMED if times and k in times[0]}
            (out / f"{name}.json").write_text(json.dumps(summary, indent=1))
            with open(out / f"{name}_per_image.csv", "w", newline="") as fh:
                wr = csv.DictWriter(fh, fieldnames=FIELDS)
                wr.writeheader()
                wr.writerows(rows)
            print(f"\n{name}  ({len(files)} images)")
            print(f"{'it':>3} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>8} {'raw b':>8} {'coded b':>8} {'ratio':>6}")
            for k, s in summary["iterations"].items():
                print(f"{k:>3} {s['bpp']:7.4f} {s['psnr']:6.2f} {s['ms_ssim']:8.4f} {s['raw_bits']:8.0f} "
                      f"{s['coded_bits']:8.0f} {s['coded_vs_raw']:6.3f}")
            for k, t in summary["timing"].items():
                print(f"{k:>3} iterations: encode {t['encode_s']:.2f} s, decode {t['decode_s']:.2f} s")
    out.mkdir(parents=True, exist_ok=True)
    if args.no_speed:
        print(f"written: {out}")
        return 0
    sp = speed(args.speed_iterations, args.paper_iterations)
    (out / "speed.json").write_text(json.dumps({"env": env, "image": "768x512", **sp}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
