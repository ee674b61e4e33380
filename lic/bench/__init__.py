"""Evaluation suite: classical codecs, RD curves, BD-rate, visual comparisons, HTML report.

Modules, one concept each:

* :mod:`.codecs`  — registry of codecs (Pillow, pillow-heif, pillow-jxl, lic);
* :mod:`.external` — codecs run as programs when on PATH: BPG (bpgenc/bpgdec), VVC (vvenc/vvdec);
* :mod:`.measure` — one measurement: encode, decode, bytes, quality metrics, time, peak memory;
* :mod:`.runner`  — ``lic bench``: every image × codec × setting, resumable CSV + summary JSON;
* :mod:`.results` — reading results and published RD points back as curves;
* :mod:`.bdrate`  — Bjøntegaard delta rate / metric (cubic and PCHIP) and RD-curve AUC;
* :mod:`.rd`      — ``lic rd``: BD-rate table against an anchor, plus RD plots;
* :mod:`.plots`   — matplotlib RD plots (PNG and SVG);
* :mod:`.compare` — ``lic compare``: one image, every codec near a target bpp, full view + crop;
* :mod:`.report`  — ``lic report``: one self-contained HTML page;
* :mod:`.cli`     — ``register(subparsers)`` adding ``bench``, ``rd``, ``compare``, ``report``.

Heavy dependencies (matplotlib, scipy, pillow-heif, …) are imported lazily, inside the
functions that need them, so ``import lic.bench`` stays cheap.
"""
