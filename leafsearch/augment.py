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
        crop = max(1, round(image_size * (1.0 - recipe["aug_crop"])))
        layers.append(keras.layers.RandomCrop(crop, crop, seed=seed + 4, name="aug_crop"))
        layers.append(keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="aug_crop_resize"))
    if recipe["aug_noise"] > 0:
        layers.append(keras.layers.GaussianNoise(recipe["aug_noise"] * 255.0, seed=seed + 5, name="aug_noise"))
    return layers
