"""`BackgroundReplace`: a new background behind the leaf, in training, on the accelerator."""

from __future__ import annotations

import keras

from leafsearch.data.background_photos import photo_bank
from leafsearch.data.masks import CLUTTER, GRAIN, RIM


@keras.saving.register_keras_serializable(package="leafsearch")
class BackgroundReplace(keras.layers.Layer):
    """In training, give a share of the images a new background; at inference, the image unchanged.

    The input is *marked* (leafsearch.data.masks): background pixels are exactly 0 on every channel
    and no leaf pixel is, so the layer needs no mask input. New backgrounds are procedural (a
    colour field, soft blobs, stripes of random frequency and angle, grain as faint as the leaves'
    own sensor noise; for half of them the
    colours are the batch's own leaf colours, foliage-like), drawn on the
    accelerator with `keras.ops`, or, with `photos`, random crops of the images of that folder (any
    photos without leaves; leafsearch.data.background_photos), flipped at random, for a
    `photo_share` of them (the rest procedural: a head trained on photos alone finds the leaf on
    photos and loses it on foliage, bench/README.md). A `clutter` share of the new backgrounds also get
    a fragment of another leaf of the batch, magnified and out of focus, as leaves in the wild
    have their neighbours behind them (the copy-paste augmentation of Ghiasi et al. 2021,
    arXiv:2012.07177, with the batch's own leaves). Neither is the code `demo-data --wild` draws
    with, so a wild test set stays unseen. The new background also shows through the leaf's rim
    as the black did (`_opacity`), so that no leaf keeps the dark outline of its photo.
    """

    def __init__(
        self,
        share: float,
        photos: str | None = None,
        seed: int | None = None,
        clutter: float = CLUTTER,
        photo_share: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 < share <= 1.0:
            raise ValueError(f"Argument `share` must be in (0, 1]. Received: share={share}")
        if not 0.0 <= photo_share <= 1.0:
            raise ValueError(f"Argument `photo_share` must be in [0, 1]. Received: photo_share={photo_share}")
        if not 0.0 <= clutter <= 1.0:
            raise ValueError(f"Argument `clutter` must be in [0, 1]. Received: clutter={clutter}")
        self.share = share
        self.clutter = clutter
        self.photos = photos
        self.photo_share = photo_share
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self._bank = None

    def build(self, input_shape):
        if self.photos is not None and self.photo_share > 0.0:
            self._bank = keras.ops.convert_to_tensor(photo_bank(self.photos, int(input_shape[1]), self.seed or 0))

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        images = ops.cast(inputs, "float32")
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        if self._bank is None:  # no photos, or a photo_share of 0 (build reads none)
            new = self._procedural(images, batch, height, width)
        elif self.photo_share == 1.0:
            new = self._photos(batch, height, width)
        else:
            photo = self._uniform((batch, 1, 1, 1)) < self.photo_share
            new = ops.where(photo, self._photos(batch, height, width), self._procedural(images, batch, height, width))
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
            "photo_share": self.photo_share,
        }
