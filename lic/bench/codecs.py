"""Registry of the codecs the benchmark can run.

A :class:`Codec` is a name, a list of *settings* (short strings such as
``q50`` or ``r48``, so they read well in a CSV), ``encode(img, setting) ->
bytes`` and ``decode(bytes) -> img``.  The bytes are exactly what would be
written to disk (container and headers included), so ``len(bytes)`` is the
real file size.

The default settings of every classical codec are a quality sweep chosen to
cover roughly 0.1–2 bpp on Kodak (768×512 photos); JPEG cannot go much
below 0.2 bpp there.  A spec may override them: ``jpeg@q10/q20/q40``.

Codec specs:

* ``jpeg``, ``jpeg444``, ``webp``, ``avif``, ``avif444``, ``j2k`` — Pillow;
* ``jxl`` — pillow-jxl-plugin;
* ``heic``, ``heic444`` — pillow-heif (x265 HEVC intra; the stand-in for BPG);
* ``bpg``, ``bpg444`` — ``bpgenc``/``bpgdec`` binaries, when on PATH;
* ``vtm`` — VVC intra with ``vvencFFapp``/``vvdecapp``, when on PATH;
* ``lic:MODEL`` — this package's learned codec, one setting per model quality.

A codec whose library or binary is missing is not an error: :func:`resolve`
returns it in a "skipped" list with a one-line reason, and the run goes on.

Library threading is pinned to one thread where the library lets us (AVIF,
JPEG XL), so timings are comparable and the benchmark stays polite on a
shared machine; x265 (HEIC) keeps its own defaults.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable

from PIL import Image

from ..errors import InputError, ModelError
from . import external

SPEC_HELP = (
    "comma-separated codec specs, e.g. lic:bmshj2018-hyperprior,jpeg,webp,avif; "
    "CODEC@S1/S2/... picks settings (jpeg@q10/q50)"
)


@dataclass(frozen=True)
class Codec:
    """One codec of the benchmark (see the module docstring)."""

    name: str
    description: str
    settings: tuple[str, ...]
    encode: Callable[[Image.Image, str], bytes] = field(repr=False)
    decode: Callable[[bytes], Image.Image] = field(repr=False)
    parse: Callable[[str], object] = field(repr=False)
    missing: Callable[[], str | None] = field(repr=False, default=lambda: None)
    parallel_safe: bool = True  # False: run in the main process, one at a time (lic / torch models)
    #: +1 if a larger setting number gives more bits (quality), −1 if fewer (QP, ratio), 0 if the
    #: settings are a fixed list (lic models); lets ``lic compare`` search for a target bpp
    rate_direction: int = 1
    #: what the measurements depend on beyond name and setting (lic: the weights digest); ``lic bench``
    #: measures a codec again when it changed since the rows in a results folder were measured
    version: str = ""
    #: True when the settings were picked in the spec (``jpeg@q10/q50``): ``lic compare`` then chooses among
    #: them instead of searching the codec's whole knob
    picked: bool = False

    def with_settings(self, settings: list[str] | tuple[str, ...]) -> "Codec":
        for s in settings:
            self.parse(s)  # raises InputError on a malformed setting
        return replace(self, settings=tuple(dict.fromkeys(settings)), picked=True)  # each once (q30/q30)

    @property
    def spec(self) -> str:
        """A spec string that resolves to this codec with these settings (used across processes)."""
        return f"{self.name}@{'/'.join(self.settings)}"


# --- setting parsers ------------------------------------------------------------------------


def number_setting(prefix: str, lo: float, hi: float, kind=int) -> Callable[[str], object]:
    pattern = re.compile(rf"^{prefix}(-?\d+(\.\d+)?)$")

    def parse(setting: str):
        m = pattern.match(setting)
        if not m:
            raise InputError(f"bad setting {setting!r}: expected {prefix}<number>, e.g. {prefix}{kind((lo + hi) // 2)}")
        v = float(m.group(1))
        if kind is int:
            if not v.is_integer():
                raise InputError(f"bad setting {setting!r}: {prefix} takes an integer")
            v = int(v)
        if not lo <= v <= hi:
            raise InputError(f"bad setting {setting!r}: {prefix} must be in [{lo}, {hi}]")
        return v

    parse.knob = (prefix, lo, hi, kind)  # the numeric range, for searches over settings
    return parse


# --- Pillow-based codecs ----------------------------------------------------------------------


def _pil_encode(img: Image.Image, fmt: str, **opts) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **opts)
    return buf.getvalue()


def _pil_decoder(fmt: str) -> Callable[[bytes], Image.Image]:
    def decode(data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            im.load()
            return im.convert("RGB")

    return decode


def _need_feature(feature: str, what: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        from PIL import features

        return None if features.check(feature) else f"Pillow {Image.__version__} was built without {what}"

    return missing


@lru_cache(maxsize=None)
def _import_heif() -> str | None:
    try:
        import pillow_heif
    except ImportError:
        return "pillow-heif not installed (pip install pillow-heif)"
    pillow_heif.register_heif_opener()
    if "x265" not in str(pillow_heif.libheif_info().get("encoders", {})):
        return "pillow-heif has no x265 HEVC encoder"
    return None


@lru_cache(maxsize=None)
def _import_jxl() -> str | None:
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)
    except ImportError:
        return "pillow-jxl-plugin not installed (pip install pillow-jxl-plugin)"
    return None


def _qs(*values) -> tuple[str, ...]:
    return tuple(f"q{v}" for v in values)


def _jpeg(name: str, subsampling: int, label: str) -> Codec:
    parse = number_setting("q", 1, 100)
    return Codec(
        name=name,
        description=f"JPEG {label} (Pillow/libjpeg, default Huffman tables)",
        settings=_qs(5, 15, 30, 50, 75, 90),
        encode=lambda img, s: _pil_encode(img, "JPEG", quality=parse(s), subsampling=subsampling),
        decode=_pil_decoder("JPEG"),
        parse=parse,
    )


def _webp() -> Codec:
    parse = number_setting("q", 0, 100)
    return Codec(
        name="webp",
        description="WebP lossy (Pillow/libwebp, method 4, 4:2:0)",
        settings=_qs(0, 10, 30, 55, 80, 92),
        encode=lambda img, s: _pil_encode(img, "WEBP", quality=parse(s), method=4),
        decode=_pil_decoder("WEBP"),
        parse=parse,
        missing=_need_feature("webp", "WebP"),
    )


def _avif(name: str, subsampling: str) -> Codec:
    parse = number_setting("q", 0, 100)
    return Codec(
        name=name,
        description=f"AVIF {subsampling} (Pillow/libavif, speed 6, 1 thread)",
        settings=_qs(15, 30, 45, 60, 75, 88),
        encode=lambda img, s: _pil_encode(img, "AVIF", quality=parse(s), subsampling=subsampling, speed=6, max_threads=1),
        decode=_pil_decoder("AVIF"),
        parse=parse,
        missing=_need_feature("avif", "AVIF"),
    )


def _jxl() -> Codec:
    parse = number_setting("q", 0, 100)

    def encode(img, s):
        _import_jxl()
        return _pil_encode(img, "JXL", quality=parse(s), effort=7, num_threads=1)

    def decode(data):
        _import_jxl()
        return _pil_decoder("JXL")(data)

    return Codec(
        name="jxl",
        description="JPEG XL (pillow-jxl-plugin/libjxl, effort 7, 1 thread)",
        settings=_qs(0, 20, 50, 70, 85, 92),
        encode=encode,
        decode=decode,
        parse=parse,
        missing=_import_jxl,
    )


def _heic(name: str, chroma: str) -> Codec:
    parse = number_setting("q", 0, 100)

    def encode(img, s):
        _import_heif()
        return _pil_encode(img, "HEIF", quality=parse(s), chroma=chroma, enc_params={"x265:log-level": "error"})

    def decode(data):
        _import_heif()
        return _pil_decoder("HEIF")(data)

    return Codec(
        name=name,
        description=f"HEIC {chroma[0]}:{chroma[1]}:{chroma[2]} (pillow-heif, x265 HEVC intra, default preset)",
        settings=_qs(10, 20, 30, 40, 50, 60),
        encode=encode,
        decode=decode,
        parse=parse,
        missing=_import_heif,
    )


def _j2k() -> Codec:
    parse = number_setting("r", 1, 10000)
    # rate r = compression ratio against 24-bit RGB, so r240 ≈ 0.1 bpp, r12 ≈ 2 bpp
    return Codec(
        name="j2k",
        description="JPEG 2000 codestream (Pillow/OpenJPEG, 9/7 irreversible wavelet, MCT, rate = ratio to 24 bpp)",
        settings=tuple(f"r{r}" for r in (240, 120, 64, 32, 16, 12)),
        encode=lambda img, s: _pil_encode(
            img, "JPEG2000", quality_mode="rates", quality_layers=[parse(s)], irreversible=True, mct=1, no_jp2=True
        ),
        decode=_pil_decoder("JPEG2000"),
        parse=parse,
        rate_direction=-1,
        missing=_need_feature("jpg_2000", "JPEG 2000 (OpenJPEG)"),
    )


# --- the learned codec ---------------------------------------------------------------------------


def _lic(model: str) -> Codec:
    """``lic:MODEL``: one setting ``qN`` per quality the model ships."""
    parse = number_setting("q", 0, 1000)

    def missing() -> str | None:
        try:
            import lic

            lic.compress, lic.decompress, lic.load_model  # noqa: B018
        except (ImportError, AttributeError) as e:
            return f"the lic codec API is not importable ({e})"
        return None

    settings: tuple[str, ...] = ()
    loaded = []  # the model, loaded once: a weights path (not only a shipped name) then decodes too
    if missing() is None:
        import lic

        try:
            loaded.append(lic.load_model(model))
            settings = _qs(*loaded[0].qualities)
        except ModelError:
            raise
        except Exception as e:  # an unknown name may surface as KeyError etc.
            raise ModelError(f"cannot load model {model!r}: {e}") from e

    def encode(img, s):
        import lic

        return lic.compress(img, model=loaded[0] if loaded else model, quality=parse(s))

    def decode(data):
        import lic

        return lic.decompress(data, model=loaded[0] if loaded else None).convert("RGB")

    return Codec(
        name=f"lic:{model}",
        description=f"lic learned codec, model {model}",
        settings=settings,
        encode=encode,
        decode=decode,
        parse=parse,
        missing=missing,
        parallel_safe=False,
        rate_direction=0,
        version=_weights_version(loaded[0]) if loaded else "",
    )


def _weights_version(model) -> str:
    from ..models import CompressionModel
    from ..zoo import model_digest

    return "weights " + model_digest(model).hex() if isinstance(model, CompressionModel) else ""


# --- registry ------------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], Codec]] = {
    "jpeg": lambda: _jpeg("jpeg", 2, "4:2:0"),
    "jpeg444": lambda: _jpeg("jpeg444", 0, "4:4:4"),
    "webp": _webp,
    "avif": lambda: _avif("avif", "4:2:0"),
    "avif444": lambda: _avif("avif444", "4:4:4"),
    "jxl": _jxl,
    "heic": lambda: _heic("heic", "420"),
    "heic444": lambda: _heic("heic444", "444"),
    "j2k": _j2k,
    "bpg": lambda: external.bpg("bpg", "420"),
    "bpg444": lambda: external.bpg("bpg444", "444"),
    "vtm": external.vtm,
}

#: what ``--codecs classical`` expands to (external binaries included; they are skipped when absent)
CLASSICAL = ("jpeg", "jpeg444", "webp", "avif", "avif444", "jxl", "heic", "heic444", "j2k", "bpg", "bpg444", "vtm")


def names() -> list[str]:
    return list(_FACTORIES)


def get_codec(spec: str) -> Codec:
    """Build the codec of one spec (``jpeg``, ``jpeg@q10/q20``, ``lic:MODEL``); unknown → InputError."""
    spec = spec.strip()
    name, _, settings = spec.partition("@")
    if name.startswith("lic:"):
        if not name[4:]:
            raise InputError("codec spec 'lic:' needs a model name, e.g. lic:bmshj2018-hyperprior")
        codec = _lic(name[4:])
    elif name in _FACTORIES:
        codec = _FACTORIES[name]()
    else:
        raise InputError(f"unknown codec {name!r}; known: {', '.join(names())}, lic:MODEL")
    if "@" in spec and not settings.strip("/"):
        raise InputError(f"codec spec {spec!r} names no setting after '@' (e.g. {name}@{codec.settings[0] if codec.settings else 'q3'})")
    if settings:
        codec = codec.with_settings([s for s in settings.split("/") if s])
    return codec


def split_specs(text: str) -> list[str]:
    """``"lic:m,jpeg, webp"`` → ``["lic:m", "jpeg", "webp"]``; ``classical`` expands to every classical codec."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "classical":
            out.extend(CLASSICAL)
        elif part:
            out.append(part)
        elif text.strip():  # "jpeg,,webp": a codec left out by mistake, not quietly skipped
            raise InputError(f"empty codec name in {text!r}")
    if not out:
        raise InputError("no codec given")
    return out


def resolve(specs: list[str]) -> tuple[list[Codec], list[str]]:
    """Codecs ready to run, and one line per codec that is skipped (library/binary missing)."""
    codecs: list[Codec] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        codec = get_codec(spec)
        if codec.name in seen:
            raise InputError(f"codec {codec.name!r} given twice")
        seen.add(codec.name)
        reason = codec.missing()
        if reason:
            skipped.append(f"{codec.name}: skipped, {reason}")
        elif not codec.settings:
            skipped.append(f"{codec.name}: skipped, no settings")
        else:
            codecs.append(codec)
    return codecs, skipped


def library_versions() -> dict[str, str]:
    """Versions of the codec libraries, recorded in summary.json so results can be reproduced."""
    from PIL import features

    out = {"pillow": Image.__version__}
    for feat in ("jpg", "webp", "avif", "jpg_2000"):
        v = features.version(feat)
        if v:
            out[f"lib:{feat}"] = str(v)
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("pillow-heif", "pillow-jxl-plugin", "psnr-hvsm", "pytorch-msssim"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    if _import_heif() is None:
        import pillow_heif

        out["libheif"] = pillow_heif.libheif_info().get("libheif", "?")
    return out
