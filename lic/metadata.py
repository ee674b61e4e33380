"""Photo metadata (EXIF, XMP) that a ``.lic`` file can carry beside the pixels, as ``cwebp -metadata`` does.

    input file ─Pillow─► image.info["exif"], ["xmp"] ─extract─► {"exif": b"Exif\\0\\0…", "xmp": b"<x:xmpmeta…"}
      ─codec.side_chunks(keep)─► chunks 4, 5 (pack: zlib) ─► .lic ─codec.read_meta (unpack, valid)─► image.info
      ─save_options(format)─► the output file

Nothing is kept unless asked for (``lic compress --metadata exif,xmp`` or ``all``; ``lic.compress(...,
metadata="all")``): metadata can name a place (GPS) or a camera's serial number, and it costs bytes that a
codec's bpp should not hide.  The ICC colour profile is not metadata here: it changes how the pixels look and
is always kept (:mod:`lic.imageio`).

Kept verbatim, so maker notes and vendor tags survive.  The EXIF orientation tag needs no care: lic reads
images upright (Pillow's ``exif_transpose`` rotates the pixels and removes the tag from ``info["exif"]`` and
from the XMP), so a kept orientation would only be one an API caller left on pixels it did not rotate, where it
still describes them.  Read from JPEG, PNG, WebP, AVIF, HEIF and JPEG XL inputs (where Pillow puts them in
``image.info``); a TIFF's EXIF lives in its own tags and is not taken.  Written back by ``lic decompress`` into
PNG, JPEG, WebP, AVIF and HEIF outputs (EXIF also into TIFF and JPEG XL); other formats drop it with a warning.
"""

from __future__ import annotations

import warnings
import zlib

from .errors import FormatError, InputError

KINDS = ("exif", "xmp")  # what can be kept, in the order the chunks are written
EXIF_HEADER = b"Exif\x00\x00"  # how JPEG's APP1 segment, and Pillow, mark EXIF data
MAX_UNPACKED = 1 << 24  # bytes: a metadata chunk (or ICC profile) larger than this unpacked is a zlib bomb
JPEG_MAX_EXIF = 65533  # bytes: one JPEG APP1 segment
JPEG_MAX_XMP = 65504  # bytes: one APP1 segment less the XMP namespace that opens it
# the output formats Pillow (with lic.formats' plugins) writes them into (JPEG within one segment's size):
# each read back intact with Pillow 13.0.0, pillow-heif 1.9.0 and pillow-jxl-plugin 1.3.8 (2026-12-07)
EXIF_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", "TIFF", "HEIF", "JXL")
XMP_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", "HEIF")


def parse_keep(spec) -> frozenset[str]:
    """What to keep: "none" (default), "all", "exif", "xmp", "exif,xmp", or an iterable of those names."""
    if spec is None:
        return frozenset()
    listed = isinstance(spec, (list, tuple, set, frozenset))
    parts = spec.split(",") if isinstance(spec, str) else list(spec) if listed else [spec]
    if not all(isinstance(p, str) for p in parts):
        raise InputError(f"metadata must be 'none', 'all' or names from {', '.join(KINDS)}, got {spec!r}")
    names = {p.strip().lower() for p in parts} - {""}
    if "all" in names:
        names = (names - {"all"}) | set(KINDS)
    if "none" in names and len(names) > 1:
        raise InputError(f"metadata 'none' cannot be combined with other names, got {spec!r}")
    unknown = sorted(names - set(KINDS) - {"none"})
    if unknown:
        raise InputError(f"unknown metadata {', '.join(map(repr, unknown))} (choose none, all, "
                         f"{', '.join(KINDS)} or a comma list of those)")
    return frozenset(names - {"none"})


def extract(info: dict) -> dict[str, bytes]:
    """The EXIF and XMP a Pillow image carries in ``info`` (absent or empty ones left out)."""
    found = {}
    exif = info.get("exif")
    if exif is not None and not isinstance(exif, (bytes, bytearray)):  # an Image.Exif object
        exif = exif.tobytes() if hasattr(exif, "tobytes") else None
    if exif:
        exif = bytes(exif)
        found["exif"] = exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, (bytes, bytearray)) and xmp:
        found["xmp"] = bytes(xmp)
    return found


def pack(data: bytes) -> bytes:
    """A side chunk's payload: zlib, as the ICC profile's."""
    return zlib.compress(data, 9)


def unpack(data: bytes, what: str) -> bytes:
    """The inverse of :func:`pack`, refusing damaged data and zlib bombs with a :class:`FormatError`
    naming ``what`` ("ICC profile", "EXIF")."""
    try:
        z = zlib.decompressobj()
        out = z.decompress(data, MAX_UNPACKED)
    except zlib.error:
        raise FormatError(f"corrupt .lic file: {what} chunk is not valid") from None
    if z.unconsumed_tail:
        raise FormatError(f"corrupt .lic file: {what} chunk unpacks to more than {MAX_UNPACKED:,} bytes")
    if not z.eof:
        raise FormatError(f"corrupt .lic file: {what} chunk is not valid")
    return out


def valid(kind: str, data: bytes) -> bytes:
    """A metadata chunk read back: what :func:`extract` can have made of it, else a :class:`FormatError`."""
    if kind == "exif" and not data.startswith(EXIF_HEADER):
        raise FormatError("corrupt .lic file: EXIF chunk is not valid")
    if kind == "xmp" and not data:
        raise FormatError("corrupt .lic file: XMP chunk is not valid")
    return data


def save_options(info: dict, fmt: str) -> dict:
    """Pillow ``save()`` keywords that write the EXIF / XMP in ``info`` into a ``fmt`` file, with a warning for
    what that format cannot hold."""
    opts, dropped = {}, []
    exif, xmp = info.get("exif"), info.get("xmp")
    if exif:
        if fmt == "JPEG" and len(exif) > JPEG_MAX_EXIF:
            dropped.append(f"EXIF ({len(exif):,} bytes; a JPEG holds {JPEG_MAX_EXIF:,})")
        elif fmt in EXIF_FORMATS:
            opts["exif"] = exif
        else:
            dropped.append("EXIF")
    if xmp:
        if fmt == "JPEG" and len(xmp) > JPEG_MAX_XMP:
            dropped.append(f"XMP ({len(xmp):,} bytes; a JPEG holds {JPEG_MAX_XMP:,})")
        elif fmt == "PNG":  # Pillow writes PNG's XMP as the iTXt text chunk that Adobe's XMP spec names
            from PIL import PngImagePlugin

            text = PngImagePlugin.PngInfo()
            text.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))  # uncompressed, as the spec asks
            opts["pnginfo"] = text
        elif fmt in XMP_FORMATS:
            opts["xmp"] = xmp
        else:
            dropped.append("XMP")
    if dropped:
        warnings.warn(f"{fmt} output cannot hold the file's {' and '.join(dropped)} metadata; dropped "
                      "(write .png to keep it)", stacklevel=3)
    return opts
