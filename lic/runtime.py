"""Process-wide memory setting that makes coding on a CPU faster (Linux with glibc only).

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB unless set) with a
fresh ``mmap`` and returns it with ``munmap`` when it is freed.  The feature maps of a 768×512
photo at half resolution are 128 × 384 × 256 floats = 48 MiB, and a convolution's work buffer
is several times that, so every layer writes into brand-new pages, and the kernel faults and
zeroes each page on first touch.  On the 2-core CPU of ``benchmarks/kodak_rd.py`` that was about
a third of the encode and decode time of the default model.

:func:`keep_freed_memory` raises glibc's mmap and trim thresholds so that those blocks come from
the heap and stay there once freed: the next layer, and the next image, reuse pages that are
already mapped.  The price is that the process keeps its peak memory until it exits instead of
handing it back; the ``lic`` command-line tool and lic's benchmarks call it, a program using the
Python API may call it itself.  Nothing else changes: the same bytes and the same pixels.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_KEEP = 1 << 30  # blocks up to 1 GiB come from the heap; up to 1 GiB of free heap is kept

_done = False


def keep_freed_memory() -> bool:
    """Keep large freed blocks in the process for reuse (see the module docstring).

    Returns True if the setting is in force (glibc on Linux), False where it does not apply.
    Calling it again does nothing more.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # present in glibc only (musl's mallopt does nothing)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
