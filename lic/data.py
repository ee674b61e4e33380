"""Training data: random crops from a folder of images, decoded in DataLoader workers.

Any folder a user points ``lic train`` at may hold files that are not images, or are broken: files that
Pillow cannot identify are left out when the folder is listed (with one warning that names them), and a
file that fails later, while it is decoded, is replaced by another one (with a warning), so that one bad
photo among thousands does not stop a run."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

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


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


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

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i % len(self.files)]
        for _ in range(100):
            if path not in self._failed:
                try:
                    return self._crop(path)
                except _BAD_IMAGE as exc:
                    self._failed.add(path)
                    warnings.warn(f"training image {path} cannot be decoded ({exc.__class__.__name__}); "
                                  "using others", stacklevel=2)
            path = random.choice(self.files)
        raise self._none_decodes()

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
        with Image.open(path) as src:
            src.load()
            im = src if src.mode == "RGB" else Image.fromarray(_rgb(src))
            w, h = im.size
            c = self.crop
            if min(w, h) < c:  # upscale tiny images so that a crop fits
                s = c / min(w, h)
                im = im.resize((max(c, round(w * s)), max(c, round(h * s))), Image.BICUBIC)
                w, h = im.size
            x0, y0 = random.randint(0, w - c), random.randint(0, h - c)
            a = np.asarray(im.crop((x0, y0, x0 + c, y0 + c)), dtype=np.uint8)
        if random.random() < 0.5:
            a = a[:, ::-1]
        return torch.from_numpy(a.copy()).permute(2, 0, 1)  # uint8; scaled on the device
