"""Background photos for `BackgroundReplace` (models/layers/background_replace.py): a folder of
photos without leaves decoded into a bank of random square crops at the model's image size.
NumPy and Pillow only; the layer puts the bank on the device."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from leafsearch.data.folder import IMAGE_EXTENSIONS

BANK = 256  # background crops kept on the device, at the model's image size
CROP = (0.4, 1.0)  # a crop's side, as a share of its photo's shorter side


def photo_bank(folder: str, size: int, seed: int = 0):
    """`BANK` square crops of the images of `folder` (searched recursively), uint8 `(BANK, size,
    size, 3)` (a quarter of float32's memory on the device): each a window of a random `CROP`
    share of a photo's shorter side, at a random place, resized to `size`; the photos in turn (a random `BANK` of them when there are more).
    A practitioner brings a handful of photos, not hundreds: whole, they would be a handful of
    backgrounds; cropped, each gives many (the random-sized crops of Szegedy et al. 2015,
    arXiv:1409.4842, which Keras' RandomCrop does only at one size and inside the model)."""
    rng = np.random.default_rng(seed)
    paths = sorted(p for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(paths) > BANK:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), BANK, replace=False))]
    # No photo is kept larger than its smallest crop needs (`size` px): a folder of camera photos
    # would otherwise sit decoded at full resolution until the crops are cut.
    limit = math.ceil(size / CROP[0])
    photos = []
    for path in paths:
        try:
            with Image.open(path) as image:
                photo = image.convert("RGB")
        except OSError:
            continue
        scale = limit / min(photo.size)
        if scale < 1.0:
            photo = photo.resize(
                (max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.BILINEAR
            )
        photos.append(photo)
    if not photos:
        raise ValueError(f"backgrounds {folder}: no readable image in it; pass a folder of background photos")
    bank = np.empty((BANK, size, size, 3), dtype=np.uint8)
    for i in range(BANK):
        photo = photos[i % len(photos)]
        side = max(1, round(min(photo.size) * rng.uniform(*CROP)))
        left, top = int(rng.integers(photo.width - side + 1)), int(rng.integers(photo.height - side + 1))
        bank[i] = np.asarray(photo.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side)))
    return bank
