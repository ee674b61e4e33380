#!/usr/bin/env python
"""Kodak RD, speed and memory of a lic model, measured on real files.

For each Kodak image and quality: the real .lic size (bpp), RGB PSNR, MS-SSIM,
the model's own estimate of the payload (−Σ log2 p, eval mode) and the ideal
size under the integer tables, encode and decode wall seconds and peak memory
(RSS high-water mark, see lic.bench.measure).  Timing is of one call in a process that has
coded before (as when coding a folder), with freed memory kept for reuse as the ``lic`` command
does (lic.runtime); peak memory comes from separate calls.  Also checks that every decoded
image equals the encoder's reconstruction.  Then BD-rate against published
curves (../shared/anchors/kodak_rd.csv).

    python benchmarks/kodak_rd.py [--model NAME|WEIGHTS] [--kodak DIR] [--threads 2] [--out DIR]
                                  [--limit N] [--allocator keep|default] [--exact]

``--exact``: files written with ``lic compress --exact`` (the exact synthesis, lic.layers.exact).

Writes OUT/per_image.csv and OUT/summary.json (default results/kodak_rd/MODEL).
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

import lic  # noqa: E402
from lic import codec, metrics  # noqa: E402
from lic.bench.bdrate import bd_rate  # noqa: E402
from lic.bench.measure import MEMORY_METHOD, PeakMemory, machine  # noqa: E402
from lic.imageio import read_image, to_tensor  # noqa: E402
from lic.runtime import keep_freed_memory  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors" / "kodak_rd.csv"
PUBLISHED = {  # published curve name in the anchors file -> label
    "bmshj2018-hyperprior_mse_cpu": "bmshj2018-hyperprior (CompressAI)",
    "jpeg": "JPEG 4:2:0 (published)",
    "bpg_444_x265_ycbcr": "BPG 4:4:4",
    "webp": "WebP (published)",
}


def published(csv_path: Path) -> dict:
    curves = {}
    if not csv_path.exists():
        return curves
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            if r["codec"] in PUBLISHED:
                curves.setdefault(r["codec"], []).append((float(r["bpp"]), float(r["psnr"])))
    return {k: sorted(v) for k, v in curves.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=lic.DEFAULT_MODEL)
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--allocator", choices=("keep", "default"), default="keep",
                    help="keep freed memory for reuse as the lic command does (default), or leave glibc's default")
    ap.add_argument("--exact", action="store_true", help="files with the exact synthesis (lic compress --exact)")
    ap.add_argument("--out")
    args = ap.parse_args()
    kodak = Path(args.kodak)
    files = sorted(kodak.glob("*.png"))[: args.limit]
    if not files:
        print(f"kodak_rd: no Kodak images in {kodak} (pass --kodak DIR)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    keep = args.allocator == "keep" and keep_freed_memory()  # as the lic command does
    allocator = "glibc, freed memory kept (lic.runtime)" if keep else "default"
    model = lic.load_model(args.model)
    name = getattr(model, "lic_name", model.name)
    out = Path(args.out or ROOT / "results" / "kodak_rd" / (name + ("-exact" if args.exact else "")))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    from tqdm import tqdm

    # warm-up (first-call initialisation is not what a user waits for on every image)
    warm = read_image(files[0])
    codec.decode(codec.encode(warm, model=model, quality=model.qualities[0], exact=args.exact).data, model=model)
    for path in tqdm(files, desc="kodak", unit="image"):
        img = read_image(path)
        ref = np.asarray(img.convert("RGB"))
        h, w = ref.shape[:2]
        for q in model.qualities:
            enc, dec, enc_s, dec_s = codec.timed_round_trip(img, model, q, exact=args.exact)
            # memory in separate calls: PeakMemory first hands freed memory back to the OS
            with PeakMemory() as em:
                codec.encode(img, model=model, quality=q, exact=args.exact)
            with PeakMemory() as dm:
                codec.decode(enc.data, model=model)
            recon = codec.encode(img, model=model, quality=q, reconstruct=True, exact=args.exact)
            assert recon.data == enc.data, "encoding is not deterministic"
            exact = bool(np.array_equal(np.asarray(dec), np.asarray(recon.reconstruction)))
            with torch.no_grad():
                lik = model(to_tensor(ref), q)["likelihoods"]
            est = sum((-torch.log2(l)).sum().item() for l in lik.values()) / 8
            payload = sum(len(c) for c in codec.read_header(enc.data).model_chunks())
            rgb = np.asarray(dec)
            ms = metrics.ms_ssim(ref, rgb)
            rows.append({"image": path.name, "quality": q, "bytes": len(enc.data), "bpp": 8 * len(enc.data) / (w * h),
                         "psnr": metrics.psnr(ref, rgb), "ms_ssim": ms, "ms_ssim_db": metrics.ms_ssim_db(ms),
                         "payload_bytes": payload, "estimate_bytes": est, "table_bytes": enc.table_bits / 8,
                         "decoded_equals_encoder": exact, "encode_s": enc_s, "decode_s": dec_s,
                         "encode_peak_mib": em.mib, "decode_peak_mib": dm.mib})
    with open(out / "per_image.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    per_q = {}
    for q in model.qualities:
        sel = [r for r in rows if r["quality"] == q]
        mean = {k: float(np.mean([r[k] for r in sel])) for k in ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s",
                                                                  "decode_s", "encode_peak_mib", "decode_peak_mib")}
        pay, est = sum(r["payload_bytes"] for r in sel), sum(r["estimate_bytes"] for r in sel)
        mean["payload_vs_estimate_pct"] = 100 * (pay / est - 1)
        mean["payload_vs_tables_pct"] = 100 * (pay / sum(r["table_bytes"] for r in sel) - 1)
        mean["header_bytes"] = float(np.mean([r["bytes"] - r["payload_bytes"] for r in sel]))
        mean["all_decoded_equal_encoder"] = all(r["decoded_equals_encoder"] for r in sel)
        per_q[str(q)] = mean
    ours = sorted((v["bpp"], v["psnr"]) for v in per_q.values())
    bd = {}
    for key, curve in published(ANCHORS).items():
        try:
            res = bd_rate([c[0] for c in curve], [c[1] for c in curve], [o[0] for o in ours], [o[1] for o in ours])
            bd[PUBLISHED[key]] = {"bd_rate_pct": res.value, "psnr_range": [res.lo, res.hi]}
        except Exception as exc:  # no overlap, too few points
            bd[PUBLISHED[key]] = {"bd_rate_pct": None, "why": str(exc)}
    summary = {"model": name, "digest": model._lic_digest.hex() if hasattr(model, "_lic_digest") else None,
               "images": len(files), "threads": args.threads, "synthesis": "exact" if args.exact else "float32", "torch": torch.__version__,
               "cpu": machine(), "memory_method": MEMORY_METHOD,
               "allocator": allocator, "timing": "wall seconds of one call per image and quality, in one process "
               "after a warm-up call, as when coding a folder; peak memory from separate calls",
               "command": "python benchmarks/kodak_rd.py " + " ".join(sys.argv[1:]),
               "qualities": per_q, "bd_rate_psnr_vs_published": bd}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"{'q':>2} {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>8} {'file/est':>9} {'enc s':>6} {'dec s':>6} {'enc MiB':>8} {'dec MiB':>8}")
    for q, v in per_q.items():
        print(f"{q:>2} {v['bpp']:7.4f} {v['psnr']:6.2f} {v['ms_ssim']:8.4f} {v['payload_vs_estimate_pct']:+8.2f}% "
              f"{v['encode_s']:6.3f} {v['decode_s']:6.3f} {v['encode_peak_mib']:8.1f} {v['decode_peak_mib']:8.1f}")
    for k, v in bd.items():
        print(f"BD-rate (PSNR) vs {k}: " + (f"{v['bd_rate_pct']:+.1f}% over {v['psnr_range'][0]:.1f}-{v['psnr_range'][1]:.1f} dB"
                                              if v.get("bd_rate_pct") is not None else f"n/a ({v.get('why')})"))
    print(f"written: {out / 'per_image.csv'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
