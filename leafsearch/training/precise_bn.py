"""Precise batch-norm statistics before every validation: what makes a short trial's validation
curve mean something from its first epoch.

A BatchNormalization layer trains on each batch's own statistics and validates on a moving
average of them, which lags the weights: after a few dozen steps it still holds much of its
initial (0, 1) and of statistics of weights long gone. So the seed's CNN validates at chance for
its first 2 to 5 epochs while it already classifies half the images right, and a pruner or a
search reading those epochs learns nothing. Keras, KerasTuner and Optuna have no remedy; this is
PreciseBN (Wu and Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576; fvcore's
`update_bn_stats`): before each validation, the statistics of the layers that training updates are
recomputed with the current weights, as the average over a few batches of training images. The
training images go in without the model's augmentation, as the validation images do, except the
background replacement of a trial that has one: it stands for the backgrounds the model must meet
off the black background, and statistics of black backgrounds alone cost such a model a third of
its wild accuracy (bench/README.md, wild.py).

Training itself is unchanged (it normalises by batch statistics and never reads the moving ones);
what changes is every validation value and the checkpoints' statistics, so `evaluate`, `export`
and `predict` use the same precise statistics the study validated with. Measured by
bench/precise_bn.py (bench/README.md): validation accuracy after the first epoch 0.47 to 0.59
instead of 0.09 to 0.56, the best of 10 epochs 3 to 11 points higher, about 4 % more per epoch.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from leafsearch.models.augment import BACKGROUND, PREFIX

IMAGES = 128  # training images the statistics are computed over: at 64 px that is half a million positions per channel
# Images per forward pass: a pass keeps no activations for a backward pass, so 64 images need
# about what a training step of 8 does; the fewer the passes, the less the recalibration costs.
CHUNK = 64


def updated_batch_norms(model: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    """The BatchNormalization layers whose moving statistics training updates (trainable ones; a
    frozen backbone's stay as they are), nested models included."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable:
                found.append(layer)
        else:
            found += updated_batch_norms(layer)
    return found


def as_validated(model: keras.Model) -> keras.Model:
    """The model with every augmentation but background replacement made an `Identity` (the same
    layers and weights otherwise): training-mode passes through it see the images as validation
    does, with the new backgrounds training gives them (and the leaf mask head's gate)."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        return (
            keras.layers.Identity(name=layer.name)
            if layer.name.startswith(PREFIX) and layer.name != BACKGROUND
            else layer
        )

    if not any(layer.name.startswith(PREFIX) for layer in model.layers):
        return model
    return keras.models.clone_model(model, clone_function=swap)


def recalibrate(model: keras.Model, images: np.ndarray, batch_size: int, forward: keras.Model | None = None) -> None:
    """Set the moving statistics of the layers training updates to their mean over `images`, fed
    in batches of `batch_size` (each batch's statistics weigh the same, as in fvcore), through
    `forward` (default `as_validated(model)`: `images` then marked, as in training)."""
    layers = updated_batch_norms(model)
    if not layers or len(images) == 0:
        return
    forward = as_validated(model) if forward is None else forward
    momenta = [layer.momentum for layer in layers]
    try:
        for i in range(math.ceil(len(images) / batch_size)):
            for layer in layers:  # moving = moving * i/(i+1) + batch/(i+1): the running mean of the batches'
                layer.momentum = i / (i + 1)
            forward(images[i * batch_size : (i + 1) * batch_size].astype("float32"), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recalibrates before each validation of `fit` (`on_test_begin`), on the same `IMAGES`
    training images all through the trial (drawn by the trial's seed), `CHUNK` or the trial's
    batch size at a time, whichever is larger. `images` are the ones training is fed (marked, with
    background replacement), or a function that gives them at each validation (a cached trial's
    features change from the plain ones to an augmented view: data/feature_batches.py)."""

    def __init__(self, images, train_idx: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        chosen = np.random.default_rng(seed).choice(np.asarray(train_idx), min(IMAGES, len(train_idx)), replace=False)
        self.rows = np.sort(chosen)
        self.source = images if callable(images) else None
        self.images = None if callable(images) else images[self.rows]
        self.batch_size = max(batch_size, CHUNK)
        self._forward = None

    def on_test_begin(self, logs=None):
        if self._forward is None or self._forward[0] is not self.model:  # built once per model
            self._forward = (self.model, as_validated(self.model))
        images = self.images if self.source is None else self.source()[self.rows]
        recalibrate(self.model, images, self.batch_size, self._forward[1])
