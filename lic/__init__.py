"""lic — learned image compression that writes real files.

>>> import lic
>>> from PIL import Image
>>> data = lic.compress(Image.open("photo.png"), quality=3)   # bytes of a .lic file
>>> image = lic.decompress(data)                                # PIL.Image, same size (RGB, L, RGBA or LA)
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

DEFAULT_MODEL = "bmshj2018-hyperprior"


def _as_image(image):
    from PIL import Image

    if isinstance(image, Image.Image):
        from PIL import ImageOps

        return ImageOps.exif_transpose(image)
    if isinstance(image, (str, Path)):
        from .imageio import read_image

        return read_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):  # the bytes of an image file
        from .imageio import read_image_bytes

        return read_image_bytes(bytes(image), "image bytes")
    import numpy as np

    from .errors import InputError

    if not hasattr(image, "__array__") and not isinstance(image, (list, tuple)):
        raise InputError(f"expected a PIL image, a path, the bytes of an image file or a uint8 array, "
                         f"got {type(image).__name__}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        shape = "×".join(map(str, a.shape)) or "scalar"
        raise InputError(f"numpy images must be uint8 H×W, H×W×3 or H×W×4 arrays, got {a.dtype} {shape}")
    return Image.fromarray(a)


def _check_args(**kwargs) -> None:
    """API arguments of the wrong type are refused here with an InputError, not deep inside the coder: counts
    (quality, iterations, layers, refine) must be integers, targets (bpp, psnr) real numbers, ``exact`` a bool;
    None = not given."""
    import numbers

    import numpy as np

    from .errors import InputError

    for name, v in kwargs.items():
        if v is None:
            continue
        if name in ("bpp", "psnr"):
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool)
            want = "a number"
        elif name == "exact":
            ok, want = isinstance(v, (bool, np.bool_)), "True or False"
        else:
            ok = isinstance(v, numbers.Integral) and not isinstance(v, bool)
            want = "an integer"
        if not ok:
            raise InputError(f"{name} must be {want}, got {v!r}")


def compress(image, model=DEFAULT_MODEL, quality: int | None = None, *, iterations: int | None = None,
             bpp: float | None = None, psnr: float | None = None, refine: int = 0, exact: bool = False,
             metadata="none", device=None) -> bytes:
    """Compress a PIL image, a path, the bytes of an image file or a uint8 array into the bytes of a ``.lic`` file.
    ``model``: a name (see ``lic models``), a weights path, a loaded model, or None for the default.

    Rate control (one of): ``iterations`` (progressive models: stop after K), ``bpp``
    (the most iterations / highest quality whose file fits the budget, header included),
    ``psnr`` (the fewest iterations / lowest quality that reach it; else the best).
    ``refine``: N steps of encoder-side search for the latents (:mod:`lic.models.refine`), or for the bits of
    the progressive binary toderici2017-rnn* (:mod:`lic.models.refine_bits`): a smaller file at the same
    quality for a much longer encode (README); decoding is unchanged.
    ``exact``: a file whose decoded pixels are the same on every machine (:mod:`lic.layers.exact`), decoded in
    about 4x the time.
    ``metadata``: the input's EXIF / XMP to keep in the file: "none" (default), "all", "exif", "xmp" or
    "exif,xmp" (:mod:`lic.metadata`); :func:`decompress` returns them in ``image.info``.
    ``device``: where a model given by name runs its networks (see :func:`load_model`).
    """
    _check_args(quality=quality, iterations=iterations, bpp=bpp, psnr=psnr, refine=refine, exact=exact)
    from .metadata import parse_keep

    keep = parse_keep(metadata)
    refine = refine or 0  # None: no refinement
    model = DEFAULT_MODEL if model is None else model
    if device is not None and isinstance(model, (str, Path)):
        model = load_model(model, device=device)
    if iterations is None and bpp is None and psnr is None:
        from .codec import encode

        return encode(_as_image(image), model=model, quality=quality, refine=refine, exact=exact, metadata=keep).data
    if quality is not None:
        from .errors import InputError

        raise InputError("quality and iterations/bpp/psnr exclude each other")
    from .ratecontrol import encode as encode_rate

    return encode_rate(_as_image(image), model, iterations=iterations, bpp=bpp, psnr=psnr, refine=refine,
                       exact=exact, metadata=keep).data


def decompress(data, model=None, layers: int | None = None, device=None):
    """Decode ``.lic`` bytes (or the ``.lic`` file at a path) into a PIL image of the original size, in the mode
    it was coded as (RGB, L, RGBA or LA: :mod:`lic.imageio` lists how every input mode maps to these), with
    the ICC profile and any EXIF / XMP the file keeps in ``image.info``;
    ``layers``: progressive models, the first K iterations / layers only; ``device``: see :func:`load_model`."""
    from .codec import decode

    _check_args(layers=layers)
    if isinstance(data, (str, Path)):
        from .errors import InputError

        path = Path(data)
        if not path.is_file():
            raise InputError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}")
        data = path.read_bytes()
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        from .errors import InputError

        raise InputError(f"expected the bytes of a .lic file or its path, got {type(data).__name__}")
    return decode(bytes(data), model=model, layers=layers, device=device)


def load_model(name: str = DEFAULT_MODEL, device=None):
    """A shipped model by name (see ``lic models``) or a weights file by path.  ``device`` ("cuda", "cuda:1"; default
    the CPU): where its networks run; pass the model to :func:`compress` / :func:`decompress`.  The entropy coding
    stays on the CPU in integers, so a file made on one device decodes on any other; only float rounding differs
    between devices (an encoder's latents may round differently, and so may the pixels of a decode that is not
    ``exact``)."""
    from .zoo import load_model as _load

    return _load(name, device=device)


def list_models() -> list[str]:
    from .zoo import shipped

    return list(shipped())


__all__ = ["compress", "decompress", "load_model", "list_models", "DEFAULT_MODEL", "__version__"]
