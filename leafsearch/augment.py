"""Augmentation as Keras layers inside the model: it runs on the accelerator, only in training."""

from __future__ import annotations

from typing import Any, Mapping

import keras


def augmentation_layers(recipe: Mapping[str, Any], image_size: int, seed: int) -> list[keras.layers.Layer]:
    """The seed's augmentations (flip, rotation, zoom, contrast) and its further attempts
    (RandomCrop then back to size, GaussianNoise); a strength of 0 leaves a layer out.

    Inputs are 0-255 images; `aug_noise` is a fraction of that range.
    """
    layers: list[keras.layers.Layer] = []
    if recipe["aug_flip"]:
        layers.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=seed, name="aug_flip"))
    if recipe["aug_rotation"] > 0:
        layers.append(keras.layers.RandomRotation(recipe["aug_rotation"], fill_mode="constant", seed=seed + 1, name="aug_rotation"))
    if recipe["aug_zoom"] > 0:
        layers.append(keras.layers.RandomZoom(recipe["aug_zoom"], fill_mode="constant", seed=seed + 2, name="aug_zoom"))
    if recipe["aug_contrast"] > 0:
        layers.append(keras.layers.RandomContrast(recipe["aug_contrast"], value_range=(0, 255), seed=seed + 3, name="aug_contrast"))
    if recipe["aug_crop"] > 0:
        layers.append(RandomCropResize(recipe["aug_crop"], seed=seed + 4, name="aug_crop"))
    if recipe["aug_noise"] > 0:
        # Keras' GaussianNoise takes a stddev in [0, 1]: add it on the 0-1 scale.
        layers.append(keras.layers.Rescaling(1.0 / 255.0, name="aug_noise_scale_down"))
        layers.append(keras.layers.GaussianNoise(recipe["aug_noise"], seed=seed + 5, name="aug_noise"))
        layers.append(keras.layers.Rescaling(255.0, name="aug_noise_scale_up"))
    return layers


@keras.saving.register_keras_serializable(package="leafsearch")
class RandomCropResize(keras.layers.Layer):
    """In training, crop a random window `1 - fraction` of the side and resize it back (the
    seed's RandomCrop attempt); at inference, the image unchanged.

    Keras' RandomCrop alone changes the output size and, at inference, resizes the whole image,
    which would blur every validation image.
    """

    def __init__(self, fraction: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"Argument `fraction` must be in (0, 1). Received: fraction={fraction}")
        self.fraction = fraction
        self.seed = seed

    def build(self, input_shape):
        height, width = int(input_shape[-3]), int(input_shape[-2])
        crop_h, crop_w = max(1, round(height * (1 - self.fraction))), max(1, round(width * (1 - self.fraction)))
        self._crop = keras.layers.RandomCrop(crop_h, crop_w, seed=self.seed)
        self._resize = keras.layers.Resizing(height, width, interpolation="bilinear")
        self._crop.build(input_shape)
        self._resize.build((None, crop_h, crop_w, input_shape[-1]))

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self._resize(self._crop(inputs, training=True))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fraction": self.fraction, "seed": self.seed}
