"""Training data: random crops from a folder of images, decoded in DataLoader workers.

Any folder a user points ``lic train`` at may hold files that are not images, or are broken: files that
Pillow cannot identify are left out when the folder is listed (with one warning that names them), and a
file that fails later, while it is decoded, is replaced by another one (with a warning), so that one bad
photo among thousands does not stop a run."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from . import formats

formats.register()  # a folder lists the HEIC and JPEG XL files lic reads where their plugins are installed

#: still-image formats a folder is searched for besides the usual ones, where this Pillow reads them (not
#: Pillow's stubs and odd formats: video, PostScript, HDF5, GRIB, metafiles)
_MORE_EXTS = {".gif", ".apng", ".tga", ".qoi", ".jp2", ".j2k", ".jpx", ".jpf", ".j2c", ".jpc", ".pnm", ".pbm",
              ".jfif", ".jpe", ".ico", ".dds", ".sgi", ".pcx", ".psd", ".dib", ".avif", ".avifs", ".heic", ".heif",
              ".jxl"}


def _readable_extensions() -> frozenset[str]:
    """The extensions of :data:`_MORE_EXTS` that Pillow (with the plugins imported so far) has a reader for, so
    that a folder holds the images ``lic compress`` reads one by one."""
    Image.init()
    return frozenset(e for e, fmt in Image.registered_extensions().items() if e in _MORE_EXTS and fmt in Image.OPEN)


IMAGE_EXTS = _readable_extensions() | {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}
_BAD_IMAGE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what Pillow raises on bad files


def walk_files(folder: str | Path, suffixes) -> list[Path]:
    """The files under ``folder`` whose lower-cased suffix is in ``suffixes``, sorted, searched recursively.
    Symbolic links to folders are followed (a folder of links to data sets is a common layout), each real folder
    once, so a link loop ends."""
    seen, found = set(), []
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []  # a loop, or a folder reached twice: its files are listed already
            continue
        seen.add(real)
        found += [Path(root, f) for f in files if Path(f).suffix.lower() in suffixes and os.path.isfile(Path(root, f))]
    return sorted(found)


def list_images(folder: str | Path) -> list[Path]:
    return walk_files(folder, IMAGE_EXTS)


def display_name(path: Path, folder: str | Path | None = None) -> str:
    """How results name an image: its path relative to the folder searched (two ``x.png`` in different
    sub-folders stay apart), with bytes that are not UTF-8 written as ``\\xNN`` so that CSV and JSON files
    can hold the name."""
    rel = path.relative_to(folder) if folder is not None else path
    return rel.as_posix().encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def readable_images(folder: str | Path) -> list[Path]:
    """The images of ``folder`` (recursively) whose headers Pillow can read; the others are skipped with a
    warning.  Raises InputError when none is left."""
    from .errors import InputError

    files, bad = [], []
    for p in list_images(folder):
        try:
            with Image.open(p) as im:  # reads the header only
                w, h = im.size
            if w < 1 or h < 1:
                raise ValueError("no pixels")
            files.append(p)
        except _BAD_IMAGE as exc:
            bad.append((p, exc))
    if bad:
        p, exc = bad[0]
        warnings.warn(f"skipping {len(bad)} unreadable file{'s' if len(bad) > 1 else ''} in {folder} (first: {p}: "
                      f"{exc.__class__.__name__})", stacklevel=2)
    if not files:
        raise InputError(f"no {'readable ' if bad else ''}images found in {folder}")
    return files


def _rgb(im: Image.Image) -> np.ndarray:
    """8-bit RGB pixels of any Pillow image (16-bit and float images scaled, not clipped)."""
    if im.mode.startswith("I") or im.mode == "F":
        from .imageio import _to_8bit

        return np.repeat(_to_8bit(im)[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


class CropDataset(Dataset):
    def __init__(self, folder: str | Path, crop: int = 256, length: int | None = None):
        self.files = readable_images(folder)
        self.crop = crop
        self.length = length or len(self.files)
        self._failed: set[Path] = set()  # per worker process: files already warned about

    def __len__(self) -> int:
        return self.length

    #: undecodable images named one by one in each worker; those after are skipped without a warning each
    NAMED_FAILURES = 3

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i % len(self.files)]
        while True:
            if path not in self._failed:
                try:
                    return self._crop(path)
                except _BAD_IMAGE as exc:
                    self._failed.add(path)
                    if len(self._failed) <= self.NAMED_FAILURES:
                        more = ("; further ones are skipped without a warning each"
                                if len(self._failed) == self.NAMED_FAILURES else "")
                        warnings.warn(f"training image {path} cannot be decoded ({exc.__class__.__name__}); using "
                                      f"others{more}", stacklevel=2)
            if len(self._failed) >= len(self.files):
                raise self._none_decodes()
            path = random.choice(self.files)
            if path in self._failed and len(self._failed) > len(self.files) // 2:  # mostly broken: pick among the rest
                path = random.choice([p for p in self.files if p not in self._failed])

    def _none_decodes(self):
        from .errors import InputError

        return InputError(f"no training image could be decoded ({len(self._failed)} of {len(self.files)} tried "
                          f"failed)")

    def check_decodable(self) -> None:
        """Decode images in order until one works (InputError if none does): a folder whose every image is
        broken is refused before a run starts, in the main process, not by a DataLoader worker later.  The
        random state is left as it was, so a run's crops do not depend on this check."""
        state = random.getstate()
        try:
            for path in self.files:
                try:
                    self._crop(path)
                    return
                except _BAD_IMAGE:
                    self._failed.add(path)
            raise self._none_decodes()
        finally:
            random.setstate(state)
            self._failed.clear()  # each worker warns about the files it meets

    def _crop(self, path: Path) -> torch.Tensor:
        with Image.open(path) as src, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 16-bit and float images reduced to 8 bits: expected in training data
            src.load()
            im = ImageOps.exif_transpose(src)  # the photo as it is shown, as lic compress and lic eval read it
            im = im if im.mode == "RGB" else Image.fromarray(_rgb(im))
            w, h = im.size
            c = self.crop
            if min(w, h) < c:  # a small image: a square of its short side, upscaled to the crop (only that square)
                m = min(w, h)
                x0, y0 = random.randint(0, w - m), random.randint(0, h - m)
                im = im.crop((x0, y0, x0 + m, y0 + m)).resize((c, c), Image.BICUBIC)
                w, h = c, c
            x0, y0 = random.randint(0, w - c), random.randint(0, h - c)
            a = np.asarray(im.crop((x0, y0, x0 + c, y0 + c)), dtype=np.uint8)
        if random.random() < 0.5:
            a = a[:, ::-1]
        return torch.from_numpy(a.copy()).permute(2, 0, 1)  # uint8; scaled on the device
