"""The leaf mask head: a small segmentation network in front of the classifier that learns where
the leaf is, and blacks out everything else, so the classifier sees every image the way it saw
the training images (a leaf on black) whatever the background.

Its supervision is free: the training images' backgrounds are black, so each one's true mask is
known (leafsearch.data.masks), and background replacement (layers.BackgroundReplace) shows the
head those leaves on other backgrounds. In training the classifier sees half the images gated by
their *true* mask (teacher forcing) and half by the head's (`OWN`), so it learns what the
baseline learns, on leaves on black, and the head's mistakes too, without the clean accuracy
that learning through the head's mask alone cost; at inference (validation too) the head's gates.
The gate is hard and eroded by `ERODE` px (the head's by `HALO` more): a leaf's rim is a blend
of leaf and whatever lay behind it, black in training and clutter in the wild, and a model
trained on black rims reads bright ones wrong (bench/README.md: 0.55 -> 0.70 on wild leaves
gated by their true masks).
The head and the gate are Keras' own layers, so an exported model needs no leafsearch; only the
supervision is a layer of ours, and it is a training-time one (named `fit_*`, an `Identity` in
an exported model).
"""

from __future__ import annotations

import keras

FIT_PREFIX = "fit_"  # layers that act in training only (besides the `aug_*` ones): an export drops them
TARGET = "fit_mask_target"
SUPERVISION = "fit_mask_loss"
MAX_RESOLUTION = 128  # the head segments at most at this size (the mask is then resized back up)
FILTERS = (16, 32, 64)
LOSS_WEIGHT = 1.0  # the mask's binary cross-entropy, added to the classification loss
BN_MOMENTUM = 0.9  # as the CNN's (models/cnn.py): settles within an epoch
# The share of training images the classifier sees through the head's own mask (the rest through
# the true one): so it also learns the head's mistakes (scheduled sampling, Bengio et al. 2015,
# arXiv:1506.03099). 0.5 against 0: +4.5 wild, -1.1 photos, -0.1 clean (bench/README.md).
OWN = 0.5
ERODE = 1  # px of the leaf's rim the gate blacks out
# px more off the head's mask: its errors are mostly a halo of background it takes for leaf
# (precision 0.70, recall 0.94 on wild leaves), so its gate is trimmed further than the true one.
HALO = 1


@keras.saving.register_keras_serializable(package="leafsearch")
class LeafTarget(keras.layers.Layer):
    """The true leaf mask of a *marked* image (background exactly 0 on every channel, no leaf pixel
    so): 1.0 on the leaf, 0.0 elsewhere, shape `(..., H, W, 1)`."""

    def call(self, inputs):
        return keras.ops.cast(keras.ops.any(keras.ops.not_equal(inputs, 0), axis=-1, keepdims=True), "float32")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)


@keras.saving.register_keras_serializable(package="leafsearch")
class MaskSupervision(keras.layers.Layer):
    """`[proposed, target, predicted] -> [mask to gate with, target, predicted]`: at inference its
    inputs unchanged (the head's `proposed` gate first); in training the `target` gate for each
    image but an `own` share, which keep the proposed one with no gradient (see the module's
    docstring), and it adds the weighted binary cross-entropy of the head's `predicted` mask
    against the target to the model's loss.

    It passes all three through so that the `Identity` an export puts in its place fits the graph.
    """

    def __init__(self, weight: float = LOSS_WEIGHT, own: float = OWN, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight
        self.own = own
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        proposed, target, predicted = inputs
        if training:
            p = keras.ops.cast(predicted, "float32")
            self.add_loss(self.weight * keras.ops.mean(keras.losses.binary_crossentropy(target, p)))
            forced = keras.random.uniform((keras.ops.shape(target)[0], 1, 1, 1), seed=self.generator) >= self.own
            own = keras.ops.stop_gradient(keras.ops.cast(proposed, "float32"))
            gate = keras.ops.where(forced, keras.ops.cast(target, "float32"), own)
            return [keras.ops.cast(gate, proposed.dtype), target, predicted]
        return [proposed, target, predicted]

    def compute_output_shape(self, input_shape):
        return list(input_shape)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "own": self.own, "seed": self.seed}


def conv_bn_relu(x, filters: int, name: str, dilation: int = 1):
    """3x3 conv, batch norm, ReLU: the block both heads' U-Nets are made of."""
    L = keras.layers
    x = L.Conv2D(filters, 3, padding="same", dilation_rate=dilation, use_bias=False, name=name)(x)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return L.Activation("relu", name=f"{name}_relu")(x)


def mask_head(images, size: int):
    """0-255 images -> the probability that each pixel is leaf, `(H, W, 1)` float32: a small
    U-Net (Ronneberger et al. 2015) of Keras layers with batch norm (a third more wild IoU in a
    30-epoch trial than without, bench/README.md), at most `MAX_RESOLUTION` px."""
    L = keras.layers
    conv = conv_bn_relu
    work = min(size, MAX_RESOLUTION)
    x = L.Rescaling(1.0 / 255.0, name="mask_rescale")(images)
    if work != size:
        x = L.Resizing(work, work, name="mask_down")(x)
    skips = []
    for i, filters in enumerate(FILTERS):
        x = conv(conv(x, filters, f"mask_down{i}_a"), filters, f"mask_down{i}_b")
        skips.append(x)
        x = L.MaxPooling2D(2, padding="same", name=f"mask_pool{i}")(x)
    x = conv(x, FILTERS[-1], "mask_middle", dilation=2)
    for i, filters in reversed(list(enumerate(FILTERS))):
        x = L.UpSampling2D(2, interpolation="bilinear", name=f"mask_up{i}")(x)
        skip = skips[i]
        if x.shape[1] != skip.shape[1]:  # odd sizes: the pooled side was rounded up
            x = L.Resizing(skip.shape[1], skip.shape[2], name=f"mask_fit{i}")(x)
        x = L.Concatenate(name=f"mask_skip{i}")([x, skip])
        x = conv(x, filters, f"mask_up{i}_conv")
    return mask_output(x, size)


def mask_output(features, size: int):
    """A head's last features -> its probability map at `size` px (`mask_logit`, float32)."""
    L = keras.layers
    x = L.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask_logit")(features)
    if x.shape[1] != size:
        x = L.Resizing(size, size, dtype="float32", name="mask_up")(x)
    return x


def eroded(mask, px: int, name: str):
    """A 0-1 mask less `px` px of its rim: a min-pool, of Keras layers."""
    L = keras.layers
    x = L.Rescaling(-1.0, offset=1.0, dtype="float32", name=f"{name}_invert")(mask)
    x = L.MaxPooling2D(2 * px + 1, strides=1, padding="same", dtype="float32", name=f"{name}_erode")(x)
    return L.Rescaling(-1.0, offset=1.0, dtype="float32", name=name)(x)


def hard_eroded(mask):
    """A 0-1 mask -> 1 where it is over one half, less `ERODE` px of the rim, of Keras layers: the
    threshold is a steep `hard_sigmoid`, 0 below 0.497 and 1 above 0.503."""
    L = keras.layers
    x = L.Rescaling(1000.0, offset=-500.0, dtype="float32", name="mask_threshold_scale")(mask)
    x = L.Activation("hard_sigmoid", dtype="float32", name="mask_threshold")(x)
    return eroded(x, ERODE, "mask_eroded")


def masked(images, target, predicted):
    """`images` with everything the head does not take for leaf blacked out: `predicted` is the
    head's probability map (`mask_head`, or the pretrained one of lite_mask_head.py), trained
    against `target` (the true masks, from `LeafTarget`), gated by them in training. The head's
    mask is trimmed by `HALO` px first (a min-pool commutes with the threshold)."""
    proposed = eroded(predicted, HALO, "mask_trimmed") if HALO else predicted
    gate, _, _ = MaskSupervision(name=SUPERVISION)([proposed, target, predicted])
    return keras.layers.Multiply(name="mask_apply")([images, hard_eroded(gate)])
