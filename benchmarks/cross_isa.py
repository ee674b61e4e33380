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
difference.  A cap the machine lacks anyway changes nothing; a capped run is not a real older CPU (thread
blocking and cache sizes stay this machine's), so this bounds the effect, it does not certify another host.

    python benchmarks/cross_isa.py [--models ...] [--image PATH] [--quality 2] [--threads 2]
           [--out results/cross_isa.json]

Default image: kodim13 from ``../shared/data/kodak``, or scikit-image's astronaut when Kodak is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KODIM13 = ROOT.parent / "shared" / "data" / "kodak" / "kodim13.png"
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
d = np.asarray(lic.decompress(open(sys.argv[2], "rb").read(), model=sys.argv[1]))
np.save(sys.argv[3], d)
print(torch.backends.cpu.get_cpu_capability())
"""


def decode(name: str, lic_file: Path, out: Path, threads: int, caps: dict) -> tuple[np.ndarray, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(caps)
    run = subprocess.run([sys.executable, "-c", DECODE, name, str(lic_file), str(out), str(threads)], env=env,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"decode of {name} under {caps} failed: {run.stderr.strip().splitlines()[-1]}")
    return np.load(out), run.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--image", help="default: kodim13, or scikit-image's astronaut without Kodak")
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "cross_isa.json"))
    args = ap.parse_args()

    import torch

    import lic
    from lic.bench.measure import machine
    from lic.imageio import read_image

    torch.set_num_threads(args.threads)
    if args.image:
        img, label = read_image(args.image), args.image
    elif KODIM13.is_file():
        img, label = read_image(KODIM13), "kodim13.png"
    else:
        from PIL import Image
        from skimage import data

        img, label = Image.fromarray(data.astronaut()), "skimage astronaut"
    result = {"image": label, "size": [img.width, img.height], "quality": args.quality, "threads": args.threads,
              "cpu": machine(), "torch": torch.__version__,
              "command": "python benchmarks/cross_isa.py " + " ".join(sys.argv[1:]), "caps": CAPS, "models": {}}
    print(f"{label} {img.width}x{img.height}, q{args.quality}, {args.threads} threads; {machine()}")
    print(f"{'model':24} {'cap':20} {'kernels':8} {'samples differing':>18} {'max diff':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models:
            model = lic.load_model(name)
            quality = min(max(args.quality, model.qualities[0]), model.qualities[-1])
            lic_file = tmp / f"{name}.lic"
            lic_file.write_bytes(lic.compress(img, model=model, quality=quality))
            ref, kernels = decode(name, lic_file, tmp / "ref.npy", args.threads, {})
            rows = {"quality": quality, "samples": int(ref.size), "uncapped kernels": kernels}
            print(f"{name:24} {'none':20} {kernels:8} {0:18,} {0:8}")
            for cap, env in CAPS.items():
                pixels, kernels = decode(name, lic_file, tmp / "cap.npy", args.threads, env)
                diff = np.abs(pixels.astype(np.int16) - ref.astype(np.int16))
                rows[cap] = {"kernels": kernels, "samples_differing": int((diff > 0).sum()),
                             "max_difference": int(diff.max())}
                print(f"{'':24} {cap:20} {kernels:8} {rows[cap]['samples_differing']:18,} {rows[cap]['max_difference']:8}")
            result["models"][name] = rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
