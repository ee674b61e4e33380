#!/usr/bin/env python
"""Training-step time of the progressive codec (toderici2017-rnn) at several widths, on this CPU.

    python benchmarks/recurrent_step_time.py [--threads 1] [--out results/recurrent_step_time.json]

One step = forward over 16 iterations + loss + backward + Adam, batch 8 of 64×64 random crops (the CPU rounds'
recipe, docs/training.md); the best of ``--steps`` timed steps after one warm-up step.  Widths are
``encoder/decoder`` lists; the default set is the one docs/training.md ("Wider layers") compares.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.models import build  # noqa: E402

WIDTHS = ["16,32,64,64/64,64,64,32,16", "16,32,96,128/128,128,128,32,16", "24,48,96,96/96,96,96,48,24",
          "16,48,96,96/96,96,96,48,16"]


def step_time(cfg: dict, steps: int, batch: int = 8, crop: int = 64) -> float:
    torch.manual_seed(0)
    m = build(cfg).train()
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    x = torch.rand(batch, 3, crop, crop)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        out = m(x)
        loss = m.training_loss(x, out, m.iterations)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return min(times[1:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", nargs="+", default=WIDTHS, help="ENC/DEC, e.g. 16,32,64,64/64,64,64,32,16")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/recurrent_step_time.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = zoo.load_model("toderici2017-rnn").config()
    rows = []
    for spec in args.widths:
        enc, dec = ([int(v) for v in part.split(",")] for part in spec.split("/"))
        cfg = {**base, "enc_channels": enc, "dec_channels": dec}
        params = sum(p.numel() for p in build(cfg).parameters())
        s = step_time(cfg, args.steps)
        rows.append({"widths": spec, "parameters": params, "seconds_per_step": s})
        print(f"{spec:34s} {params / 1e6:5.2f} M  {s:.3f} s/step", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "batch": 8, "crop": 64, "torch": torch.__version__,
                               "rows": rows}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
