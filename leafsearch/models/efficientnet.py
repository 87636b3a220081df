"""The seed's second attempt: an EfficientNet backbone with a small head, and the two changes its
training makes to it (freeze the backbone; unfreeze its last blocks).

Transfer learning trains only the head on the frozen backbone; fine-tuning unfreezes the
backbone's last blocks (never its batch-norm layers) and trains on with a small learning rate.
Which phase does what, and for how long, is `leafsearch.training.phases`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from leafsearch.models import backbone_weights, efficientnet_lite, lite_weights
from leafsearch.models.augment import augmented
from leafsearch.models.backbone_weights import BACKBONES, is_lite
from leafsearch.models.cnn import BN_MOMENTUM
from search.errors import UsageError

# The resolution each variant was trained at (the seed went 256 -> 380 for B4 for this reason).
_NATIVE_SIZES = {
    "efficientnet_b0": 224,
    "efficientnet_b1": 240,
    "efficientnet_b2": 260,
    "efficientnet_b3": 300,
    "efficientnet_b4": 380,
    "efficientnet_b5": 456,
    "efficientnet_b6": 528,
    "efficientnet_b7": 600,
    **{name: params[2] for name, params in efficientnet_lite.LITE_PARAMS.items()},
}

# Copied from keras/src/applications/efficientnet.py (BASE_WEIGHTS_PATH, the "_notop" half of
# WEIGHTS_HASHES), so the file we fetch is the very file Keras then finds in its cache.
_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/"
_NOTOP_HASHES = {
    "efficientnet_b0": "50bc09e76180e00e4465e1a485ddc09d",
    "efficientnet_b1": "74c4e6b3e1f6a1eea24c589628592432",
    "efficientnet_b2": "111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnet_b3": "af6d107764bb5b1abb91932881670226",
    "efficientnet_b4": "ebc24e6d6c33eaebbd558eafbeedf1ba",
    "efficientnet_b5": "38879255a25d3c92d5e44e04ae6cec6f",
    "efficientnet_b6": "9ecce42647a20130c1f39a5d4cb75743",
    "efficientnet_b7": "cbcfe4450ddf6f3ad90b1b398090fe4a",
}

BACKBONE_LAYER = "backbone"
MAX_BLOCKS = 7  # every EfficientNet variant, Lite too, has blocks 1..7 (the larger ones only repeat them more)
_BLOCK_NAME = re.compile(r"^block(\d+)[a-z]+_")
_CHECK_SIZE = 32  # smallest input keras.applications accepts; the weights do not depend on it


def native_size(backbone: str) -> int:
    """The image size `backbone` was designed for; other sizes work but may cost accuracy."""
    _check_backbone(backbone)
    return _NATIVE_SIZES[backbone]


def _check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise UsageError(f"backbone {backbone!r} is not one of {', '.join(BACKBONES)}")


def _one_line(error: BaseException, limit: int = 300) -> str:
    """Keras' reason, cut to one line: the CLI prints a UsageError as a single line."""
    text = str(error).split("List of objects that could not be loaded")[0]
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_weights(weights: str) -> str | None:
    """The `weights` argument for keras.applications: None, "imagenet" or an existing file."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UsageError(f"--weights PATH: file not found: {weights}; pass a weights file, 'imagenet' or 'none'")
    return str(path)


def check_weights_available(backbone: str, weights: str) -> None:
    """Fails before a study starts, rather than in every trial, when the weights are unusable.

    "imagenet": fetches the no-top file into the Keras cache (free once cached); for Lite0-2,
    converts the installed package's file into that cache (a missing package is named). A path:
    loads it into the backbone architecture built small, so a file for another variant is caught.
    """
    _check_backbone(backbone)
    resolved = resolve_weights(weights)
    if resolved is None:
        return
    if resolved == "imagenet" and is_lite(backbone):
        lite_weights.converted_file(backbone)
        return
    if resolved == "imagenet":
        file_name = f"efficientnet{backbone.removeprefix('efficientnet_')}_notop.h5"
        try:
            keras.utils.get_file(
                file_name, _WEIGHTS_URL + file_name, cache_subdir="models", file_hash=_NOTOP_HASHES[backbone]
            )
        except Exception as error:  # noqa: BLE001 - offline, a proxy, a corrupt cache: Keras raises a bare Exception
            raise UsageError(
                f"--weights imagenet: cannot download the ImageNet weights of {backbone} "
                f"(no network? {_one_line(error)}); pass --weights PATH to a weights file "
                f"(e.g. Noisy-Student converted to .weights.h5) or --weights none"
            ) from None
        return
    model = BACKBONES[backbone](include_top=False, weights=None, input_shape=(_CHECK_SIZE, _CHECK_SIZE, 3))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns once per skipped layer before it raises
            model.load_weights(resolved)
    except Exception as error:  # noqa: BLE001 - any reason a file does not load is bad input
        raise UsageError(
            f"--weights {weights}: cannot load it into {backbone} without its top: {_one_line(error)}"
        ) from None


def imagenet_origin(backbone: str) -> dict[str, str]:
    """Where `--weights imagenet` comes from for `backbone`, its hash, and how inputs are normalised."""
    if is_lite(backbone):
        return lite_weights.origin(backbone)
    file_name = f"efficientnet{backbone.removeprefix('efficientnet_')}_notop.h5"
    return {
        "weights": "imagenet",
        "origin": _WEIGHTS_URL + file_name,
        "md5": _NOTOP_HASHES[backbone],
        "normalization": "(x / 255 - imagenet mean) / imagenet std, stored in the file",
    }


def load_weights(backbone: keras.Model, name: str, weights: str) -> str:
    """Load `weights` ("none", "imagenet" or a file) into a backbone built without them, inputs
    normalised as the weights were trained; returns how the normalisation was found."""
    resolved = resolve_weights(weights)
    if resolved is None:
        return "none"
    if is_lite(name):  # its normalisation is a fixed layer of the architecture: nothing to set
        backbone.load_weights(lite_weights.converted_file(name) if resolved == "imagenet" else resolved)
        return efficientnet_lite.NORMALIZATION
    if resolved == "imagenet":
        file_name = f"efficientnet{name.removeprefix('efficientnet_')}_notop.h5"
        resolved = keras.utils.get_file(
            file_name, _WEIGHTS_URL + file_name, cache_subdir="models", file_hash=_NOTOP_HASHES[name]
        )
    backbone.load_weights(resolved)
    return backbone_weights.normalize_as_trained(backbone, weights)


def build_efficientnet(recipe: Mapping[str, Any], num_classes: int, seed: int) -> keras.Model:
    """0-255 RGB images of `image_size` -> augmentation -> frozen backbone -> head -> float32 probabilities.

    No rescaling here: keras.applications' EfficientNet normalises 0-255 inputs itself, and so
    does our EfficientNet-Lite. The
    backbone runs with training=False so its batch-norm layers stay in inference mode even
    once unfrozen (the Keras transfer-learning guide's advice). `dense_units = 0` drops the
    dense layer of the head.
    """
    size = recipe["image_size"]
    name = recipe["backbone"]
    _check_backbone(name)
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = augmented(inputs, recipe, seed)
    # Built without weights whatever their origin, then loaded and its input normalisation set as
    # they were trained (backbone_weights.py): one architecture, so a checkpoint rebuilds it.
    backbone = BACKBONES[name](include_top=False, weights=None, input_shape=(size, size, 3))
    load_weights(backbone, name, recipe["weights"])
    backbone.name = BACKBONE_LAYER
    backbone.trainable = False
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="head_bn")(x)
    if recipe["dense_units"]:
        x = keras.layers.Dense(recipe["dense_units"], activation=recipe["activation"], name="dense")(x)
    x = keras.layers.Dropout(recipe["dropout"], seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="leaf_efficientnet")


def backbone_of(model: keras.Model) -> keras.Model:
    return model.get_layer(BACKBONE_LAYER)


def freeze_backbone(model: keras.Model) -> None:
    """Phase 1 (transfer learning): only the head learns, so the pretrained features survive
    the head's large first updates."""
    backbone_of(model).trainable = False


def check_unfreeze_blocks(blocks: int) -> None:
    """A bad `unfreeze_blocks` as a ValueError, before anything trains."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= MAX_BLOCKS:
        raise ValueError(
            f"unfreeze_blocks must be an integer from 1 to {MAX_BLOCKS} (EfficientNet has {MAX_BLOCKS} blocks), got {blocks!r}"
        )


def unfreeze_top_blocks(model: keras.Model, blocks: int) -> list[str]:
    """Phase 2 (fine-tuning): the last `blocks` blocks and the top conv learn, nothing below.

    Whole blocks, as the seed did (found by keras.applications' `block<N><letter>_` layer
    names); batch-norm layers stay frozen so their statistics are not wrecked by small
    batches. Returns the names of the layers made trainable.
    """
    check_unfreeze_blocks(blocks)
    backbone = backbone_of(model)
    numbers = [int(m.group(1)) for layer in backbone.layers if (m := _BLOCK_NAME.match(layer.name))]
    first = max(numbers) - blocks + 1
    backbone.trainable = True  # a frozen parent would override its layers' own flags
    names = []
    for layer in backbone.layers:
        m = _BLOCK_NAME.match(layer.name)
        wanted = (m is not None and int(m.group(1)) >= first) or layer.name.startswith("top_")
        wanted = wanted and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = wanted
        if wanted:
            names.append(layer.name)
    return names
