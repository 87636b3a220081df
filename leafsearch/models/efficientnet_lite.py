"""EfficientNet-Lite0..4 from plain Keras layers: the EfficientNet made for phones and edge
accelerators, which is where a leaf classifier ends up (it quantizes well: no squeeze-excite,
ReLU6, fixed stem and head).

Keras ships no Lite (keras.applications has B0-B7 and V2 only), so it is rebuilt here after the
reference, tensorflow/tpu `models/official/efficientnet/lite/efficientnet_lite_builder.py`:
B0's seven stages; squeeze-excite removed; swish -> ReLU6; the stem (32) and head (1280)
channels and the first and last stages' repeats not scaled; TensorFlow "same" padding; batch
norm epsilon 1e-3. Inputs are RGB 0..255, normalised inside the model as the weights were trained
(`(x - 127) / 128`, the reference's MEAN_RGB / STDDEV_RGB for lite), so a checkpoint, an export
and a prediction all carry the preprocessing.

Layers are named as keras.applications names B0's (`stem_conv`, `block3b_dwconv`, `top_bn`), so
fine-tuning's `unfreeze_blocks` counts the same 7 stages and the checkpoint converter maps the
original variable names the same way.
"""

from __future__ import annotations

import math
import string

import keras

# (width, depth, native resolution, dropout) per variant (the reference's efficientnet_lite_params).
LITE_PARAMS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}
# B0's stages: (repeats, kernel, stride, expand ratio, input filters, output filters).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS, HEAD_FILTERS = 32, 1280
INPUT_MEAN, INPUT_STD = 127.0, 128.0  # the reference's lite MEAN_RGB and STDDEV_RGB
NORMALIZATION = "(x - 127) / 128"
BN_EPSILON = 1e-3
DROP_CONNECT_RATE = 0.2


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The reference's round_filters: scaled by width, to a multiple of 8, never 10 % below."""
    filters *= width
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * filters else rounded)


def stage_repeats(depth: float) -> list[int]:
    """Blocks per stage; the first and last stage keep one block (the lite builder's fix_head_stem)."""
    last = len(STAGES) - 1
    return [r if i in (0, last) else int(math.ceil(r * depth)) for i, (r, *_rest) in enumerate(STAGES)]


def block_names(variant: str) -> list[str]:
    """Keras' block prefixes in execution order (`block1a`, `block2a`, `block2b`, ...): the k-th
    is the reference's `blocks_k`."""
    _width, depth, _size, _dropout = LITE_PARAMS[variant]
    return [
        f"block{stage + 1}{string.ascii_lowercase[i]}"
        for stage, repeats in enumerate(stage_repeats(depth))
        for i in range(repeats)
    ]


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_activation")(x) if activation else x


def _block(x, name: str, kernel: int, stride: int, expand: int, filters_in: int, filters_out: int, drop_rate: float):
    """MBConv without squeeze-excite: expand 1x1, depthwise kxk, project 1x1, identity skip."""
    inputs = x
    if expand != 1:
        x = keras.layers.Conv2D(filters_in * expand, 1, padding="same", use_bias=False, name=f"{name}_expand_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_expand_bn")(x)
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}_expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{name}_activation")(x)
    x = keras.layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:  # drop connect: whole samples of the residual branch, as Keras' B0 does
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def EfficientNetLite(
    variant: str, include_top: bool = False, weights=None, input_shape=None, classes: int = 1000
) -> keras.Model:
    """keras.applications' signature, so it is built wherever B0-B7 are; `weights` must be None
    (the pretrained ones are loaded afterwards: models/lite_weights.py)."""
    if weights is not None:
        raise ValueError(f"EfficientNetLite builds without weights (weights=None); received weights={weights!r}")
    width, depth, size, dropout = LITE_PARAMS[variant]
    inputs = keras.Input(shape=input_shape or (size, size, 3), name="input_layer")
    x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="lite_normalization")(inputs)
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem")
    names = iter(block_names(variant))
    total = sum(stage_repeats(depth))
    index = 0
    for (_repeats, kernel, stride, expand, filters_in, filters_out), repeats in zip(STAGES, stage_repeats(depth)):
        filters_in = STEM_FILTERS if index == 0 else round_filters(filters_in, width)
        filters_out = round_filters(filters_out, width)
        for i in range(repeats):
            x = _block(
                x,
                next(names),
                kernel,
                stride if i == 0 else 1,
                expand,
                filters_in if i == 0 else filters_out,
                filters_out,
                DROP_CONNECT_RATE * index / total,
            )
            index += 1
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=variant)


def constructor(variant: str):
    """`variant`'s builder with keras.applications.EfficientNetB0's call signature."""

    def build(include_top: bool = False, weights=None, input_shape=None, classes: int = 1000) -> keras.Model:
        return EfficientNetLite(
            variant, include_top=include_top, weights=weights, input_shape=input_shape, classes=classes
        )

    build.__name__ = f"EfficientNet{variant.removeprefix('efficientnet_').capitalize()}"
    return build
