"""What travels with the pixels: ICC colour profiles, transparent colours, the first of several frames."""

import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms

import lic
from lic import codec, container
from lic.cli import main
from lic.errors import FormatError
from lic.imageio import icc_description, icc_space, read_image


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def v2_profile(space: bytes, description: str) -> bytes:
    """A minimal ICC v2 header + tag table with one 'desc' tag (enough for what lic reads)."""
    text = description.encode("latin-1") + b"\0"
    tag = b"desc" + bytes(4) + len(text).to_bytes(4, "big") + text
    header = bytearray(128)
    header[8:12] = bytes([2, 0x10, 0, 0])
    header[16:20] = space
    header[36:40] = b"acsp"
    table = (1).to_bytes(4, "big") + b"desc" + (144).to_bytes(4, "big") + len(tag).to_bytes(4, "big")
    body = bytes(header) + table + tag
    return (len(body)).to_bytes(4, "big") + body[4:]


def test_profile_header_and_description_are_read(wide_icc):
    assert icc_space(srgb_profile()) == "RGB" and icc_description(srgb_profile()) == "sRGB built-in"
    assert icc_description(wide_icc) == "Wide built-in"
    p = v2_profile(b"GRAY", "Gray Gamma 2.2")
    assert icc_space(p) == "GRAY" and icc_description(p) == "Gray Gamma 2.2"
    assert icc_space(b"not a profile" * 20) == ""


def test_icc_profile_travels_with_the_file(tiny, tiny_weights, photos, tmp_path, wide_icc, capsys):
    img = photos["coffee"].copy()
    img.info["icc_profile"] = wide_icc
    enc = codec.encode(img, model=tiny, quality=2, reconstruct=True)
    dec = codec.decode(enc.data, model=tiny)
    assert dec.info["icc_profile"] == wide_icc == enc.reconstruction.info["icc_profile"]
    f = container.read(enc.data)
    assert [c.kind for c in f.chunks][0] == container.CHUNK_ICC  # before the data: every prefix keeps it
    # the pixels are coded exactly as without a profile
    plain = codec.encode(photos["coffee"], model=tiny, quality=2)
    assert container.read(plain.data).model_chunks() == f.model_chunks()

    # through the command line into PNG and JPEG files
    src = tmp_path / "wide.png"
    img.save(src, icc_profile=wide_icc)
    lic_file = tmp_path / "wide.lic"
    assert main(["compress", str(src), "-o", str(lic_file), "--model", str(tiny_weights), "--quiet"]) == 0
    assert main(["info", str(lic_file)]) == 0
    assert "  1  icc " in capsys.readouterr().out
    for ext in ("png", "jpg"):
        out = tmp_path / f"out.{ext}"
        assert main(["decompress", str(lic_file), "-o", str(out), "--model", str(tiny_weights), "--quiet"]) == 0
        with Image.open(out) as im:
            assert im.info.get("icc_profile") == wide_icc


def test_srgb_profile_is_not_stored(tiny, photos):
    img = photos["chelsea"].copy()
    img.info["icc_profile"] = srgb_profile()
    data = lic.compress(img, model=tiny)
    assert data == lic.compress(photos["chelsea"], model=tiny)
    assert "icc_profile" not in lic.decompress(data, model=tiny).info


def test_gray_profile_kept_for_grayscale_rgb_profile_dropped(tiny, photos, wide_icc):
    gray = photos["astronaut"].convert("L")
    gray.info["icc_profile"] = v2_profile(b"GRAY", "Gray Gamma 2.2")
    assert lic.decompress(lic.compress(gray, model=tiny), model=tiny).info["icc_profile"] == gray.info["icc_profile"]
    gray.info["icc_profile"] = wide_icc
    with pytest.warns(UserWarning, match="ICC profile \\(RGB\\) of the L input .* dropped"):
        data = lic.compress(gray, model=tiny)
    assert "icc_profile" not in lic.decompress(data, model=tiny).info


def test_cmyk_profile_is_dropped_with_a_warning(tiny, photos, tmp_path):
    cmyk = photos["coffee"].convert("CMYK")
    cmyk.info["icc_profile"] = v2_profile(b"CMYK", "Coated FOGRA39")
    with pytest.warns(UserWarning, match="ICC profile \\(CMYK\\) .* dropped"):
        dec = lic.decompress(lic.compress(cmyk, model=tiny), model=tiny)
    assert dec.mode == "RGB" and "icc_profile" not in dec.info


def test_invalid_icc_chunk_is_refused(tiny, photos):
    enc = codec.encode(photos["coffee"], model=tiny, quality=1)
    f = container.read(enc.data)
    chunks = [container.Chunk(container.CHUNK_ICC, b"\x78\x9c garbage")] + f.chunks
    bad = container.write(f.header, chunks)  # checksums are right: the payload itself is wrong
    with pytest.raises(FormatError, match="ICC profile chunk is not valid"):
        codec.decode(bad, model=tiny)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_transparent_colour_becomes_a_lossless_alpha_plane(tiny, tmp_path, mode):
    a = np.full((40, 56, 3), 200, np.uint8)
    a[10:30, 20:40] = (0, 0, 0)
    img = Image.fromarray(a).convert(mode)
    p = tmp_path / "t.png"
    img.save(p, transparency=(0, 0, 0) if mode == "RGB" else 0)
    dec = lic.decompress(lic.compress(p, model=tiny), model=tiny)
    assert dec.mode == mode + "A"
    expected = np.where(a[..., 0] == 0, 0, 255)
    assert np.array_equal(np.asarray(dec)[..., -1], expected)


def test_multi_frame_file_codes_the_first_frame_with_a_warning(tiny, tmp_path):
    frames = [Image.new("RGB", (24, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="2 frames; only the first is coded"):
        img = read_image(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dec = lic.decompress(lic.compress(img, model=tiny), model=tiny)
    assert dec.size == (24, 16)
    assert np.all(codec.reference_rgb(img) == (255, 0, 0))  # the red frame is what gets coded
