#!/usr/bin/env python
"""The seed's triplets for the attention autoencoder: original | ours | HEIC at about our bpp (never fewer bits).

For each image (default kodim04, kodim13, kodim21, kodim24): ours at the quality whose real file
is nearest ``--bpp`` (0.23), then HEIC (pillow-heif, x265 intra) at the smallest file not smaller than
ours (so HEIC never gets fewer bits), drawn by :func:`lic.bench.compare.figure` (full views with the crop outlined,
and the crop enlarged).  One figure per image, plus ``triplets.json`` with every bpp / PSNR /
MS-SSIM.

    python benchmarks/attention_triplets.py --weights runs/att/model.safetensors [--out results/attention_triplets]
           [--kodak ../shared/data/kodak] [--images kodim04 kodim13 kodim21 kodim24] [--bpp 0.23]

The figures show Kodak pixels, and nothing from ``../shared/data`` is committed: they go to the ignored
``results/`` (an output under docs/ is refused); ``triplets.json`` holds only the numbers and may be
copied to docs/.

``--photos`` takes scikit-image's bundled photos instead of Kodak (astronaut, coffee, chelsea, rocket;
public-domain / CC0 pictures that ship with an installed package), whose figures may be committed:

    python benchmarks/attention_triplets.py --weights lic/weights/attention-hyperprior.safetensors \
           --photos astronaut coffee chelsea rocket --out docs/attention/photos
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import codec, metrics, zoo  # noqa: E402
from lic.bench import codecs as registry  # noqa: E402
from lic.bench.compare import closest, default_crop, figure  # noqa: E402
from lic.bench.measure import load_rgb  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
IMAGES = ("kodim04", "kodim13", "kodim21", "kodim24")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def skimage_photo(name: str):
    """One of scikit-image's bundled colour photos as an 8-bit RGB image."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(np.ascontiguousarray(getattr(data, name)()[..., :3]), "RGB")


def model_codec(model) -> registry.Codec:
    """A benchmark codec for a loaded model object (one setting per quality)."""
    parse = registry.number_setting("q", 1, max(model.qualities))
    return registry.Codec(
        name=getattr(model, "lic_name", model.name), description="lic model", settings=tuple(f"q{q}" for q in model.qualities),
        encode=lambda img, s: codec.encode(img, model=model, quality=parse(s)).data,
        decode=lambda data: codec.decode(data, model=model).convert("RGB"),
        parse=parse, parallel_safe=False, rate_direction=0)


def save_png(fig, path: Path, dpi: int) -> None:
    """The figure as an opaque, optimised PNG (smaller than matplotlib's RGBA file; the same pixels on white)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    buf.seek(0)
    with Image.open(buf) as im:
        im.convert("RGB").save(path, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="weights of a trained attention model")
    ap.add_argument("--out", default=str(ROOT / "results" / "attention_triplets"))
    ap.add_argument("--kodak", default=str(KODAK))
    ap.add_argument("--images", nargs="+", default=list(IMAGES))
    ap.add_argument("--photos", nargs="+", metavar="NAME",
                    help=f"scikit-image's photos instead of Kodak ({', '.join(PHOTOS)}); these figures may go to docs/")
    ap.add_argument("--bpp", type=float, default=0.23, help="target rate for ours (default %(default)s)")
    ap.add_argument("--dpi", type=int, default=100, help="figure resolution (default %(default)s)")
    ap.add_argument("--heic", default="heic", help="classical codec to compare with (default %(default)s)")
    args = ap.parse_args()
    unknown = [n for n in args.photos or () if n not in PHOTOS]
    if unknown:
        ap.error(f"--photos takes {', '.join(PHOTOS)}, not {', '.join(unknown)}")
    model = zoo.load_weights(args.weights)
    out = Path(args.out).resolve()
    docs = (ROOT / "docs").resolve()
    if not args.photos and (out == docs or docs in out.parents):
        print(f"attention_triplets: {out} is under docs/: the figures hold Kodak pixels, which are never committed "
              f"(write them under results/ or /tmp)", file=sys.stderr)
        return 2
    classical, skipped = registry.resolve([args.heic])
    if not classical:
        print(f"attention_triplets: {'; '.join(skipped)}", file=sys.stderr)
        return 2
    if args.photos:
        sources = [(f"{n}.png", lambda n=n: skimage_photo(n)) for n in args.photos]
    else:
        kodak = Path(args.kodak)
        paths = [kodak / (n if n.endswith(".png") else f"{n}.png") for n in args.images]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"attention_triplets: skipped, images not found: {', '.join(missing)}")
            return 0
        sources = [(p.name, lambda p=p: load_rgb(p)) for p in paths]
    out.mkdir(parents=True, exist_ok=True)
    ours_codec = model_codec(model)
    records = []
    for name, opener in sources:
        img = opener()
        ours = closest(ours_codec, img, args.bpp)
        other = closest(classical[0], img, ours.bpp, at_least=True)  # never fewer bits than ours
        ref = np.asarray(img)
        rec = {"image": name, "target_bpp": args.bpp}
        for key, p in (("ours", ours), ("classical", other)):
            rec[key] = {"codec": p.codec, "setting": p.setting, "bpp": p.bpp, "psnr": p.psnr,
                        "ms_ssim": metrics.ms_ssim(ref, np.asarray(p.image))}
        fig_path = out / name
        fig = figure(img, [ours, other], default_crop(img), round(ours.bpp, 3),
                     f"{name}: original | {ours.codec} | {other.codec}")
        save_png(fig, fig_path, args.dpi)
        rec["figure"] = fig_path.name
        records.append(rec)
        print(f"{name}: {ours.codec} {ours.setting} {ours.bpp:.3f} bpp {ours.psnr:.2f} dB | "
              f"{other.codec} {other.setting} {other.bpp:.3f} bpp {other.psnr:.2f} dB -> {fig_path}")
    (out / "triplets.json").write_text(json.dumps({"weights": str(args.weights),
                                                   "digest": zoo.model_digest(model).hex(),
                                                   "command": "python benchmarks/attention_triplets.py "
                                                              + " ".join(sys.argv[1:]),
                                                   "triplets": records}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
