"""What travels with the pixels: ICC colour profiles, EXIF / XMP on request, transparent colours, the first of
several frames."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms

import lic
from lic import codec, container
from lic.cli import main
from lic.errors import FormatError, InputError
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


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'tiff:Orientation="6" dc:creator="lic tests"/></rdf:RDF></x:xmpmeta>')


@pytest.fixture
def camera_jpeg(photos, tmp_path):
    """A JPEG as a camera writes it: EXIF (make, date, orientation 6: turn a quarter clockwise) and XMP."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0132], exif[0x0112] = "Canon", "2024:01:02 03:04:05", 6
    path = tmp_path / "camera.jpg"
    photos["coffee"].save(path, exif=exif, xmp=XMP, quality=95)
    return path


def test_exif_and_xmp_travel_only_when_asked(tiny, tiny_weights, camera_jpeg, tmp_path, capsys):
    w = str(tiny_weights)
    plain, kept = tmp_path / "plain.lic", tmp_path / "kept.lic"
    assert main(["compress", str(camera_jpeg), "-o", str(plain), "--model", w, "--quiet"]) == 0
    assert main(["compress", str(camera_jpeg), "-o", str(kept), "--model", w, "--metadata", "all", "--quiet"]) == 0
    f0, f1 = container.read(plain.read_bytes()), container.read(kept.read_bytes())
    assert [c.kind for c in f0.chunks] == [container.CHUNK_MODEL] * 2  # by default nothing but the pixels
    assert [c.kind for c in f1.chunks] == [container.CHUNK_EXIF, container.CHUNK_XMP] + [container.CHUNK_MODEL] * 2
    assert f1.model_chunks() == f0.model_chunks()  # the pixels are coded the same
    assert main(["info", str(kept)]) == 0
    assert "  1  exif " in capsys.readouterr().out
    assert "exif" not in lic.decompress(plain.read_bytes(), model=tiny).info
    for ext in ("png", "jpg", "webp"):
        out = tmp_path / f"out.{ext}"
        assert main(["decompress", str(kept), "-o", str(out), "--model", w, "--quiet"]) == 0
        with Image.open(out) as im:
            exif, xmp = im.getexif(), im.info.get("xmp")
            assert im.size == (200, 168)  # read upright (turned from 168×200): the tag is spent
            assert exif[0x010F] == "Canon" and exif[0x0132] == "2024:01:02 03:04:05" and 0x0112 not in exif
            assert b'dc:creator="lic tests"' in xmp and b"tiff:Orientation" not in xmp


def test_metadata_choice_through_the_api(tiny, camera_jpeg, photos):
    src = camera_jpeg.read_bytes()
    only_exif = lic.decompress(lic.compress(src, model=tiny, metadata="exif"), model=tiny)
    assert only_exif.info["exif"].startswith(b"Exif\0\0") and "xmp" not in only_exif.info
    only_xmp = lic.decompress(lic.compress(src, model=tiny, metadata=["xmp"]), model=tiny)
    assert "exif" not in only_xmp.info and b"lic tests" in only_xmp.info["xmp"]
    # a photo without metadata: nothing to keep, the same file as without asking
    assert lic.compress(photos["chelsea"], model=tiny, metadata="all") == lic.compress(photos["chelsea"], model=tiny)
    # the rate control counts the metadata in the budget: it is part of the file
    big = lic.compress(src, model=tiny, metadata="all", bpp=2.0)
    assert 8 * len(big) <= 2.0 * 200 * 168 and "exif" in lic.decompress(big, model=tiny).info
    for bad in ("gps", "none,exif", 3):
        with pytest.raises(InputError, match="metadata"):
            lic.compress(src, model=tiny, metadata=bad)


def test_unknown_metadata_is_a_one_line_error(tiny_weights, camera_jpeg, tmp_path, capsys):
    out = tmp_path / "x.lic"
    assert main(["compress", str(camera_jpeg), "-o", str(out), "--model", str(tiny_weights),
                 "--metadata", "exif,gps"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lic: error: unknown metadata 'gps' (choose none, all, exif, xmp or a comma list of those)"]
    assert not out.exists()


def test_outputs_that_cannot_hold_the_metadata_drop_it_with_a_warning(tiny, tiny_weights, camera_jpeg, tmp_path,
                                                                      capsys):
    kept = tmp_path / "kept.lic"
    kept.write_bytes(lic.compress(camera_jpeg, model=tiny, metadata="all"))
    out = tmp_path / "out.bmp"
    assert main(["decompress", str(kept), "-o", str(out), "--model", str(tiny_weights), "--quiet"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "lic: warning: BMP output cannot hold the file's EXIF and XMP metadata; dropped (write .png to keep it)"]
    with Image.open(out) as im:
        assert im.size == (200, 168)
    # EXIF larger than one JPEG segment (a PNG's eXIf chunk has no such limit): dropped, the image still written
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # ImageDescription
    png = tmp_path / "big.png"
    Image.new("RGB", (24, 16), (90, 30, 200)).save(png, exif=exif)
    big = tmp_path / "big.lic"
    big.write_bytes(lic.compress(png, model=tiny, metadata="exif"))
    jpg = tmp_path / "big.jpg"
    assert main(["decompress", str(big), "-o", str(jpg), "--model", str(tiny_weights), "--quiet"]) == 0
    assert "JPEG output cannot hold the file's EXIF (70,0" in capsys.readouterr().err
    with Image.open(jpg) as im:
        assert im.size == (24, 16) and "exif" not in im.info
    back = tmp_path / "back.png"
    assert main(["decompress", str(big), "-o", str(back), "--model", str(tiny_weights), "--quiet"]) == 0
    with Image.open(back) as im:
        assert im.getexif()[0x010E] == "x" * 70_000


@pytest.mark.parametrize("kind, payload", [(container.CHUNK_EXIF, b"\x78\x9c garbage"),
                                           (container.CHUNK_EXIF, None), (container.CHUNK_XMP, None)])
def test_invalid_metadata_chunk_is_refused(tiny, photos, kind, payload):
    from lic import metadata

    enc = codec.encode(photos["coffee"], model=tiny, quality=1)
    f = container.read(enc.data)
    payload = metadata.pack(b"not exif" if kind == container.CHUNK_EXIF else b"") if payload is None else payload
    bad = container.write(f.header, [container.Chunk(kind, payload)] + f.chunks)  # right checksums, wrong payload
    with pytest.raises(FormatError, match=f"{'EXIF' if kind == container.CHUNK_EXIF else 'XMP'} chunk is not valid"):
        codec.decode(bad, model=tiny)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF", "TIFF", "HEIF", "JXL"])
def test_each_output_format_keeps_what_lic_writes_into_it(fmt):
    from lic import formats, metadata

    formats.register()
    Image.init()
    if fmt not in Image.SAVE:
        pytest.skip(f"no {fmt} writer here (pip install lic[all])")
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    img = Image.new("RGB", (24, 16), (90, 30, 200))
    img.info.update(metadata.extract({"exif": exif.tobytes(), "xmp": XMP}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the formats that drop one of the two say so; not what this test checks
        opts = metadata.save_options(img.info, fmt)
    assert ("exif" in opts) == (fmt in metadata.EXIF_FORMATS)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **opts)
    with Image.open(io.BytesIO(buf.getvalue())) as back:
        back.load()
        assert (back.getexif().get(0x010F) == "Canon") == (fmt in metadata.EXIF_FORMATS)
        assert (b'dc:creator="lic tests"' in (back.info.get("xmp") or b"")) == (fmt in metadata.XMP_FORMATS)
