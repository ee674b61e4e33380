#!/usr/bin/env python
"""How close do real photos come to the exact synthesis' clamp?  (lic.layers.exact)

The exact synthesis clamps every activation a convolution reads to a per-layer limit that keeps all its
float64 sums exact.  The clamp is meant as a guard that never acts; this script measures, over every Kodak
image and quality, the largest |activation| / limit any convolution saw (1.0 or more would mean the clamp
changed a value).

    python benchmarks/exact_headroom.py [--models ...] [--kodak DIR] [--threads 2] [--out results/exact_headroom.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["bmshj2018-hyperprior", "attention-hyperprior"])
    ap.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "exact_headroom.json"))
    args = ap.parse_args()
    files = sorted(Path(args.kodak).glob("*.png"))
    if not files:
        print(f"exact_headroom: no Kodak images in {args.kodak} (pass --kodak DIR)", file=sys.stderr)
        return 2

    import torch
    from tqdm import tqdm

    import lic
    from lic import codec
    from lic.imageio import read_image
    from lic.bench.measure import write_json
    from lic.layers import exact

    torch.set_num_threads(args.threads)
    result = {"command": "python benchmarks/exact_headroom.py " + " ".join(sys.argv[1:]), "images": len(files),
              "models": {}}
    own_hook = exact._round_input
    for name in args.models:
        model = lic.load_model(name)
        worst = {"ratio": 0.0}

        def watching(limit: float):  # the exact copy's input hook, reporting |x| / limit first
            hook = own_hook(limit)

            def watch(module, inputs):
                ratio = float(inputs[0].detach().abs().max()) / limit
                if ratio > worst["ratio"]:
                    worst.update(ratio=ratio, layer=type(module).__name__)
                return hook(module, inputs)
            return watch

        exact._round_input = watching
        try:
            for path in tqdm(files, desc=name, unit="image"):
                img = read_image(path)
                for q in model.qualities:
                    codec.decode(codec.encode(img, model=model, quality=q, exact=True).data, model=model)
        finally:
            exact._round_input = own_hook
        result["models"][name] = {"qualities": model.qualities, "largest_input_over_limit": worst["ratio"],
                                  "layer_kind": worst.get("layer")}
        print(f"{name}: largest |activation| / clamp limit over {len(files)} images x {len(model.qualities)} "
              f"qualities: {worst['ratio']:.4f} ({worst.get('layer')})")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
