"""Augmentation as Keras layers inside the model: it runs on the accelerator, only in training.

The builder: which layers a recipe asks for, in which order (Keras' own and leafsearch's, which
live one per module in models/layers/), and the leaf mask head after them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from leafsearch.models import leaf_mask, lite_mask_head
from leafsearch.models.layers import BackgroundReplace, RandomCropResize

PREFIX = "aug_"  # every augmentation layer's name starts so: an exported model drops them by it
BACKGROUND = "aug_background"  # the background replacement layer (first when present)
# `aug_flip` (as training/recipe.py resolves it: True and False of older studies become both and none)
# -> Keras' RandomFlip mode. Keras 3 draws once per image for "horizontal_and_vertical": both axes or
# neither (a half turn), not the four orientations; kept as every study here has trained so far.
FLIP_MODES = {"none": None, "horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}
# `leaf_mask` (as training/recipe.py resolves it: True and False of older studies become scratch and none).
LEAF_MASKS = ("none", "scratch", "lite0")


def augmented(inputs, recipe: Mapping[str, Any], seed: int):
    """`inputs` (0-255 images) through the recipe's augmentation and, with `leaf_mask`, the leaf
    mask head (leaf_mask.py), whose target is the leaf as the geometric augmentations left it."""
    x, target = inputs, None
    head = leaf_mask_of(recipe)
    for layer in augmentation_layers(recipe, int(inputs.shape[1]), seed):
        if layer.name == BACKGROUND and head != "none":
            target = leaf_mask.LeafTarget(name=leaf_mask.TARGET)(x)
        x = layer(x)
    if head != "none":
        if target is None:  # no replacement: the images still have their (marked) black backgrounds
            target = leaf_mask.LeafTarget(name=leaf_mask.TARGET)(x)
        x = leaf_mask.masked(x, target, mask_probabilities(x, recipe))
    return x


def leaf_mask_of(recipe: Mapping[str, Any]) -> str:
    """The recipe's leaf mask head, one of `LEAF_MASKS` ("none" when it names none)."""
    head = recipe.get("leaf_mask", "none")
    if not isinstance(head, str) or head not in LEAF_MASKS:
        raise ValueError(f"Argument `leaf_mask` must be one of {', '.join(LEAF_MASKS)}. Received: leaf_mask={head!r}")
    return head


def mask_probabilities(images, recipe: Mapping[str, Any]):
    """The recipe's leaf mask head on `images`: the probability map each pixel is leaf. The
    pretrained one loads its ImageNet weights unless the model is built with `weights="none"`
    (a model rebuilt for a checkpoint: every weight then comes from it)."""
    size = int(images.shape[1])
    if leaf_mask_of(recipe) == "lite0":
        return lite_mask_head.mask_head(images, size, pretrained=recipe.get("weights", "none") != "none")
    return leaf_mask.mask_head(images, size)


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
            BackgroundReplace(
                recipe["aug_background"],
                photos=recipe["backgrounds"],
                photo_share=recipe["photo_share"],
                seed=seed + 6,
                name=BACKGROUND,
            )
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
