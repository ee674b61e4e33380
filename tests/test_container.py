"""The .lic container: layout, checksums, truncation."""

import pytest

from lic import container
from lic.container import CHUNK_ALPHA, CHUNK_MODEL, Chunk, Header
from lic.errors import FormatError


def make(chunks=(b"abc", b"", b"x" * 300)):
    h = Header("m", b"12345678", 640, 480, "RGBA", 3, 0, b"\x01\x02")
    return container.write(h, [Chunk(CHUNK_ALPHA, b"alpha")] + [Chunk(CHUNK_MODEL, c) for c in chunks])


def test_round_trip():
    f = container.read(make())
    assert not f.truncated
    assert f.header.model == "m" and f.header.digest == b"12345678"
    assert (f.header.width, f.header.height, f.header.mode, f.header.quality) == (640, 480, "RGBA", 3)
    assert f.header.params == b"\x01\x02" and f.header.n_chunks == 4
    assert f.chunk(CHUNK_ALPHA) == b"alpha"
    assert f.model_chunks() == [b"abc", b"", b"x" * 300]


def chunk_ends(buf):
    """Byte offsets at which each chunk ends, from the real layout."""
    f = container.read(buf)
    hb = f.header.pack()
    pos = len(container.MAGIC) + 1 + len(container._put_varint(len(hb))) + len(hb) + 4
    ends = [pos]
    for c in f.chunks:
        pos += 1 + len(container._put_varint(len(c.data))) + len(c.data) + 4
        ends.append(pos)
    assert ends[-1] == len(buf)
    assert f.ends == ends[1:]  # what read() reports (lic info, prefix cuts) agrees with the layout
    return ends


def test_prefix_at_chunk_boundary_is_a_valid_prefix():
    buf = make()
    ends = chunk_ends(buf)
    for k, end in enumerate(ends[:-1]):
        f = container.read(buf[:end])
        assert f.truncated and len(f.chunks) == k
    for k in range(1, len(ends) - 1):  # cut inside chunk k+1: k complete chunks
        f = container.read(buf[: ends[k] + 3])
        assert f.truncated and len(f.chunks) == k


@pytest.mark.parametrize("cut", [0, 1, 5, 8, 9, 12])
def test_truncated_header_is_an_error(cut):
    with pytest.raises(FormatError):
        container.read(make()[:cut])


def test_every_byte_flip_is_detected():
    buf = make()
    for i in range(len(buf)):
        bad = bytearray(buf)
        bad[i] ^= 0x40
        try:
            f = container.read(bytes(bad))
        except FormatError:
            continue
        # a damaged length field can only look like a truncation, never like valid data
        assert f.truncated, f"flip at byte {i} went unnoticed"


def test_not_a_lic_file():
    with pytest.raises(FormatError, match="not a .lic file"):
        container.read(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(FormatError, match="empty"):
        container.read(b"")


def test_future_version_refused():
    buf = bytearray(make())
    buf[len(container.MAGIC)] = 99
    with pytest.raises(FormatError, match="version 99"):
        container.read(bytes(buf))


def test_a_header_claiming_too_many_pixels_is_refused():
    """A damaged or hostile header (its checksum made to match) must not make a decoder allocate tens of GB."""
    side = 1 << 15
    ok = Header("m", b"12345678", side, side, "RGB", 3, 0)  # 2**30 pixels: the most a file holds
    assert container.read(container.write(ok, [Chunk(CHUNK_MODEL, b"x")])).header.width == side
    for w, h in ((side + 1, side), (100_000, 100_000), (1, 2 ** 40)):
        big = Header("m", b"12345678", w, h, "RGB", 3, 0)
        with pytest.raises(FormatError, match="more than a .lic file holds"):
            container.read(container.write(big, [Chunk(CHUNK_MODEL, b"x")]))
