#!/usr/bin/env python
"""Would another x86 machine decode a .lic file to the same pixels?  This one, pretending to be older CPUs.

A file's latents decode identically everywhere (integer tables, integer hyperpriors); the synthesis that
turns them into pixels runs in float, and CPU kernels choose their code path by the instruction set
they find.  This script writes one file per model on this machine, then decodes it in fresh processes
that cap the instruction set the libraries may use, as a CPU without AVX-512 or without AVX would:

* ``ATEN_CPU_CAPABILITY`` — PyTorch's own vectorized kernels (GDN, activations, the native convolution's
  helpers): ``avx2`` or ``default`` (no AVX);
* ``ONEDNN_MAX_CPU_ISA`` — oneDNN's convolutions (the transform models): ``AVX2`` or ``SSE41``;
* ``MKL_ENABLE_INSTRUCTIONS`` — MKL's matrix products (PyTorch's native convolution): ``AVX2`` or ``SSE4_2``.

For each cap it counts the decoded 8-bit samples that differ from the uncapped decode, and the largest
difference.  ``--exact`` does it for files written with ``lic compress --exact`` (the exact synthesis,
:mod:`lic.layers.exact`) and sets their decode time beside that of float32 files.  Decode
seconds: the second of two decodes in one process.  A cap the machine lacks anyway changes nothing; a capped
run is not a real older CPU (thread blocking and cache sizes stay this machine's), so this bounds the
effect, it does not certify another host.

    python benchmarks/cross_isa.py [--models ...] [--image PATH] [--quality 2] [--threads 2]
           [--exact] [--out results/cross_isa.json]

Default image: kodim13 from ``../shared/data/kodak``, or scikit-image's astronaut when Kodak is absent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ["bmshj2018-hyperprior", "attention-hyperprior", "su2020-rnn-hyperprior", "toderici2017-rnn"]
CAPS = {
    "torch kernels AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "oneDNN AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "all AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "all SSE4 (no AVX)": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                          "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
ENV_NAMES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")

DECODE = r"""
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
import lic
model = lic.load_model(sys.argv[1])
import time
data = open(sys.argv[2], "rb").read()
lic.decompress(data, model=model)  # warm-up; the second decode is timed
t = time.perf_counter()
d = np.asarray(lic.decompress(data, model=model))
seconds = time.perf_counter() - t
np.save(sys.argv[3], d)
print(torch.backends.cpu.get_cpu_capability(), seconds)
"""


def decode(name: str, lic_file: Path, out: Path, threads: int, caps: dict) -> tuple[np.ndarray, str, float]:
    """The decoded pixels, the kernels PyTorch used, the decode's seconds (the second of two in one process)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(caps)
    run = subprocess.run([sys.executable, "-c", DECODE, name, str(lic_file), str(out), str(threads)],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"decode of {name} under {caps} failed: {run.stderr.strip().splitlines()[-1]}")
    kernels, seconds = run.stdout.split()
    return np.load(out), kernels, float(seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--image", help="default: kodim13, or scikit-image's astronaut without Kodak")
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exact", action="store_true",
                    help="files written with --exact (the exact synthesis), decoded by lic as it is")
    ap.add_argument("--out", default=str(ROOT / "results" / "cross_isa.json"))
    args = ap.parse_args()
    synthesis = "exact" if args.exact else "float32"

    import torch

    import lic
    from lic.bench.measure import benchmark_photo, machine, write_json

    torch.set_num_threads(args.threads)
    img, label = benchmark_photo(args.image)
    result = {"image": label, "size": [img.width, img.height], "quality": args.quality, "threads": args.threads,
              "cpu": machine(), "torch": torch.__version__, "synthesis": synthesis,
              "command": "python benchmarks/cross_isa.py " + " ".join(sys.argv[1:]), "caps": CAPS, "models": {}}
    if args.exact:
        args.models = [n for n in args.models if lic.load_model(n).exact_synthesis]
    print(f"{label} {img.width}x{img.height}, q{args.quality}, {args.threads} threads, {synthesis} synthesis; "
          f"{machine()}")
    print(f"{'model':24} {'cap':20} {'kernels':8} {'samples differing':>18} {'max diff':>8} {'decode s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models:
            model = lic.load_model(name)
            quality = min(max(args.quality, model.qualities[0]), model.qualities[-1])
            lic_file = tmp / f"{name}.lic"
            lic_file.write_bytes(lic.compress(img, model=model, quality=quality, exact=args.exact))
            ref, kernels, seconds = decode(name, lic_file, tmp / "ref.npy", args.threads, {})
            rows = {"quality": quality, "samples": int(ref.size), "uncapped kernels": kernels, "decode_s": seconds}
            if args.exact:  # and how far from lic's float32 decode (of a plain file)
                plain = tmp / f"{name}-plain.lic"
                plain.write_bytes(lic.compress(img, model=model, quality=quality))
                own, _, own_seconds = decode(name, plain, tmp / "own.npy", args.threads, {})
                rows["samples_differing_from_float32_decode"] = int((own != ref).sum())
                rows["float32_decode_s"] = own_seconds
                print(f"{name:24} {synthesis} vs the float32 decode: {rows['samples_differing_from_float32_decode']:,} "
                      f"samples differ; decode {seconds:.2f} s against {own_seconds:.2f} s")
            print(f"{name:24} {'none':20} {kernels:8} {0:18,} {0:8} {seconds:8.2f}")
            for cap, env in CAPS.items():
                pixels, kernels, secs = decode(name, lic_file, tmp / "cap.npy", args.threads, env)
                diff = np.abs(pixels.astype(np.int16) - ref.astype(np.int16))
                rows[cap] = {"kernels": kernels, "samples_differing": int((diff > 0).sum()),
                             "max_difference": int(diff.max()), "decode_s": secs}
                print(f"{'':24} {cap:20} {kernels:8} {rows[cap]['samples_differing']:18,} {rows[cap]['max_difference']:8} "
                      f"{secs:8.2f}")
            result["models"][name] = rows
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
