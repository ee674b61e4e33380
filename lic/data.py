"""Training data: random crops from a folder of images, decoded in DataLoader workers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


class CropDataset(Dataset):
    def __init__(self, folder: str | Path, crop: int = 256, length: int | None = None):
        self.files = list_images(folder)
        if not self.files:
            from .errors import InputError

            raise InputError(f"no images found in {folder}")
        self.crop = crop
        self.length = length or len(self.files)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i % len(self.files)]
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            c = self.crop
            if min(w, h) < c:  # upscale tiny images so that a crop fits
                s = c / min(w, h)
                im = im.resize((max(c, round(w * s)), max(c, round(h * s))), Image.BICUBIC)
                w, h = im.size
            x0, y0 = random.randint(0, w - c), random.randint(0, h - c)
            im = im.crop((x0, y0, x0 + c, y0 + c))
        a = np.asarray(im, dtype=np.uint8)
        if random.random() < 0.5:
            a = a[:, ::-1]
        return torch.from_numpy(a.copy()).permute(2, 0, 1)  # uint8; scaled on the device
