"""The leaf mask head on a pretrained encoder (`leaf_mask="lite0"`): EfficientNet-Lite0's first
five stages, with their ImageNet weights, as a U-Net's encoder, and a light decoder of our own.

The scratch head (leaf_mask.py) learns what a leaf looks like from a few hundred synthetic
leaves, and what is *not* a leaf from procedural backgrounds: off them it takes bright blobs for
leaf and misses dark or narrow leaves (IoU about 0.72 on wild leaves, bench/README.md). An
encoder trained on ImageNet already tells objects from their surroundings; the decoder only has
to learn which object is the leaf. It is supervised exactly as the scratch head is (`LeafTarget`,
`MaskSupervision`, the same gate): only the probability map comes from here. Measured
(bench/README.md, 3 seeds): trained alone, IoU on wild leaves 0.75 against the scratch head's
0.61, on photo composites 0.67 against 0.71 (it takes a photograph's objects for leaf); in a
30-epoch trial wild accuracy +1.8 points, photos -8.1.

The encoder is the Lite0 architecture of efficientnet_lite.py (plain Keras layers, so an
exported model loads in plain Keras with the head in it), taken at its stride 2, 4, 8 and 16
outputs, and run at `RESOLUTION` px whatever the classifier's size (Lite0 was trained at 224 px:
a 64-px leaf's features at stride 16 would be 4 x 4). Its weights are loaded only when the model
is built for training (`pretrained`); a model rebuilt for a checkpoint (`weights="none"`, as
evaluate, export and predict rebuild it) gets every weight from the checkpoint and needs no
weights package. Its batch-norm layers always keep ImageNet's statistics (frozen, so they run in
inference mode and precise batch norm leaves them alone); which of its other layers train is
`TRAIN_FROM`.
"""

from __future__ import annotations

import keras

from leafsearch.models import efficientnet_lite, lite_weights
from leafsearch.models.leaf_mask import conv_bn_relu, mask_output
from search.errors import UsageError

VARIANT = "efficientnet_lite0"
ENCODER = "mask_encoder"  # the nested model's name in a classifier
RESOLUTION = 128  # px the encoder sees: the image is resized to it (up or down) and the mask back
# Lite0's outputs at strides 2, 4, 8 and 16 (16, 24, 40 and 112 channels): the ends of its stages 1, 2, 3, 5.
SKIPS = ("block1a_project_bn", "block2b_add", "block3b_add", "block5c_add")
DECODER = (16, 24, 32)  # the decoder's filters at strides 2, 4 and 8
# The first of Lite0's stages (1..5) whose convolutions train with the head (None: the encoder is
# frozen). All of them: the head alone, 10 epochs, seed 0, IoU on clean / wild / photos 0.932 /
# 0.781 / 0.667 against 0.925 / 0.757 / 0.467 from stage 3 and 0.913 / 0.700 / 0.623 frozen
# (bench/leaf_mask_head.py, bench/README.md).
TRAIN_FROM: int | None = 1


def check_weights_available() -> None:
    """Fails before a study starts when the ImageNet weights cannot be had (the package missing:
    one line that names the extra); converts them once into the weights cache otherwise."""
    try:
        lite_weights.converted_file(VARIANT)
    except UsageError as error:
        raise UsageError(f"leaf_mask 'lite0' starts from EfficientNet-Lite0's ImageNet weights: {error}") from None


def encoder(resolution: int, pretrained: bool, train_from: int | None = TRAIN_FROM) -> keras.Model:
    """Lite0 up to its stage 5, `(resolution, resolution, 3)` 0-255 images -> its four `SKIPS`
    outputs; ImageNet weights when `pretrained`; trainable from stage `train_from` on (batch norm
    never)."""
    lite = efficientnet_lite.EfficientNetLite(VARIANT, input_shape=(resolution, resolution, 3))
    if pretrained:
        lite.load_weights(lite_weights.converted_file(VARIANT))
    model = keras.Model(lite.input, [lite.get_layer(name).output for name in SKIPS], name=ENCODER)
    for layer in model.layers:
        stage = _stage(layer.name)
        layer.trainable = (
            train_from is not None
            and stage is not None
            and stage >= train_from
            and not isinstance(layer, keras.layers.BatchNormalization)
        )
    return model


def _stage(name: str) -> int | None:
    """The stage of a Lite0 layer (`block3b_add` -> 3; the stem counts as 1), None for others."""
    if name.startswith("stem_"):
        return 1
    if name.startswith("block") and name[5:6].isdigit():
        return int(name[5])
    return None


def mask_head(images, size: int, pretrained: bool, train_from: int | None = TRAIN_FROM):
    """0-255 images of `size` px -> the probability that each pixel is leaf, `(size, size, 1)`
    float32: the encoder at `RESOLUTION` px, then at each stride from 8 down to 2 the upsampled
    features joined with the encoder's there and one conv, then up to `RESOLUTION` and back to `size`."""
    L = keras.layers
    x = images if size == RESOLUTION else L.Resizing(RESOLUTION, RESOLUTION, name="mask_resize")(images)
    *skips, x = encoder(RESOLUTION, pretrained, train_from)(x)
    for i in reversed(range(len(skips))):
        x = L.UpSampling2D(2, interpolation="bilinear", name=f"mask_up{i}")(x)
        x = L.Concatenate(name=f"mask_skip{i}")([x, skips[i]])
        x = conv_bn_relu(x, DECODER[i], f"mask_up{i}_conv")
    x = L.UpSampling2D(2, interpolation="bilinear", name="mask_full")(x)
    return mask_output(x, size)
