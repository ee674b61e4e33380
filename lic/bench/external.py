"""Codecs that run as external programs: BPG (bpgenc/bpgdec) and VVC (vvencFFapp/vvdecapp).

They are offered only when their binaries are on PATH; otherwise the registry reports them as
skipped.  Images go through temporary files; the measured bytes are the output bitstream file.

The VVC path was written against vvenc/vvdec's documented command lines but could not be run
where this module was written (no binaries there): treat its first results with care.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .codecs import Codec
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

def _need_binaries(*names: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        absent = [n for n in names if shutil.which(n) is None]
        return f"{' and '.join(absent)} not found on PATH" if absent else None

    return missing


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        tail = p.stdout.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({p.returncode}): {' | '.join(tail)}")


def bpg(name: str, chroma: str) -> Codec:
    from .codecs import Codec, number_setting

    parse = number_setting("qp", 0, 51)

    def encode(img, s):
        with tempfile.TemporaryDirectory() as d:
            img.save(f"{d}/in.png")
            _run(["bpgenc", "-q", str(parse(s)), "-f", chroma, "-o", f"{d}/out.bpg", f"{d}/in.png"])
            return Path(f"{d}/out.bpg").read_bytes()

    def decode(data):
        with tempfile.TemporaryDirectory() as d:
            Path(f"{d}/in.bpg").write_bytes(data)
            _run(["bpgdec", "-o", f"{d}/out.png", f"{d}/in.bpg"])
            with Image.open(f"{d}/out.png") as im:
                return im.convert("RGB")

    return Codec(
        name=name,
        description=f"BPG {chroma} (bpgenc/bpgdec, default encoder)",
        settings=tuple(f"qp{q}" for q in (46, 41, 37, 33, 29, 25)),
        encode=encode,
        decode=decode,
        parse=parse,
        rate_direction=-1,
        missing=_need_binaries("bpgenc", "bpgdec"),
    )


def _rgb_to_yuv420(img: Image.Image) -> tuple[bytes, int, int]:
    """Full-range BT.601 YCbCr (Pillow's JPEG matrix), chroma averaged 2×2; size padded to even."""
    a = np.asarray(img.convert("YCbCr"), dtype=np.float64)
    h, w = a.shape[:2]
    H, W = h + h % 2, w + w % 2
    a = np.pad(a, ((0, H - h), (0, W - w), (0, 0)), mode="edge")
    y = a[..., 0]
    c = a[..., 1:].reshape(H // 2, 2, W // 2, 2, 2).mean(axis=(1, 3))
    planes = [y, c[..., 0], c[..., 1]]
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes), W, H


def _upsample(plane: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear 2× chroma upsampling (centre-aligned, matching the 2×2 averaging above)."""
    return np.asarray(Image.fromarray(plane.astype(np.float32), "F").resize((w, h), Image.BILINEAR), dtype=np.float64)


def _y4m_to_rgb(data: bytes) -> Image.Image:
    """Parse a single-frame 4:2:0 Y4M (8- or 16-bit little endian) back to RGB."""
    header, rest = data.split(b"\n", 1)
    fields = {t[:1]: t[1:] for t in header.split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    cs = fields.get(b"C", b"420").decode()
    deep = any(x in cs for x in ("p10", "p12", "p16"))
    depth = int(cs.split("p")[1]) if deep else 8
    frame = rest.split(b"\n", 1)[1]
    dtype = np.dtype("<u2") if deep else np.uint8
    n_y, n_c = w * h, (w // 2) * (h // 2)
    buf = np.frombuffer(frame, dtype=dtype, count=n_y + 2 * n_c).astype(np.float64) / (2 ** (depth - 8))
    y = buf[:n_y].reshape(h, w)
    cb, cr = (_upsample(buf[n_y + i * n_c : n_y + (i + 1) * n_c].reshape(h // 2, w // 2), w, h) for i in (0, 1))
    ycc = np.clip(np.rint(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)
    return Image.fromarray(ycc, "YCbCr").convert("RGB")


def vtm() -> Codec:
    from .codecs import Codec, number_setting

    parse = number_setting("qp", 0, 63)

    def encode(img, s):
        yuv, W, H = _rgb_to_yuv420(img)
        with tempfile.TemporaryDirectory() as d:
            Path(f"{d}/in.yuv").write_bytes(yuv)
            _run([
                "vvencFFapp", "--InputFile", f"{d}/in.yuv", "--SourceWidth", str(W), "--SourceHeight", str(H),
                "--InputBitDepth", "8", "--InputChromaFormat", "420", "--FrameRate", "1", "--FramesToBeEncoded", "1",
                "--QP", str(parse(s)), "--BitstreamFile", f"{d}/out.266",
            ])
            return Path(f"{d}/out.266").read_bytes()

    def decode(data):
        with tempfile.TemporaryDirectory() as d:
            Path(f"{d}/in.266").write_bytes(data)
            _run(["vvdecapp", "-b", f"{d}/in.266", "-o", f"{d}/out.y4m"])
            return _y4m_to_rgb(Path(f"{d}/out.y4m").read_bytes())

    return Codec(
        name="vtm",
        description="VVC intra 4:2:0 (vvencFFapp/vvdecapp; RGB→full-range BT.601 YCbCr in this module)",
        settings=tuple(f"qp{q}" for q in (47, 42, 37, 32, 27, 22)),
        encode=encode,
        decode=decode,
        parse=parse,
        rate_direction=-1,
        missing=_need_binaries("vvencFFapp", "vvdecapp"),
    )
