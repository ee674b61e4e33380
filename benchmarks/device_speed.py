"""Encode / decode seconds of lic models on one device (a GPU when there is one), on real images.

The CPU timings live in ``kodak_rd.py``, ``recurrent_kodak.py`` and ``scalable_kodak.py``; this script is
the one to run on a lent GPU, where ``../shared`` is not: point ``--mosaic`` at the training pack a round
carries (``tools/gpu_round.sh`` with ``SPEED=1`` does), or ``--kodak`` at a folder of PNGs, or leave both out to
time a 768×512 image made from scikit-image's astronaut.

Each model runs its own ``compress`` / ``decompress`` (the whole codec: transforms, coding tables, the
constriction coder on the CPU), after one untimed warm-up; the median of ``--repeat`` runs is kept, with
CUDA synchronised around each.  It also records whether the decoded image equals the encoder's own
reconstruction on that device (``decode_equals_encoder``), and how the device's decode compares with the
CPU's decode of the same file (``max_diff_vs_cpu``, in 8-bit levels; 0 when identical): the latents are
the same on every device (integer coding on the CPU), the float synthesis may round differently.

    python benchmarks/device_speed.py --device cuda --kodak .data/kodak --out results/device_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lic import zoo  # noqa: E402
from lic.entropy import binary  # noqa: E402
from lic.imageio import to_tensor  # noqa: E402

# model -> qualities timed (iterations / layers for the progressive models)
DEFAULT_RUNS = {
    "bmshj2018-hyperprior": None,  # every quality
    "toderici2017-rnn": [2, 8, 16],
    "su2020-rnn-hyperprior": None,
}


def _mosaic(folder: str) -> list[tuple[str, torch.Tensor]]:
    """A 768×512 photo mosaic of the first six images of ``folder`` (256² centre crops): the GPU machine has
    neither ../shared nor scikit-image, but a round carries its training pack (tools/gpu_pack.py)."""
    from PIL import Image

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:6]
    if len(paths) < 6:
        raise SystemExit(f"device_speed: fewer than six images in {folder}")
    tiles = []
    for p in paths:
        a = np.asarray(Image.open(p).convert("RGB"))
        h, w = a.shape[:2]
        if min(h, w) < 256:
            raise SystemExit(f"device_speed: {p} is smaller than 256x256")
        tiles.append(a[(h - 256) // 2:(h - 256) // 2 + 256, (w - 256) // 2:(w - 256) // 2 + 256])
    rows = [np.concatenate(tiles[i:i + 3], 1) for i in (0, 3)]
    return [("mosaic-768x512", to_tensor(np.ascontiguousarray(np.concatenate(rows, 0))))]


def _images(kodak: str | None, n: int, mosaic: str | None = None) -> list[tuple[str, torch.Tensor]]:
    from PIL import Image

    if mosaic:
        return _mosaic(mosaic)
    if kodak:
        paths = sorted(Path(kodak).glob("*.png"))[:n]
        if not paths:
            raise SystemExit(f"device_speed: no PNG images in {kodak}")
        return [(p.name, to_tensor(np.asarray(Image.open(p).convert("RGB")))) for p in paths]
    from skimage import data

    a = np.asarray(Image.fromarray(data.astronaut()).resize((768, 768), Image.BICUBIC))[128:640]
    return [("astronaut-768x512", to_tensor(a))]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn, dev, repeat: int):
    fn()  # warm-up: kernels chosen, memory allocated
    times, out = [], None
    for _ in range(repeat):
        _sync(dev)
        t = time.perf_counter()
        out = fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="*", default=list(DEFAULT_RUNS), help="model names or weights files")
    ap.add_argument("--kodak", default=None, help="folder of PNGs (default: an image made from astronaut)")
    ap.add_argument("--mosaic", default=None, help="folder of ≥ 256² photos: time a 768×512 mosaic of six of them")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--context", choices=("cpu", "device", "both"), default="both",
                    help="toderici2017-rnn's integer bit context network on the CPU, on the model's GPU "
                         "(lic.entropy.binary.CONTEXT_ON_DEVICE), or both, one row each (default both; CUDA only)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="results/device_speed.json")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    from lic.runtime import keep_freed_memory

    keep_freed_memory()  # as the lic command does (README, "Speed and memory")
    images = _images(args.kodak, args.images, args.mosaic)
    info = {"device": str(dev), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "repeat": args.repeat,
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "cpu": platform.processor() or platform.machine()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, errors = [], []

    def write():  # after every row: a run cut short keeps what it measured
        out.write_text(json.dumps({"info": info, "rows": rows, "errors": errors}, indent=1))

    for name in args.models:
        try:
            path = name if name.endswith(".safetensors") else zoo.shipped()[name]
            model = zoo.load_weights(path, device=str(dev))
            cpu_model = zoo.load_weights(path) if dev.type != "cpu" else model
            qualities = DEFAULT_RUNS.get(model.name) or list(model.qualities)
            for img_name, x in images:
                x = x.to(dev)
                h, w = x.shape[-2:]
                contexts = ["cpu"]
                if hasattr(model, "context") and dev.type == "cuda":
                    contexts = {"cpu": ["cpu"], "device": ["device"], "both": ["cpu", "device"]}[args.context]
                for q, where in [(q, c) for q in qualities for c in contexts]:
                    binary.CONTEXT_ON_DEVICE = where == "device"
                    enc_s, comp = _timed(lambda: model.compress(x, q, reconstruct=True), dev, args.repeat)
                    dec_s, y = _timed(lambda: model.decompress(comp.chunks, h, w, q, comp.params), dev, args.repeat)
                    nbytes = sum(len(c) for c in comp.chunks)
                    ctx_s = None
                    if hasattr(model, "context"):  # the bit context model's share of the decode (entropy decoding)
                        hl, wl = model._latent_size(h, w)
                        ctx_s, _ = _timed(lambda: model.context.decode(comp.chunks, hl, wl), dev, args.repeat)
                    y_cpu = cpu_model.decompress(comp.chunks, h, w, q, comp.params)
                    diff = (y.cpu() * 255).round().sub((y_cpu * 255).round()).abs().max()
                    row = {"model": model.name, "image": img_name, "quality": q, "width": w, "height": h,
                           "bpp": 8 * nbytes / (w * h), "encode_s": enc_s, "decode_s": dec_s,
                           "decode_equals_encoder": bool(torch.equal(y.cpu(), comp.x_hat.cpu())),
                           "max_diff_vs_cpu": int(diff), "context": where, "context_decode_s": ctx_s}
                    rows.append(row)
                    write()
                    print(f"{model.name:24s} {img_name:20s} q{q:<3d} ctx {where:6s} {row['bpp']:.3f} bpp  encode "
                          f"{enc_s * 1e3:8.1f} ms  decode {dec_s * 1e3:8.1f} ms"
                          + (f" (bits {ctx_s * 1e3:.1f} ms)" if ctx_s is not None else "") + "  "
                          f"decode==encoder {row['decode_equals_encoder']}  vs CPU {row['max_diff_vs_cpu']}",
                          flush=True)
        except Exception as e:  # one model failing on a device must not cost the others' numbers
            errors.append({"model": name, "error": f"{type(e).__name__}: {e}"})
            write()
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
    write()
    print(f"wrote {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
