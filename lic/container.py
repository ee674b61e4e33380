"""The ``.lic`` file format.

Layout (all integers little-endian; ``varint`` is unsigned LEB128)::

    magic      8 bytes   b"\\x89LIC\\r\\n\\x1a\\n"   (PNG-style: catches text-mode and 7-bit damage)
    version    1 byte    FORMAT_VERSION
    header     varint length + bytes, then CRC32 (4 bytes) of those bytes
               model name, 8-byte weights digest, width, height, image mode,
               quality, number of chunks in the complete file, model parameters
    chunks     repeated: kind (1 byte), varint length, payload, CRC32 of kind+length+payload

Chunks are self-delimiting and checked one by one, so a reader can tell a
complete chunk from a truncated or corrupted one.  Progressive models write
one chunk per layer / iteration; a file cut at a chunk boundary is a valid
prefix and :func:`read` reports how many chunks it holds.  The header records
the chunk count of the complete file, so truncation is always detected.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .errors import FormatError

MAGIC = b"\x89LIC\r\n\x1a\n"
FORMAT_VERSION = 1

# chunk kinds
CHUNK_MODEL = 1  # entropy-coded model data (one per layer for progressive models)
CHUNK_ALPHA = 2  # the alpha plane, lossless (PNG)
CHUNK_ICC = 3  # the input's ICC colour profile (zlib), when it describes the coded planes
CHUNK_EXIF = 4  # EXIF metadata, when asked to keep it (zlib of the bytes JPEG's APP1 holds: b"Exif\0\0" + TIFF)
CHUNK_XMP = 5  # XMP metadata, when asked to keep it (zlib of the XML packet)

MODES = ("L", "RGB", "LA", "RGBA")

#: the most pixels an image in a .lic file may have: the encoder refuses larger images and the reader larger
#: headers (a damaged or hostile header must not make a decoder allocate tens of GB)
MAX_PIXELS = 1 << 30


def _put_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf):
            raise EOFError
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise FormatError("corrupt .lic file: varint too long")


#: the params of a file whose synthesis (image decoder) runs in exact arithmetic (lic.layers.exact: the same
#: pixels on every machine); empty params: the float32 synthesis
PARAMS_EXACT_SYNTHESIS = b"\x01"


@dataclass
class Header:
    model: str
    digest: bytes  # 8 bytes, identifies the exact weights
    width: int
    height: int
    mode: str  # one of MODES
    quality: int
    n_chunks: int  # chunks in the complete file
    params: bytes = b""  # model-specific parameters

    def pack(self) -> bytes:
        name = self.model.encode("ascii")
        if len(name) > 255 or len(self.digest) != 8:
            raise ValueError("bad model name or digest")
        return b"".join([
            bytes([len(name)]), name, self.digest,
            _put_varint(self.width), _put_varint(self.height),
            bytes([MODES.index(self.mode)]), _put_varint(self.quality),
            _put_varint(self.n_chunks), _put_varint(len(self.params)), self.params,
        ])

    @classmethod
    def unpack(cls, buf: bytes) -> "Header":
        try:
            n = buf[0]
            model = buf[1:1 + n].decode("ascii")
            if not model.isprintable():  # the name reaches messages and terminals
                raise FormatError("corrupt .lic header: model name has control characters")
            pos = 1 + n
            digest = buf[pos:pos + 8]
            pos += 8
            width, pos = _get_varint(buf, pos)
            height, pos = _get_varint(buf, pos)
            mode = MODES[buf[pos]]
            pos += 1
            quality, pos = _get_varint(buf, pos)
            n_chunks, pos = _get_varint(buf, pos)
            plen, pos = _get_varint(buf, pos)
            params = buf[pos:pos + plen]
            if len(params) != plen or pos + plen != len(buf) or len(digest) != 8:
                raise FormatError("corrupt .lic header")
        except (IndexError, EOFError, UnicodeDecodeError):
            raise FormatError("corrupt .lic header") from None
        if width < 1 or height < 1:
            raise FormatError("corrupt .lic header: empty image")
        if width * height > MAX_PIXELS:
            raise FormatError(f"corrupt .lic header: {width}x{height} pixels, more than a .lic file holds "
                              f"(at most {MAX_PIXELS:,})")
        return cls(model, digest, width, height, mode, quality, n_chunks, params)


@dataclass
class Chunk:
    kind: int
    data: bytes


@dataclass
class LicFile:
    header: Header
    chunks: list[Chunk] = field(default_factory=list)
    truncated: bool = False  # the file ended inside a chunk or before the last chunk
    partial: bool = False  # the file ended inside a chunk (not at a chunk boundary, where a prefix ends)
    ends: list[int] = field(default_factory=list)  # file offset just after each complete chunk: the valid cuts

    def model_chunks(self) -> list[bytes]:
        return [c.data for c in self.chunks if c.kind == CHUNK_MODEL]

    def chunk(self, kind: int) -> bytes | None:
        for c in self.chunks:
            if c.kind == kind:
                return c.data
        return None


def _crc(*parts: bytes) -> bytes:
    c = 0
    for p in parts:
        c = zlib.crc32(p, c)
    return struct.pack("<I", c)


def write(header: Header, chunks: list[Chunk]) -> bytes:
    """Serialize a complete file."""
    header.n_chunks = len(chunks)
    hb = header.pack()
    out = [MAGIC, bytes([FORMAT_VERSION]), _put_varint(len(hb)), hb, _crc(hb)]
    for ch in chunks:
        head = bytes([ch.kind]) + _put_varint(len(ch.data))
        out += [head, ch.data, _crc(head, ch.data)]
    return b"".join(out)


def read(buf: bytes) -> LicFile:
    """Parse a file; checks every checksum.

    A file that ends exactly at, or inside, a chunk after the first is
    returned with ``truncated=True`` and the complete chunks; callers decide
    whether a prefix is acceptable (progressive models) or not.  Corruption
    (a checksum mismatch) always raises :class:`FormatError`.
    """
    if len(buf) == 0:
        raise FormatError("empty file, not a .lic file")
    if not buf.startswith(MAGIC):
        if MAGIC.startswith(buf[:8]):
            raise FormatError("truncated .lic file (ends inside the signature)")
        raise FormatError("not a .lic file (bad signature)")
    pos = len(MAGIC)
    if pos >= len(buf):
        raise FormatError("truncated .lic file (no header)")
    version = buf[pos]
    pos += 1
    if version != FORMAT_VERSION:
        # the version byte comes before the checksummed header, so a damaged byte reads as another version
        raise FormatError(f"unsupported .lic format version {version} (this lic reads version {FORMAT_VERSION}): "
                          f"{'a file from a newer lic, or ' if version > FORMAT_VERSION else ''}a corrupt file")
    try:
        hlen, pos = _get_varint(buf, pos)
    except EOFError:
        raise FormatError("truncated .lic file (inside the header)") from None
    hb, crc = buf[pos:pos + hlen], buf[pos + hlen:pos + hlen + 4]
    if len(hb) != hlen or len(crc) != 4:
        raise FormatError("truncated .lic file (inside the header)")
    if _crc(hb) != crc:
        raise FormatError("corrupt .lic file: header checksum mismatch")
    header = Header.unpack(hb)
    pos += hlen + 4
    f = LicFile(header)
    while pos < len(buf):
        start = pos
        kind = buf[pos]
        try:
            n, pos = _get_varint(buf, pos + 1)
        except EOFError:
            f.truncated = f.partial = True
            break
        data, crc = buf[pos:pos + n], buf[pos + n:pos + n + 4]
        if len(data) != n or len(crc) != 4:
            f.truncated = f.partial = True
            break
        if _crc(buf[start:pos], data) != crc:
            raise FormatError(f"corrupt .lic file: checksum mismatch in chunk {len(f.chunks) + 1}")
        f.chunks.append(Chunk(kind, bytes(data)))
        pos += n + 4
        f.ends.append(pos)
        if len(f.chunks) > header.n_chunks:
            raise FormatError("corrupt .lic file: more chunks than the header declares")
    if len(f.chunks) < header.n_chunks:
        f.truncated = True
    return f
