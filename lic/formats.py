"""Image formats Pillow reads and writes through optional plugins, when they are installed.

    pillow-heif         HEIF / HEIC (phone cameras)     .heic .heif
    pillow-jxl-plugin   JPEG XL                         .jxl

Both come with ``pip install lic[all]`` (and the test and benchmark extras); without them those files are
refused as unreadable, with the package to install named (:func:`missing_plugin`).  Registered once, when
:mod:`lic.imageio` or :mod:`lic.data` is first imported, so that reading a file and listing a folder agree.
"""

from __future__ import annotations

_registered = False


def register() -> None:
    """Make Pillow open (and save) the formats above whose plugin is installed; idempotent."""
    global _registered
    if _registered:
        return
    _registered = True
    # a plugin that is missing or broken (its native library fails to load) leaves its format unreadable;
    # it must not stop lic
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except Exception:
        pass
    try:
        import pillow_jxl  # noqa: F401  (importing it registers the format)
    except Exception:
        pass


def missing_plugin(head: bytes) -> str | None:
    """The package that would read a file starting with ``head`` when its plugin is not installed, else None."""
    from PIL import Image

    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc"):
        return None if "HEIF" in Image.OPEN else "pillow-heif"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return None if "JXL" in Image.OPEN else "pillow-jxl-plugin"
    return None
