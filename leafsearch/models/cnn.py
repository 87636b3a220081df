"""The seed's first attempt: a plain CNN of five conv + ReLU + batch-norm + max-pool blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from leafsearch.models.augment import augmented

FILTERS = (16, 32, 64, 128, 256)
# Keras' default 0.99 needs hundreds of steps before the moving statistics are usable, so a
# short trial on a few hundred images validates at chance level; 0.9 settles within an epoch.
BN_MOMENTUM = 0.9


def build_cnn(recipe: Mapping[str, Any], num_classes: int, seed: int) -> keras.Model:
    """Inputs are 0-255 RGB images of `image_size`; outputs float32 class probabilities.

    `activation` applies to the dense layer (the seed swapped ReLU for Mish there);
    `dense_units = 0` drops the dense layer.
    """
    size = recipe["image_size"]
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = augmented(inputs, recipe, seed)
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    for i, filters in enumerate(FILTERS):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i + 1}_conv")(x)
        x = keras.layers.Activation("relu", name=f"block{i + 1}_relu")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i + 1}_bn")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i + 1}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if recipe["dense_units"]:
        x = keras.layers.Dense(recipe["dense_units"], activation=recipe["activation"], name="dense")(x)
    x = keras.layers.Dropout(recipe["dropout"], seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="leaf_cnn")
