"""The leaf's mask, from the black background the seed's training photos were taken on, so that
background replacement (models/layers/background_replace.py) can put the leaf on something else.

A pixel is background when every channel is dark. A mask is only usable when the image really
has a black background: nearly all of its border dark, and the dark part neither tiny nor the
whole image. An image without one (a user's own photo) keeps its pixels: background replacement
leaves it as it is.

The masks travel with the images in-band, so the model's input stays an RGB image: in a
*marked* image background pixels are exactly 0 on every channel and no leaf pixel is (a leaf
pixel that happened to be pure black is lifted to 1), so the augmentation layer finds the
background by comparing with 0, on the accelerator, with nothing else to feed.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("leafsearch.data")

DARK = 32  # a channel value at or below this is dark (of 255): the seed's backgrounds sit near 0-20
BORDER = 0.06  # the outer ring, as a fraction of the side, that must be dark
BORDER_DARK = 0.9  # the share of the border that must be dark for a black background
LEAF_SHARE = (0.02, 0.95)  # the share of the image the leaf covers, for the mask to be believed


def leaf_masks(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(masks, usable) for uint8 images `(N, S, S, 3)`: masks `(N, S, S)` True on the leaf, and
    whether each image has a black background the mask can be trusted on."""
    images = np.asarray(images)
    dark = (images <= DARK).all(axis=-1)
    size = images.shape[1]
    ring = max(1, int(round(size * BORDER)))
    border = np.ones(images.shape[1:3], dtype=bool)
    border[ring:-ring, ring:-ring] = False
    border_dark = dark[:, border].mean(axis=1)
    leaf_share = 1.0 - dark.reshape(len(images), -1).mean(axis=1)
    usable = (border_dark >= BORDER_DARK) & (leaf_share >= LEAF_SHARE[0]) & (leaf_share <= LEAF_SHARE[1])
    return ~dark, usable


def marked(images: np.ndarray, masks: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """A copy of `images` with the background in-band (see the module's docstring): background
    pixels of usable images 0, every other pixel at least 1 on some channel."""
    out = np.array(images, dtype=np.uint8, copy=True)
    background = ~masks & usable[:, None, None]
    out[background] = 0
    black_leaf = (out == 0).all(axis=-1) & ~background
    out[black_leaf] = 1
    return out


class MarkedImages:
    """The images as `marked` would make them, batch by batch (no copy of the whole set): the
    input paths index it like the array they were given. Masks are computed once, here."""

    def __init__(self, images: np.ndarray):
        self.images = images
        self.masks, self.usable = leaf_masks(images)
        self.shape, self.dtype, self.ndim = images.shape, images.dtype, images.ndim
        if not self.usable.all():  # once, not per batch: they are left as they are, none is dropped
            log.warning(
                "%d of %d images have no black background: background replacement leaves them as they are",
                int((~self.usable).sum()),
                len(self.usable),
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows):
        return marked(self.images[rows], self.masks[rows], self.usable[rows])


# The new backgrounds' grain, of 255: the leaves' own sensor noise (leafsearch.data.synthetic draws
# 1-7; a camera's is alike). Stronger grain (8) made noise the cue a model told the background by,
# and it failed on smooth, out-of-focus backgrounds (bench/README.md, wild.py).
GRAIN = 2.0


def procedural_backgrounds(count: int, size: int, seed: int) -> np.ndarray:
    """`count` backgrounds `(size, size, 3)` uint8, the same for a seed: a colour field, soft blobs
    and stripes of random frequency and angle, mixed, with grain. The validation copy's
    (`with_backgrounds`); models/layers/background_replace.py draws its own family on the accelerator."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        field = rng.uniform(0, 255, 3)
        cells = int(rng.integers(3, 8))
        coarse = rng.uniform(0, 255, (cells, cells, 3))
        index = np.minimum((grid * cells).astype(int), cells - 1)
        blobs = coarse[index][:, index]
        angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 12)
        wave = 0.5 + 0.5 * np.sin(
            2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi)
        )
        stripes = wave[..., None] * rng.uniform(0, 255, 3)
        weights = rng.dirichlet([1.0, 1.0, 1.0])
        image = weights[0] * field + weights[1] * blobs + weights[2] * stripes + rng.normal(0, GRAIN, (size, size, 3))
        out[i] = np.clip(image, 0, 255).astype(np.uint8)
    return out


CLUTTER = 0.5  # the share of new backgrounds with a fragment of another leaf (here and BackgroundReplace's default)


def with_clutter(backgrounds: np.ndarray, images: np.ndarray, masks: np.ndarray, seed: int) -> np.ndarray:
    """`backgrounds` where, on a `CLUTTER` share, a quarter of the next image's leaf lies on it,
    magnified to the whole image, dimmed and blurred (leaves in the wild have neighbours behind
    them; the same idea as the augmentation's, drawn here with numpy, fixed per seed)."""
    rng = np.random.default_rng([seed, 1])
    out = np.array(backgrounds, copy=True)
    size = images.shape[1]
    half = size // 2
    for i in range(len(images)):
        if rng.random() >= CLUTTER:
            continue
        j = (i + 1) % len(images)
        leaf = np.where(masks[j][..., None], images[j], 0).astype(np.float32)
        y, x = half * rng.integers(2), half * rng.integers(2)
        fragment = np.repeat(np.repeat(leaf[y : y + half, x : x + half], 2, axis=0), 2, axis=1)[:size, :size]
        fragment = np.pad(fragment, ((0, size - fragment.shape[0]), (0, size - fragment.shape[1]), (0, 0)))
        if rng.random() < 0.5:
            fragment = fragment[::-1]
        padded = np.pad(fragment, ((1, 1), (1, 1), (0, 0)), mode="edge")
        fragment = sum(padded[dy : dy + size, dx : dx + size] for dy in range(3) for dx in range(3)) / 9.0
        present = fragment.max(axis=-1) > 16.0
        out[i][present] = (fragment[present] * rng.uniform(0.5, 1.0)).astype(np.uint8)
    return out


RIM = 2  # px: leaf pixels this close to the background are its rim, partly see-through (the layer's too)


def _max_filter(values: np.ndarray, radius: int) -> np.ndarray:
    """The maximum over each pixel's (2 radius + 1)-square of `(N, S, S)` values, separably."""
    out = values
    for axis in (1, 2):
        width = [(0, 0)] * values.ndim
        width[axis] = (radius, radius)
        padded = np.pad(out, width, mode="edge")
        size = out.shape[axis]
        out = np.max([np.take(padded, range(k, k + size), axis=axis) for k in range(2 * radius + 1)], axis=0)
    return out


def rim_opacity(images: np.ndarray, background: np.ndarray) -> np.ndarray:
    """How opaque each pixel of `images` `(N, S, S, 3)` is, `(N, S, S)` float32: 0 on the
    `background`, 1 inside the leaf, and on its rim (leaf pixels within `RIM` px of the background)
    its brightness over the brightest pixel near it. A leaf's edge, drawn or photographed, is a
    blend of leaf and black: a new background must show through it as much as the black did, or
    every leaf keeps a dark outline that no leaf in the wild has (alpha compositing, Porter & Duff
    1984, with the alpha estimated from the black)."""
    brightness = np.asarray(images, dtype=np.float32).max(axis=-1)
    rim = _max_filter(background.astype(np.uint8), RIM).astype(bool) & ~background
    opacity = np.clip(brightness / np.maximum(_max_filter(brightness, RIM), 1.0), 0.0, 1.0)
    return np.where(background, 0.0, np.where(rim, opacity, 1.0)).astype(np.float32)


def with_backgrounds(images: np.ndarray, seed: int) -> np.ndarray:
    """A copy of `images` whose black backgrounds are replaced (showing through the leaves' rims,
    see `rim_opacity`), fixed per image and seed (every trial of a study scores the same set);
    images without a black background stay as they are."""
    images = np.asarray(images)
    masks, usable = leaf_masks(images)
    backgrounds = with_clutter(
        procedural_backgrounds(len(images), images.shape[1], seed), images, masks & usable[:, None, None], seed
    )
    background = ~masks & usable[:, None, None]
    behind = (1.0 - rim_opacity(images, background))[..., None] * backgrounds
    composite = np.where(background[..., None], backgrounds, np.clip(images + behind, 0, 255))
    return np.where(usable[:, None, None, None], composite, images).astype(np.uint8)
