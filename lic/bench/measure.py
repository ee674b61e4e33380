"""One benchmark measurement: encode, decode, count bytes, compute quality, time, peak memory.

Metrics (all on 8-bit RGB; see :mod:`lic.metrics`):

* ``psnr`` — over all RGB samples together (CompressAI / tensorflow-compression convention);
* ``ms_ssim`` — RGB, pytorch-msssim, 5 scales; NaN for images with a side below 161 px;
  ``ms_ssim_db`` = −10·log10(1 − MS-SSIM);
* ``psnr_hvs`` / ``psnr_hvsm`` — PSNR-HVS and PSNR-HVS-M (Ponomarenko et al.) on the luma of
  BT.601 YCbCr rounded to 8-bit codes (the ``psnr_hvsm`` package, as in its TID2013 reference);
  computed on the top-left crop whose sides are multiples of 8, because the metric works on
  whole 8×8 DCT blocks.

Peak memory: on Linux, free heap memory is first handed back to the OS (glibc
``malloc_trim``), the kernel's peak-RSS counter (VmHWM) is reset through
``/proc/self/clear_refs``, and the reported value is ``VmHWM after − VmRSS before`` in MiB:
how far the process's resident memory rose during the encode or the decode call, native
libraries included (``memory_method = "rss_hwm"``).  It is measured per call, so a library's
one-time initialisation shows up in the first call of a process only.  Where that file is not
writable the fallback is :mod:`tracemalloc`'s peak, which only sees Python/numpy allocations
(``memory_method = "tracemalloc"``).  Timings are wall-clock ``time.perf_counter`` seconds of
the encode and decode calls alone, in a process doing one measurement at a time.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .. import metrics
from ..errors import InputError

FIELDS = [
    "image", "width", "height", "codec", "setting", "bytes", "bpp",
    "psnr", "ms_ssim", "ms_ssim_db", "psnr_hvs", "psnr_hvsm",
    "enc_s", "dec_s", "enc_peak_mib", "dec_peak_mib",
]


def machine() -> str:
    """The CPU that timings were taken on, for results files: model name, cores, and the vector
    instruction set PyTorch's CPU kernels use on it (e.g. ``"AMD EPYC, 2 cores, torch CPU kernels AVX2"``).

    The same code has timed up to about 1.7 times slower on one lent "2-core x86_64" machine than on
    another, so a bare architecture name does not say enough to compare timings.
    """
    import torch

    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores, torch CPU kernels {torch.backends.cpu.get_cpu_capability()}"


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image as 8-bit RGB, as it is shown (EXIF orientation applied, as lic compress reads it; alpha
    dropped, grayscale/palette expanded, 16-bit and 32-bit grey scaled by the file's bit depth, as
    :mod:`lic.imageio` does, so a dark 16-bit image stays dark)."""
    from PIL import ImageOps

    from ..imageio import _to_8bit

    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I") or im.mode == "F":
                im = Image.fromarray(_to_8bit(im), "L")
            return im.convert("RGB") if im.mode != "RGB" else im.copy()
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e}") from e


#: Kodak beside a checkout of the repository (../shared/data/kodak), where benchmarks look for it by default
KODAK = Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak"


def benchmark_photo(path: str | Path | None = None, kodak_name: str = "kodim13.png") -> tuple[Image.Image, str]:
    """The one photo a single-image benchmark codes, and its label: ``path`` when given, else Kodak's
    ``kodak_name`` (from :data:`KODAK`), else scikit-image's astronaut when Kodak is absent."""
    from ..imageio import read_image

    if path:
        return read_image(path), str(path)
    if (KODAK / kodak_name).is_file():
        return read_image(KODAK / kodak_name), kodak_name
    from skimage import data

    return Image.fromarray(data.astronaut()), "skimage astronaut"


# --- peak memory -------------------------------------------------------------------------------------


def write_json(path: str | Path, data) -> Path:
    """A benchmark's results file: folders made as needed, then "written: PATH" on standard output."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    print(f"written: {path}")
    return path


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kib("VmHWM")
        return True
    except (OSError, KeyError):
        return False


MEMORY_METHOD = "rss_hwm" if _can_reset_hwm() else "tracemalloc"


def _trim() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``) so that the baseline RSS is
    low and a call's peak counts the memory it really touches, not just growth beyond what
    earlier calls left in the allocator's free lists."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


class PeakMemory(contextlib.AbstractContextManager):
    """``with PeakMemory() as m: ...`` then ``m.mib``: peak memory growth during the block."""

    def __enter__(self):
        self.mib = math.nan
        if MEMORY_METHOD == "rss_hwm":
            _trim()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._base = _status_kib("VmRSS")
        else:
            import tracemalloc

            tracemalloc.start()
            tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc):
        if MEMORY_METHOD == "rss_hwm":
            self.mib = max(0, _status_kib("VmHWM") - self._base) / 1024
        else:
            import tracemalloc

            self.mib = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        return False


# --- quality ------------------------------------------------------------------------------------------


def _import_psnr_hvsm():
    # the package prints a notice to stdout about its optional torch backend on import
    with contextlib.redirect_stdout(io.StringIO()):
        from psnr_hvsm.numpy import bt601ycbcr, psnr_hvs_hvsm
    return bt601ycbcr, psnr_hvs_hvsm


def psnr_hvs(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(PSNR-HVS, PSNR-HVS-M) in dB on BT.601 luma; NaN if the image is smaller than 8×8."""
    try:
        bt601ycbcr, psnr_hvs_hvsm = _import_psnr_hvsm()
    except ImportError:
        return math.nan, math.nan
    h, w = (a.shape[0] // 8) * 8, (a.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return math.nan, math.nan
    ya = bt601ycbcr(a[:h, :w])[0]
    yb = bt601ycbcr(b[:h, :w])[0]
    with np.errstate(invalid="ignore", divide="ignore"):  # flat 8×8 blocks: 0/0, masked by the package
        hvs, hvsm = psnr_hvs_hvsm(ya, yb)
    return float(hvs), float(hvsm)


@contextlib.contextmanager
def _one_torch_thread():
    """MS-SSIM on one torch thread: on a busy machine multi-threaded small convolutions can take
    10× longer and vary wildly; the codec itself (e.g. lic) keeps torch's default threads."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def quality(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """All quality metrics of a decoded image ``b`` against the original ``a`` (uint8 H×W×3)."""
    with _one_torch_thread():
        msssim = metrics.ms_ssim(a, b)
    hvs, hvsm = psnr_hvs(a, b)
    return {
        "psnr": metrics.psnr(a, b),
        "ms_ssim": msssim,
        "ms_ssim_db": math.nan if math.isnan(msssim) else metrics.ms_ssim_db(msssim),
        "psnr_hvs": hvs,
        "psnr_hvsm": hvsm,
    }


# --- one measurement ---------------------------------------------------------------------------------


def measure(codec, setting: str, img: Image.Image, name: str) -> dict:
    """Encode ``img`` with ``codec`` at ``setting``, decode, and return one CSV row (see FIELDS)."""
    original = np.asarray(img)
    with PeakMemory() as enc_mem:
        t0 = time.perf_counter()
        data = codec.encode(img, setting)
        enc_s = time.perf_counter() - t0
    with PeakMemory() as dec_mem:
        t0 = time.perf_counter()
        decoded = codec.decode(data)
        dec_s = time.perf_counter() - t0
    if decoded.size != img.size:
        raise RuntimeError(f"{codec.name} {setting}: decoded size {decoded.size} != original {img.size}")
    row = {
        "image": name,
        "width": img.width,
        "height": img.height,
        "codec": codec.name,
        "setting": setting,
        "bytes": len(data),
        "bpp": 8 * len(data) / (img.width * img.height),
        "enc_s": enc_s,
        "dec_s": dec_s,
        "enc_peak_mib": enc_mem.mib,
        "dec_peak_mib": dec_mem.mib,
    }
    row.update(quality(original, np.asarray(decoded.convert("RGB"))))
    return row
