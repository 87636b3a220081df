"""Augmentation as Keras layers inside the model: it runs on the accelerator, only in training."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from leafsearch.data.masks import CLUTTER, GRAIN, RIM
from leafsearch.models import leaf_mask

PREFIX = "aug_"  # every augmentation layer's name starts so: an exported model drops them by it
BACKGROUND = "aug_background"  # the background replacement layer (first when present)
# `aug_flip` (as training/recipe.py resolves it: True and False of older studies become both and none)
# -> Keras' RandomFlip mode. Keras 3 draws once per image for "horizontal_and_vertical": both axes or
# neither (a half turn), not the four orientations; kept as every study here has trained so far.
FLIP_MODES = {"none": None, "horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}


def augmented(inputs, recipe: Mapping[str, Any], seed: int):
    """`inputs` (0-255 images) through the recipe's augmentation and, with `leaf_mask`, the leaf
    mask head (leaf_mask.py), whose target is the leaf as the geometric augmentations left it."""
    x, target = inputs, None
    for layer in augmentation_layers(recipe, int(inputs.shape[1]), seed):
        if layer.name == BACKGROUND and recipe.get("leaf_mask"):
            target = leaf_mask.LeafTarget(name=leaf_mask.TARGET)(x)
        x = layer(x)
    if recipe.get("leaf_mask"):
        if target is None:  # no replacement: the images still have their (marked) black backgrounds
            target = leaf_mask.LeafTarget(name=leaf_mask.TARGET)(x)
        x = leaf_mask.masked(x, target, int(inputs.shape[1]))
    return x


def augmentation_layers(recipe: Mapping[str, Any], image_size: int, seed: int) -> list[keras.layers.Layer]:
    """The seed's augmentations (flips, rotation, zoom, contrast) and its further attempts
    (RandomCrop then back to size, GaussianNoise); a strength of 0 leaves a layer out.

    Inputs are 0-255 images; `aug_noise` is a fraction of that range. The geometric ones come
    first: they keep a black background black, so background replacement after them also covers
    the corners a rotation or zoom leaves; contrast and noise then apply to the new background too.
    """
    layers: list[keras.layers.Layer] = []
    flip = recipe["aug_flip"]
    if not isinstance(flip, str) or flip not in FLIP_MODES:
        raise ValueError(f"Argument `aug_flip` must be one of {', '.join(FLIP_MODES)}. Received: aug_flip={flip!r}")
    if FLIP_MODES[flip]:
        layers.append(keras.layers.RandomFlip(FLIP_MODES[flip], seed=seed, name="aug_flip"))
    if recipe["aug_rotation"] > 0:
        layers.append(
            keras.layers.RandomRotation(
                recipe["aug_rotation"], fill_mode="constant", seed=seed + 1, name="aug_rotation"
            )
        )
    if recipe["aug_zoom"] > 0:
        layers.append(keras.layers.RandomZoom(recipe["aug_zoom"], fill_mode="constant", seed=seed + 2, name="aug_zoom"))
    if recipe["aug_crop"] > 0:
        layers.append(RandomCropResize(recipe["aug_crop"], seed=seed + 4, name="aug_crop"))
    if recipe["aug_background"] > 0:  # it finds the background by its pixels being exactly 0
        layers.append(
            BackgroundReplace(recipe["aug_background"], photos=recipe["backgrounds"], seed=seed + 6, name=BACKGROUND)
        )
    if recipe["aug_contrast"] > 0:
        layers.append(
            keras.layers.RandomContrast(
                recipe["aug_contrast"], value_range=(0, 255), seed=seed + 3, name="aug_contrast"
            )
        )
    if recipe["aug_noise"] > 0:
        # Keras' GaussianNoise takes a stddev in [0, 1]: add it on the 0-1 scale.
        layers.append(keras.layers.Rescaling(1.0 / 255.0, name="aug_noise_scale_down"))
        layers.append(keras.layers.GaussianNoise(recipe["aug_noise"], seed=seed + 5, name="aug_noise"))
        layers.append(keras.layers.Rescaling(255.0, name="aug_noise_scale_up"))
    if keras.backend.backend() == "jax":
        # Keras marks RandomRotation and RandomZoom `supports_jit = False` (their TensorFlow ops do
        # not compile under XLA), and one such layer makes `fit` run the whole train step un-jitted:
        # op by op, the GPU idles (10 images/s for EfficientNet-B4 on an H200, bench/README.md).
        # Under JAX they are jnp code and compile (keras-team/keras#23229 reports the slowdown); so
        # does RandomCropResize.
        for layer in layers:
            layer.supports_jit = True
    return layers


@keras.saving.register_keras_serializable(package="leafsearch")
class RandomCropResize(keras.layers.Layer):
    """In training, crop a random window `1 - fraction` of the side and resize it back (the
    seed's RandomCrop attempt); at inference, the image unchanged.

    Keras' RandomCrop alone changes the output size and, at inference, resizes the whole image,
    which would blur every validation image; it also slices at traced offsets, which XLA cannot
    compile under JAX. So the crop-and-resize is one bilinear affine transform (scale, then shift
    to a window drawn per image), which XLA compiles under JAX.
    """

    def __init__(self, fraction: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"Argument `fraction` must be in (0, 1). Received: fraction={fraction}")
        self.fraction = fraction
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # TensorFlow's kernel for the transform (ImageProjectiveTransformV3) has no XLA version.
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        batch = ops.shape(inputs)[0]
        height, width = inputs.shape[-3], inputs.shape[-2]
        crop_h, crop_w = max(1, round(height * (1 - self.fraction))), max(1, round(width * (1 - self.fraction)))
        # Output pixel centre x maps to input (x + 0.5) * crop / size - 0.5 + offset, as a resize of
        # the window [offset, offset + crop) with half-pixel centres would sample it.
        offset = keras.random.uniform((batch, 2), 0.0, 1.0, seed=self.generator)
        offset_y = ops.floor(offset[:, 0] * (height - crop_h + 1))
        offset_x = ops.floor(offset[:, 1] * (width - crop_w + 1))
        scale_y, scale_x = crop_h / height, crop_w / width
        zeros, ones = ops.zeros((batch,)), ops.ones((batch,))
        transform = ops.stack(
            [
                ones * scale_x,
                zeros,
                offset_x + 0.5 * scale_x - 0.5,
                zeros,
                ones * scale_y,
                offset_y + 0.5 * scale_y - 0.5,
                zeros,
                zeros,
            ],
            axis=1,
        )
        images = ops.cast(inputs, "float32")
        out = ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="nearest")
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fraction": self.fraction, "seed": self.seed}


@keras.saving.register_keras_serializable(package="leafsearch")
class BackgroundReplace(keras.layers.Layer):
    """In training, give a share of the images a new background; at inference, the image unchanged.

    The input is *marked* (leafsearch.data.masks): background pixels are exactly 0 on every channel
    and no leaf pixel is, so the layer needs no mask input. New backgrounds are procedural (a
    colour field, soft blobs, stripes of random frequency and angle, grain as faint as the leaves'
    own sensor noise; for half of them the
    colours are the batch's own leaf colours, foliage-like), drawn on the
    accelerator with `keras.ops`, or, with `photos`, random crops of the images of that folder (any
    photos without leaves; `photo_bank`), flipped at random. A `clutter` share of the new backgrounds also get
    a fragment of another leaf of the batch, magnified and out of focus, as leaves in the wild
    have their neighbours behind them (the copy-paste augmentation of Ghiasi et al. 2021,
    arXiv:2012.07177, with the batch's own leaves). Neither is the code `demo-data --wild` draws
    with, so a wild test set stays unseen. The new background also shows through the leaf's rim
    as the black did (`_opacity`), so that no leaf keeps the dark outline of its photo.
    """

    def __init__(
        self, share: float, photos: str | None = None, seed: int | None = None, clutter: float = CLUTTER, **kwargs
    ):
        super().__init__(**kwargs)
        if not 0.0 < share <= 1.0:
            raise ValueError(f"Argument `share` must be in (0, 1]. Received: share={share}")
        if not 0.0 <= clutter <= 1.0:
            raise ValueError(f"Argument `clutter` must be in [0, 1]. Received: clutter={clutter}")
        self.share = share
        self.clutter = clutter
        self.photos = photos
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self._bank = None

    def build(self, input_shape):
        if self.photos is not None:
            self._bank = keras.ops.convert_to_tensor(photo_bank(self.photos, int(input_shape[1]), self.seed or 0))

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        images = ops.cast(inputs, "float32")
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        new = (
            self._photos(batch, height, width)
            if self._bank is not None
            else self._procedural(images, batch, height, width)
        )
        if self.clutter > 0:
            new = self._cluttered(new, images, batch, height, width)
        behind = (1.0 - self._opacity(images)) * new  # 1 on the background, 0 inside the leaf
        chosen = keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < self.share
        return ops.cast(ops.where(chosen, ops.clip(images + behind, 0.0, 255.0), images), inputs.dtype)

    @staticmethod
    def _opacity(images):
        """leafsearch.data.masks.rim_opacity on marked images, in `keras.ops`: 0 on the
        background, 1 inside the leaf, the rim's brightness over the brightest pixel near it."""
        ops = keras.ops
        window = 2 * RIM + 1
        background = ops.cast(ops.all(ops.equal(images, 0.0), axis=-1, keepdims=True), "float32")
        brightness = ops.max(images, axis=-1, keepdims=True)
        rim = ops.max_pool(background, window, strides=1, padding="same") * (1.0 - background)
        opacity = ops.clip(
            brightness / ops.maximum(ops.max_pool(brightness, window, strides=1, padding="same"), 1.0), 0.0, 1.0
        )
        return (1.0 - background) * (rim * opacity + (1.0 - rim))

    def _uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, low, high, seed=self.generator)

    def _procedural(self, images, batch, height, width):
        ops = keras.ops
        # Half the backgrounds take their colours from the batch's own leaves (each image's mean
        # leaf colour, darkened or lightened): foliage behind a leaf is what a model must learn
        # to ignore; the other half are colours drawn at random over the whole cube.
        leaf = ops.cast(ops.any(ops.greater(images, 0.0), axis=-1, keepdims=True), "float32")
        palette = ops.sum(images * leaf, axis=(1, 2)) / ops.maximum(ops.sum(leaf, axis=(1, 2)), 1.0)
        natural = self._uniform((batch, 1, 1, 1)) < 0.5

        def colours(cells):
            count = ops.cast(batch, "float32")  # a tensor in a traced step
            index = ops.cast(ops.minimum(ops.floor(self._uniform((batch, cells, cells)) * count), count - 1.0), "int32")
            leafy = ops.take(palette, index, axis=0) * self._uniform((batch, cells, cells, 1), 0.4, 1.2)
            leafy = leafy + keras.random.normal((batch, cells, cells, 3), stddev=12.0, seed=self.generator)
            return ops.where(natural, ops.clip(leafy, 0.0, 255.0), self._uniform((batch, cells, cells, 3), 0.0, 255.0))

        field = colours(1)
        blobs = ops.image.resize(colours(5), (height, width), interpolation="bilinear")
        yy, xx = ops.meshgrid(ops.linspace(0.0, 1.0, height), ops.linspace(0.0, 1.0, width), indexing="ij")
        angle, freq = self._uniform((batch, 1, 1, 1), 0.0, 3.1416), self._uniform((batch, 1, 1, 1), 2.0, 12.0)
        along = ops.cos(angle) * xx[None, :, :, None] + ops.sin(angle) * yy[None, :, :, None]
        wave = 0.5 + 0.5 * ops.sin(6.2832 * freq * along + self._uniform((batch, 1, 1, 1), 0.0, 6.2832))
        stripes = wave * colours(1)
        weights = self._uniform((batch, 1, 1, 3))
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        mixed = weights[..., 0:1] * field + weights[..., 1:2] * blobs + weights[..., 2:3] * stripes
        # A third each: that mix, a fractal texture, or regions with sharp edges (below).
        texture, regions = self._fractal(batch, height, width), self._fractal(batch, height, width)
        textured = colours(1) * (1.0 - texture) + colours(1) * texture
        sharp = ops.where(regions > 0.5, colours(1), colours(1))
        sharp = ops.where(ops.abs(regions - 0.5) < 0.1 * self._uniform((batch, 1, 1, 1)), colours(1), sharp)
        family = self._uniform((batch, 1, 1, 1), 0.0, 3.0)
        mixed = ops.where(family < 1.0, mixed, ops.where(family < 2.0, textured, sharp))
        grain = keras.random.normal((batch, height, width, 3), stddev=GRAIN, seed=self.generator)
        return ops.clip(mixed + grain, 0.0, 255.0)

    def _fractal(self, batch, height, width):
        """`(batch, H, W, 1)` in [0, 1]: value noise summed over octaves, amplitude `f^-beta` for
        a `beta` drawn per image (1/f noise, the spectrum of natural scenes: Field 1987), from
        smooth clouds to fine grit."""
        ops = keras.ops
        beta = self._uniform((batch, 1, 1, 1), 0.5, 2.0)
        total = 0.0
        for cells in (2, 4, 8, 16, 32):
            if cells > height:
                break
            octave = ops.image.resize(
                self._uniform((batch, cells, cells, 1)), (height, width), interpolation="bilinear"
            )
            total = total + octave * ops.power(float(cells), -beta)
        low, high = ops.min(total, axis=(1, 2, 3), keepdims=True), ops.max(total, axis=(1, 2, 3), keepdims=True)
        return (total - low) / ops.maximum(high - low, 1e-6)

    def _cluttered(self, backgrounds, images, batch, height, width):
        """`backgrounds` with, on a `clutter` share, a quarter of the batch's next image (its leaf,
        found by its marked black) magnified to the whole image, flipped, dimmed and blurred."""
        ops = keras.ops
        others = ops.roll(images, 1, axis=0)
        half_h, half_w = height // 2, width // 2
        # Four same-sized corner windows; one is chosen per image before the single resize.
        corners = [others[:, y : y + half_h, x : x + half_w] for y in (0, height - half_h) for x in (0, width - half_w)]
        pick = ops.floor(self._uniform((batch, 1, 1, 1), 0.0, 4.0))
        quarter = corners[0]
        for k, corner in enumerate(corners[1:], start=1):
            quarter = ops.where(ops.equal(pick, float(k)), corner, quarter)
        fragment = ops.image.resize(quarter, (height, width), interpolation="bilinear")
        fragment = ops.where(self._uniform((batch, 1, 1, 1)) < 0.5, ops.flip(fragment, axis=1), fragment)
        fragment = ops.average_pool(fragment, pool_size=3, strides=1, padding="same")
        present = ops.max(fragment, axis=-1, keepdims=True) > 16.0
        used = self._uniform((batch, 1, 1, 1)) < self.clutter
        dimmed = fragment * self._uniform((batch, 1, 1, 1), 0.5, 1.0)
        return ops.where(ops.logical_and(present, used), dimmed, backgrounds)

    def _photos(self, batch, height, width):
        ops = keras.ops
        index = ops.cast(self._uniform((batch,), 0.0, float(self._bank.shape[0]) - 1e-3), "int32")
        chosen = ops.cast(ops.take(self._bank, index, axis=0), "float32")
        flip = self._uniform((batch, 1, 1, 1)) < 0.5
        return ops.where(flip, ops.flip(chosen, axis=2), chosen)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "share": self.share,
            "photos": self.photos,
            "seed": self.seed,
            "clutter": self.clutter,
        }


BANK = 256  # background crops kept on the device, at the model's image size
CROP = (0.4, 1.0)  # a crop's side, as a share of its photo's shorter side


def photo_bank(folder: str, size: int, seed: int = 0):
    """`BANK` square crops of the images of `folder` (searched recursively), uint8 `(BANK, size,
    size, 3)` (a quarter of float32's memory on the device): each a window of a random `CROP`
    share of a photo's shorter side, at a random place, resized to `size`; the photos in turn (a random `BANK` of them when there are more).
    A practitioner brings a handful of photos, not hundreds: whole, they would be a handful of
    backgrounds; cropped, each gives many (the random-sized crops of Szegedy et al. 2015,
    arXiv:1409.4842, which Keras' RandomCrop does only at one size and inside the model)."""
    import numpy as np
    from PIL import Image

    from leafsearch.data import IMAGE_EXTENSIONS

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
