#!/usr/bin/env python
"""Kodak benchmark of the progressive recurrent codec (Toderici et al. 2017), measured on real files.

For each weights file (a *variant*: cell × reconstruction × ...), each Kodak image and each
iteration k = 1..n (one encode to n; the file for k is the real prefix file, header included):
bpp, RGB PSNR, MS-SSIM, and the bits of iteration k without entropy coding (32 per 16×16
block), as coded (chunk bytes) and ideal under the integer tables.  Encode / decode wall
seconds at 2, 8 and 16 iterations (on the first ``--timing-images`` images), with a check
that every decoded image equals the encoder's reconstruction.  Then the speed of the default
size beside twice its widths and the paper's size (random weights: speed does not depend on them) on a
768×512 image.

    python benchmarks/recurrent_kodak.py --weights runs/rnn/model.safetensors [more.safetensors ...]
           [--kodak ../shared/data/kodak] [--images 24] [--timing-images 4] [--threads 2] [--exact]
    python benchmarks/recurrent_kodak.py --speed-only

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


def per_iteration(model, img, exact: bool = False) -> list[dict]:
    p = prepare(img)
    h, w = p.rgb.shape[:2]
    comp, files = ratecontrol.prefix_files(p, model, exact=exact)  # one encode to the last iteration; the real prefix files
    rows = []
    for k, data in enumerate(files, 1):
        rgb = from_tensor(comp.extra["x_hats"][k - 1])
        rows.append({"iteration": k, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                     "psnr": metrics.psnr(p.rgb, rgb), "ms_ssim": metrics.ms_ssim(p.rgb, rgb),
                     "raw_bits": comp.extra["iteration_raw_bits"][k - 1],
                     "coded_bits": comp.extra["iteration_bits"][k - 1],
                     "ideal_bits": comp.extra["iteration_table_bits"][k - 1]})
    return rows


def timings(model, img, exact: bool = False) -> dict:
    out = {}
    for k in TIMED:
        if k > model.qualities[-1]:
            continue
        t0 = time.perf_counter()
        enc = codec.encode(img, model=model, quality=k, reconstruct=True, exact=exact)
        t1 = time.perf_counter()
        dec = codec.decode(enc.data, model=model)
        t2 = time.perf_counter()
        if not np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction)):
            raise SystemExit(f"decoded image differs from the encoder's reconstruction ({k} iterations)")
        out[k] = {"encode_s": t1 - t0, "decode_s": t2 - t1}
    return out


def speed(iterations: int = 8, paper_iterations: int = 2) -> dict:
    """Default size beside twice its widths and the paper's size, random weights, one 768×512 image."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 512, 768)
    base = RecurrentCodec().cfg
    double = {k: [2 * c for c in base[k]] for k in ("enc_channels", "dec_channels")}
    res = {}
    for label, cfg, iterations in (("default", {}, iterations), ("2x-width", double, iterations),
                                   ("paper", dict(PAPER), paper_iterations)):
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
    ap.add_argument("--paper-iterations", type=int, default=2, help="iterations timed for the paper's size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
        files = files[:args.images] if args.images else files
        out.mkdir(parents=True, exist_ok=True)
        for wpath in args.weights:
            model = zoo.load_weights(wpath)
            if not isinstance(model, RecurrentCodec):
                print(f"{wpath}: not a recurrent codec", file=sys.stderr)
                return 2
            name = variant_name(model) + ("_exact" if args.exact else "")
            rows, times = [], []
            for i, f in enumerate(files):
                img = read_image(f)
                for r in per_iteration(model, img, args.exact):
                    rows.append({"image": f.name, **r})
                if i < args.timing_images:
                    times.append(timings(model, img, args.exact))
                print(f"{name}: {f.name} done", file=sys.stderr)
            n = model.qualities[-1]
            summary = {"variant": name, "weights": str(wpath), "config": model.config(), "images": len(files),
                       "env": env, "iterations": {}}
            for k in range(1, n + 1):
                sel = [r for r in rows if r["iteration"] == k]
                s = {key: float(np.nanmean([r[key] for r in sel])) for key in FIELDS[2:]}
                s["coded_vs_raw"] = s["coded_bits"] / s["raw_bits"]
                summary["iterations"][str(k)] = s
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
    sp = speed(args.speed_iterations, args.paper_iterations)
    (out / "speed.json").write_text(json.dumps({"env": env, "image": "768x512", **sp}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
