"""Images through real files: exact reconstruction, any size and mode, determinism, size vs estimate."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from lic import codec
from lic.errors import FormatError, InputError, ModelError


def encode_decode(img, model, quality=None):
    enc = codec.encode(img, model=model, quality=quality, reconstruct=True)
    return enc, codec.decode(enc.data, model=model)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_shipped_model_photo_round_trip_is_bit_exact(photos, name):
    img = photos[name]
    model = lic.load_model()
    for q in (model.qualities[0], model.qualities[-1]):
        enc, dec = encode_decode(img, model, q)
        assert dec.size == img.size and dec.mode == "RGB"
        assert np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))


@pytest.mark.parametrize("name", sorted(lic.zoo.shipped()))
def test_every_shipped_model_decodes_its_own_file_by_name(photos, name):
    """Each installed model, chosen by name: the file names its model, decoding needs no other hint, and
    the decoded pixels equal the encoder's reconstruction (lowest and highest quality, an odd-sized crop)."""
    img = photos["chelsea"].crop((3, 5, 3 + 131, 5 + 97))
    model = lic.load_model(name)
    for q in (model.qualities[0], model.qualities[-1]):
        enc = codec.encode(img, model=name, quality=q, reconstruct=True)
        assert codec.read_header(enc.data).header.model == name
        dec = lic.decompress(enc.data)
        assert dec.size == img.size
        assert np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))


def test_higher_quality_costs_more_bits_and_gives_better_psnr(photos):
    from lic import metrics

    img = photos["astronaut"]
    model = lic.load_model()
    ref = np.asarray(img)
    sizes, psnrs = [], []
    for q in model.qualities:
        enc, dec = encode_decode(img, model, q)
        sizes.append(len(enc.data))
        psnrs.append(metrics.psnr(ref, np.asarray(dec)))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert psnrs[-1] > psnrs[0]


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (13, 1), (65, 33), (130, 257), (64, 64)])
def test_any_size(tiny, size):
    w, h = size
    rng = np.random.default_rng(w * 1000 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    enc, dec = encode_decode(img, tiny, 2)
    assert dec.size == (w, h)
    assert np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "PA", "1", "CMYK", "I;16", "I", "F"])
def test_modes(tiny, photos, mode):
    base = photos["coffee"]
    if mode == "PA":
        img = base.convert("P").convert("PA")
    elif mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
        assert img.mode.startswith("I;16")
    elif mode in ("LA", "RGBA"):
        img = base.convert(mode)
        a = np.array(img)
        a[..., -1] = np.arange(a.shape[1], dtype=np.uint8)[None, :]  # a real alpha gradient
        img = Image.fromarray(a, mode)
    else:
        img = base.convert(mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc, dec = encode_decode(img, tiny, 2)
    expected = {"L": "L", "LA": "LA", "RGBA": "RGBA", "P": "RGB", "PA": "RGBA", "1": "L", "CMYK": "RGB",
                "I;16": "L", "I": "L", "F": "L"}[mode]
    assert dec.mode == expected and dec.size == img.size
    assert np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))
    if expected in ("LA", "RGBA"):  # alpha is lossless
        assert np.array_equal(np.asarray(dec)[..., -1], np.asarray(img.convert(expected))[..., -1])
    if mode in ("I;16", "I", "F"):
        assert any("8 bits" in str(w.message) for w in caught)


def test_16bit_png_file_is_reduced_with_warning(tiny, tmp_path):
    a = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 13 % 65536).astype(np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(a).save(p)
    from lic.imageio import read_image

    with pytest.warns(UserWarning, match="^deep.png: I;16 image \\(16-bit\\) reduced to 8 bits$"):
        enc, dec = encode_decode(read_image(p), tiny, 1)
    assert dec.mode == "L" and dec.size == (80, 64)


def test_16bit_grey_with_a_transparent_level_keeps_it_as_alpha(tiny, tmp_path):
    """A 16-bit grey PNG with a tRNS level: LA, with the pixels of that level exactly transparent."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = 12, 10
    g = ((np.arange(h * w).reshape(h, w) % 7) * 9000).astype(">u2")
    raw = b"".join(b"\0" + g[i].tobytes() for i in range(h))
    p = tmp_path / "g16t.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
                  + chunk(b"tRNS", struct.pack(">H", 18000)) + chunk(b"IDAT", zlib.compress(raw))
                  + chunk(b"IEND", b""))
    from lic.imageio import read_image

    with pytest.warns(UserWarning, match="8 bits"):
        enc, dec = encode_decode(read_image(p), tiny, 1)
    assert dec.mode == "LA" and dec.size == (w, h)
    assert np.array_equal(np.asarray(dec)[..., 1], np.where(g == 18000, 0, 255))


def test_32bit_values_beyond_16_bits_are_scaled_not_clipped(tiny):
    a = (np.arange(40 * 48).reshape(40, 48) * 127 % 245001).astype(np.int32)  # 0..245,000: 18 bits
    with pytest.warns(UserWarning, match="0..262,143 scaled to 0..255"):
        enc, dec = encode_decode(Image.fromarray(a, "I"), tiny, 3)
    from lic.imageio import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coded = prepare(Image.fromarray(a, "I")).rgb[..., 0]
    assert np.array_equal(coded, np.round(a * (255 / 262143)).astype(np.uint8))  # 245,000 -> 238: scaled, not clipped


def test_exif_orientation_is_applied(tiny, tmp_path, photos):
    img = photos["chelsea"]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif.tobytes(), quality=95)
    from lic.imageio import read_image

    dec = lic.decompress(lic.compress(read_image(p), model=tiny), model=tiny)
    assert dec.size == (img.size[1], img.size[0])


@pytest.mark.parametrize("ext, plugin", [(".heic", "pillow_heif"), (".jxl", "pillow_jxl")])
def test_heic_and_jpeg_xl_files_are_read_and_written_where_their_plugins_are(tiny, tiny_weights, photos, tmp_path,
                                                                            monkeypatch, ext, plugin):
    pytest.importorskip(plugin, reason=f"{plugin} is not installed (pip install lic[all])")
    from lic.cli import main
    from lic.imageio import read_image

    folder = tmp_path / "photos"
    folder.mkdir()
    src = folder / f"phone{ext}"
    photos["coffee"].save(src, quality=90)
    w = str(tiny_weights)
    assert main(["compress", str(folder), "-o", str(tmp_path / "lic"), "--model", w, "--quiet"]) == 0  # listed
    assert main(["decompress", str(tmp_path / "lic" / "phone.lic"), "-o", str(tmp_path / f"back{ext}"),
                 "--model", w, "--quiet"]) == 0
    with Image.open(tmp_path / f"back{ext}") as back:
        assert back.size == photos["coffee"].size
    # without the plugin, the error names the package that reads the format
    fmt = "HEIF" if ext == ".heic" else "JXL"
    monkeypatch.delitem(Image.OPEN, fmt)
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != fmt])
    package = "pillow-heif" if ext == ".heic" else "pillow-jxl-plugin"
    with pytest.raises(InputError, match=f"phone{ext}: not a readable image \\(its format needs the {package} "
                                         f"package: pip install {package}\\)"):
        read_image(src)


def test_api_accepts_paths_arrays_and_file_bytes(tiny, photo_file):
    a = lic.decompress(lic.compress(photo_file, model=tiny), model=tiny)
    b = lic.decompress(lic.compress(np.asarray(Image.open(photo_file)), model=tiny), model=tiny)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert lic.compress(photo_file.read_bytes(), model=tiny) == lic.compress(photo_file, model=tiny)
    with pytest.raises(InputError, match="not a readable image") as bad:
        lic.compress(b"not an image", model=tiny)
    assert "BytesIO" not in str(bad.value)  # the message names no Python object
    # the .lic file's path decodes as its bytes do
    lic_file = photo_file.with_suffix(".lic")
    lic_file.write_bytes(lic.compress(photo_file, model=tiny))
    assert np.array_equal(np.asarray(lic.decompress(lic_file, model=tiny)), np.asarray(a))
    assert np.array_equal(np.asarray(lic.decompress(str(lic_file), model=tiny)), np.asarray(a))
    with pytest.raises(InputError, match="no such file"):
        lic.decompress(photo_file.with_suffix(".none"))
    # an H×W×1 array is grey; other shapes, dtypes and objects are refused in one line
    grey = np.asarray(Image.open(photo_file).convert("L"))
    assert lic.compress(grey[..., None], model=tiny) == lic.compress(grey, model=tiny)
    for wrong, message in ((np.zeros((8, 8, 5), np.uint8), "got uint8 8×8×5"),
                           (np.zeros((8, 8, 3)), "got float64 8×8×3"),
                           (5, "got int"), (None, "got NoneType")):
        with pytest.raises(InputError, match=message):
            lic.compress(wrong, model=tiny)


def test_api_arguments_of_the_wrong_type_are_refused_in_one_line(tiny, photos):
    img = photos["coffee"]
    for kwargs, message in ((dict(quality=1.5), "quality must be an integer, got 1.5"),
                            (dict(quality="2"), "quality must be an integer, got '2'"),
                            (dict(refine=1.5), "refine must be an integer, got 1.5"),
                            (dict(bpp="1"), "bpp must be a number, got '1'"),
                            (dict(iterations=True), "iterations must be an integer, got True"),
                            (dict(exact="no"), "exact must be True or False, got 'no'")):
        with pytest.raises(InputError, match=message):
            lic.compress(img, model=tiny, **kwargs)
    assert lic.compress(img, model=tiny, quality=np.int64(2)) == lic.compress(img, model=tiny, quality=2)
    assert lic.compress(img, model=tiny, refine=None) == lic.compress(img, model=tiny)
    small = img.crop((0, 0, 40, 30))
    assert lic.compress(small, model=None) == lic.compress(small)  # None: the default model
    data = lic.compress(img, model=tiny)
    for wrong in (None, img, 5, np.zeros(4, np.uint8)):
        with pytest.raises(InputError, match="expected the bytes of a .lic file or its path, got "):
            lic.decompress(wrong, model=tiny)
    with pytest.raises(InputError, match="layers must be an integer, got 2.5"):
        lic.decompress(data, model=tiny, layers=2.5)
    with pytest.raises(ModelError, match="not a safetensors weights file"):
        lic.load_model(__file__)  # any file that is not weights


def test_other_weights_are_refused_by_name(tiny_weights, photos):
    data = lic.compress(photos["coffee"], model=str(tiny_weights))
    with pytest.raises(ModelError, match="not installed"):
        lic.decompress(data)  # 'tiny-test' is not a shipped model
    with pytest.raises(ModelError, match="made with model 'tiny-test' .*, not with 'bmshj2018-hyperprior'"):
        lic.decompress(data, model=lic.load_model())
    from lic import zoo

    ours = zoo.load_weights(tiny_weights)  # not the cached object lic.load_model shares
    ours._lic_digest = bytes(8)  # the same name, other weights
    with pytest.raises(ModelError, match="other weights of 'tiny-test' .* given 0000000000000000.*--model PATH"):
        lic.decompress(data, model=ours)


def test_truncated_and_corrupted_files_are_refused(tiny, photos):
    data = lic.compress(photos["coffee"], model=tiny)
    for cut in (len(data) - 1, len(data) // 2, 30):
        with pytest.raises(FormatError):
            lic.decompress(data[:cut], model=tiny)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(FormatError, match="checksum"):
        lic.decompress(bytes(bad), model=tiny)


def test_file_size_matches_model_estimate(photos):
    """Real bytes vs what the model says they cost.

    * the coder achieves the ideal code length of the integer tables (within 0.5 %);
    * the file is never more than 1 % larger than the model's continuous estimate
      (−Σ log2 p in eval mode).  The estimate can only be pessimistic: latents far
      outside their table are charged the likelihood floor (~30 bits) but coded as
      escapes (~27 bits).  The Kodak benchmark reports the measured ratio.
    """
    from lic.imageio import to_tensor

    model = lic.load_model()
    img = photos["astronaut"]
    for q in model.qualities:
        enc = codec.encode(img, model=model, quality=q)
        with torch.no_grad():
            out = model(to_tensor(np.asarray(img)), q)
        est_bytes = sum((-torch.log2(l)).sum().item() for l in out["likelihoods"].values()) / 8
        f = codec.read_header(enc.data)
        payload = sum(len(c) for c in f.model_chunks())
        ideal = enc.table_bits / 8
        assert abs(payload - ideal) <= 0.005 * ideal + 16, (q, payload, ideal)
        assert payload <= est_bytes * 1.01 + 8, (q, payload, est_bytes)
        assert len(enc.data) - payload < 80  # header and chunk framing


DETERMINISM = r"""
import sys, hashlib, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
import lic
if sys.argv[2] == "kept":
    from lic.runtime import keep_freed_memory
    assert keep_freed_memory() or not sys.platform.startswith("linux")
from skimage import data
from PIL import Image
img = Image.fromarray(np.ascontiguousarray(data.astronaut()[:200, :300]))
out = []
for q in (1, 4):
    b = lic.compress(img, quality=q)
    d = lic.decompress(b)
    out.append(hashlib.sha256(b).hexdigest() + ":" + hashlib.sha256(np.asarray(d).tobytes()).hexdigest())
print(" ".join(out))
"""


def test_same_file_and_image_whatever_the_thread_count():
    """... and whether freed memory is kept for reuse (what the lic command does, lic.runtime)."""
    runs = [subprocess.run([sys.executable, "-c", DETERMINISM, str(n), mem], capture_output=True, text=True, check=True)
            for n, mem in ((1, "default"), (2, "default"), (2, "kept"))]
    assert runs[0].stdout.strip() and runs[0].stdout == runs[1].stdout == runs[2].stdout


WHOLE_PHOTO = r"""
import sys, hashlib, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
import lic
from skimage import data
b = lic.compress(data.astronaut(), model=sys.argv[1], quality=3)
d = lic.decompress(b, model=sys.argv[1])
print(hashlib.sha256(b).hexdigest(), hashlib.sha256(np.asarray(d).tobytes()).hexdigest())
"""


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "attention-hyperprior"])
def test_shipped_transform_models_code_a_whole_photo_the_same_at_1_and_2_threads(name):
    """A 512x512 photo through the shipped weights: large enough that a convolution backend whose sums
    depend on the thread count shows it (PyTorch's native one changed 9-20 samples of an
    attention-hyperprior decode on an Intel host; lic.models.base.coding)."""
    runs = [subprocess.run([sys.executable, "-c", WHOLE_PHOTO, name, str(n)], capture_output=True, text=True,
                           check=True) for n in (1, 2)]
    assert runs[0].stdout.strip() and runs[0].stdout == runs[1].stdout


def test_coding_computes_the_training_function(tiny, photos):
    """Coding runs the transforms channels-last, GDN in place: the same function as the training pass
    (to float rounding); the weights keep their values and can still be trained afterwards."""
    from lic import zoo
    from lic.imageio import from_tensor, to_tensor

    x = to_tensor(np.asarray(photos["chelsea"]))
    digest = zoo.state_digest(tiny.state_dict())
    coded = codec.encode(photos["chelsea"], model=tiny, quality=2, reconstruct=True)  # in inference mode
    with torch.enable_grad():
        out = tiny(x, 2)  # eval mode: ŷ is rounded, as in coding
        out["x_hat"].square().mean().backward()
    assert all(p.grad is not None for p in tiny.g_a.parameters())
    tiny.zero_grad(set_to_none=True)
    trained = from_tensor(out["x_hat"])
    assert trained.shape == np.asarray(coded.reconstruction).shape
    assert np.abs(trained.astype(int) - np.asarray(coded.reconstruction).astype(int)).max() <= 1
    assert zoo.state_digest(tiny.state_dict()) == digest


def test_16bit_rgb_png_is_reduced_with_warning(tiny, tmp_path):
    """Pillow opens 48-bit PNGs as 8-bit RGB silently; lic says so."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = 9, 11
    a = (np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3) * 199 % 65536).astype(">u2")
    raw = b"".join(b"\0" + a[i].tobytes() for i in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    p = tmp_path / "rgb48.png"
    p.write_bytes(png)
    from lic.imageio import read_image

    with pytest.warns(UserWarning, match="16-bit per channel"):
        img = read_image(p)
    enc, dec = encode_decode(img, tiny, 1)
    assert dec.mode == "RGB" and dec.size == (w, h)


def test_saving_the_same_weights_twice_gives_the_same_bytes(tmp_path):
    """Weights files are reproducible: same tensors and metadata, same bytes (and they load as before)."""
    from lic import zoo
    from lic.models import ScaleHyperprior

    torch.manual_seed(1)
    m = ScaleHyperprior(N=8, M=12, lambdas=(0.01, 0.02)).eval()
    extra = {f"k{i}": {"v": i, "text": "λ — 5 %"} for i in range(6)}
    paths = [tmp_path / f"w{i}.safetensors" for i in range(3)]
    digests = [zoo.save_weights(m, p, name="tiny-test", card="# card — λ\n", extra=extra) for p in paths]
    assert len(set(digests)) == 1
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()
    loaded = zoo.load_weights(paths[0])
    assert loaded._lic_digest == digests[0] and loaded.meta["k3"] == json.dumps(extra["k3"])


def test_threads_coding_at_once_decode_as_one_after_another(photos):
    """Models that code on different convolution backends (a process-wide switch), used from four threads at
    once: every file still decodes to its encoder's reconstruction, the files are those made one after another,
    one model is loaded once, and the switch is left as it was."""
    from concurrent.futures import ThreadPoolExecutor

    lic.zoo._load_cached.cache_clear()
    with ThreadPoolExecutor(4) as ex:
        models = list(ex.map(lic.load_model, ["toderici2017-rnn"] * 4))
    assert all(m is models[0] for m in models)
    models = [models[0], lic.load_model("bmshj2018-hyperprior")]
    images = [photos[k].crop((40, 60, 136, 124)) for k in ("astronaut", "coffee", "chelsea")]
    jobs = [(m, im) for im in images for m in models] * 2

    def job(args):
        m, im = args
        enc = codec.encode(im, model=m, quality=2, reconstruct=True)
        return enc.data, np.array_equal(np.asarray(codec.decode(enc.data)), np.asarray(enc.reconstruction))

    before = torch.backends.mkldnn.enabled
    alone = [job(j) for j in jobs]
    with ThreadPoolExecutor(4) as ex:
        together = list(ex.map(job, jobs))
    assert all(same for _, same in alone + together)
    assert [d for d, _ in together] == [d for d, _ in alone]
    assert torch.backends.mkldnn.enabled == before


def _with_chunks(data: bytes, chunks, **header) -> bytes:
    """A file whose checksums match but whose contents lie: ``data``'s header (fields replaced) and ``chunks``."""
    from lic import container

    f = container.read(data)
    for k, v in header.items():
        setattr(f.header, k, v)
    return container.write(f.header, chunks)


def test_hostile_files_with_matching_checksums_get_one_line_errors(photos, tmp_path, monkeypatch):
    """Files made to lie (their checksums recomputed), from an audit of hostile .lic files: each is refused as a
    lic error before it costs memory, or decodes without leaking a numpy warning."""
    import struct
    import zlib

    from lic.container import CHUNK_ALPHA, CHUNK_ICC, CHUNK_MODEL, Chunk

    img = photos["coffee"].crop((0, 0, 64, 48))
    data = lic.compress(img, quality=1)
    model_chunks = [c for c in lic.container.read(data).chunks if c.kind == CHUNK_MODEL]
    # a header naming a weights file by path: never loaded (a header is data), and a file named like an installed
    # model in the current folder does not shadow it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelError, match="needs model 'evil.safetensors', which is not installed"):
        lic.decompress(_with_chunks(data, model_chunks, model="evil.safetensors"))
    (tmp_path / "bmshj2018-hyperprior").write_bytes(b"not weights")
    assert lic.decompress(lic.compress(img, model="bmshj2018-hyperprior", quality=1)).size == img.size
    with pytest.raises(FormatError, match="control characters"):
        lic.decompress(_with_chunks(data, model_chunks, model="bmshj\n2018\x1b[31m"))
    # an ICC chunk that unpacks to 32 MB (a zlib bomb)
    fake = bytearray(200)
    fake[16:20], fake[36:40] = b"RGB ", b"acsp"
    bomb = zlib.compress(bytes(fake) + bytes(1 << 25), 9)
    with pytest.raises(FormatError, match="ICC profile chunk unpacks to more than"):
        lic.decompress(_with_chunks(data, [Chunk(CHUNK_ICC, bomb)] + model_chunks))
    # an alpha PNG claiming 60000 x 60000 pixels (beyond Pillow's bomb limit) and 20000 x 20000 (below it)
    def png(w, h):
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(1 + w // 8))) + chunk(b"IEND", b""))

    rgba = lic.compress(img.convert("RGBA"), quality=1)
    for side in (60000, 20000):
        with pytest.raises(FormatError, match="alpha"):
            lic.decompress(_with_chunks(rgba, [Chunk(CHUNK_ALPHA, png(side, side))] + model_chunks))
    # latents escaped far beyond any table (they wrapped around int32 with a numpy overflow warning)
    q6 = lic.compress(photos["coffee"].crop((0, 0, 96, 64)), quality=6)
    ff = [Chunk(CHUNK_MODEL, b"\xff" * len(c.data)) for c in lic.container.read(q6).chunks]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # decoded without a warning, then refused: the stream does not end where its values do
        with pytest.raises(FormatError, match="does not end where its values do"):
            lic.decompress(_with_chunks(q6, ff))
