#!/usr/bin/env python
"""Which CPU convolution backend keeps a model's decoded pixels independent of the thread count, and how fast.

``lic.models.base.coding`` runs each model's compress/decompress with the backend the model chose
(``onednn_while_coding``): oneDNN (mkldnn) for the channels-last transform models, PyTorch's native
convolution for the recurrent ones, because on some machines the other backend's fp32 sums change with
the thread count, and so could the decoded pixels by a code value.  This script measures both backends
on one image per model, decoding the same file:

* the decode wall time with the native convolution and with oneDNN, at 1 and at ``--threads`` threads
  (best of ``--repeat``);
* for each backend, how many decoded 8-bit samples differ between the thread counts, and between the
  two backends, at ``--quality``; then at every quality, whether the encoder writes the same file at 1
  and at ``--threads`` threads and how many samples of its decode differ between them.

    python benchmarks/onednn_decode.py [--models attention-hyperprior bmshj2018-hyperprior] [--image PATH]
           [--quality 2] [--threads 2] [--repeat 2] [--out results/onednn_decode.json]

Default image: kodim13 from ``../shared/data/kodak``, or scikit-image's astronaut when Kodak is absent.
The timings are of this machine at the time of the run (other work on it slows them).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import codec, zoo  # noqa: E402
from lic.bench.measure import benchmark_photo, machine, write_json  # noqa: E402
from lic.models import base  # noqa: E402
from lic.runtime import keep_freed_memory  # noqa: E402



@contextlib.contextmanager
def backend(onednn: bool, threads: int):
    """Code with oneDNN on or off (``lic.models.base.ONEDNN_WHILE_CODING``) at ``threads`` threads."""
    torch.set_num_threads(threads)
    base.ONEDNN_WHILE_CODING = onednn
    try:
        yield
    finally:
        base.ONEDNN_WHILE_CODING = None  # back to each model's own choice


def decode_with(data: bytes, model, onednn: bool, threads: int, repeat: int) -> tuple[np.ndarray, float]:
    """Decode ``data``: (pixels, best seconds of ``repeat``)."""
    best = float("inf")
    with backend(onednn, threads):
        for _ in range(repeat):
            t = time.perf_counter()
            img = codec.decode(data, model=model)
            best = min(best, time.perf_counter() - t)
    return np.asarray(img.convert("RGB")), best


def encode_with(img, model, quality: int, onednn: bool, threads: int) -> bytes:
    with backend(onednn, threads):
        return codec.encode(img, model=model, quality=quality).data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["attention-hyperprior", "bmshj2018-hyperprior"])
    ap.add_argument("--image", help="default: kodim13, or scikit-image's astronaut without Kodak")
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "onednn_decode.json"))
    args = ap.parse_args()
    keep_freed_memory()
    img, label = benchmark_photo(args.image)
    result = {"image": label, "size": [img.width, img.height], "quality": args.quality, "cpu": machine(),
              "torch": torch.__version__, "command": "python benchmarks/onednn_decode.py " + " ".join(sys.argv[1:]),
              "models": {}}
    print(f"{label} {img.width}x{img.height}, q{args.quality}, best of {args.repeat}")
    print(f"{'model':24} {'backend':7} {'1 thr s':>8} {f'{args.threads} thr s':>8} {'samples differing 1 vs N':>25}")
    for name in args.models:
        model = zoo.load_model(name)
        torch.set_num_threads(args.threads)
        data = codec.encode(img, model=model, quality=args.quality).data
        rows, pixels = {}, {}
        for backend, onednn in (("native", False), ("onednn", True)):
            p1, t1 = decode_with(data, model, onednn, 1, args.repeat)
            pn, tn = decode_with(data, model, onednn, args.threads, args.repeat)
            pixels[backend] = p1
            rows[backend] = {"seconds_1_thread": t1, f"seconds_{args.threads}_threads": tn,
                             "samples_differing_between_thread_counts": int((p1 != pn).sum())}
            print(f"{name:24} {backend:7} {t1:8.2f} {tn:8.2f} {rows[backend]['samples_differing_between_thread_counts']:25,}")
        rows["samples_differing_native_vs_onednn_1_thread"] = int((pixels["native"] != pixels["onednn"]).sum())
        rows["samples"] = int(pixels["native"].size)
        print(f"{'':24} native vs oneDNN (1 thread): {rows['samples_differing_native_vs_onednn_1_thread']:,} "
              f"of {rows['samples']:,} samples differ")
        per_q = {}  # every quality, once: does the file, and the decoded image, depend on the thread count?
        for q in model.qualities:
            per_q[q] = {}
            for b, o in (("native", False), ("onednn", True)):
                files = [encode_with(img, model, q, o, n) for n in (1, args.threads)]
                images = [decode_with(files[0], model, o, n, 1)[0] for n in (1, args.threads)]
                per_q[q][b] = {"same_file": files[0] == files[1],
                               "samples_differing_in_decode": int((images[0] != images[1]).sum())}
        rows["between_thread_counts_per_quality"] = per_q
        for b in ("native", "onednn"):
            print(f"{'':24} {b}, 1 vs {args.threads} threads, every quality (same file / samples differing in "
                  "decode): " + " ".join(f"q{q}:{'=' if v[b]['same_file'] else 'DIFF'}/{v[b]['samples_differing_in_decode']}"
                                          for q, v in per_q.items()))
        result["models"][name] = rows
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
