"""Augmentation layers compile: a layer Keras marks `supports_jit = False` makes `fit` run the
train step op by op under JAX (GPU idle; see bench/README.md)."""

import keras
import numpy as np

from leafsearch.models.augment import RandomCropResize, augmentation_layers
from leafsearch.training.recipe import resolve

EVERY_AUGMENTATION = dict(aug_flip=True, aug_rotation=0.2, aug_zoom=0.2, aug_contrast=0.3, aug_crop=0.2, aug_noise=0.05)


def test_under_jax_every_augmentation_layer_may_be_compiled(monkeypatch):
    recipe = resolve({"image_size": 16, **EVERY_AUGMENTATION}, "cnn")
    assert not all(layer.supports_jit for layer in augmentation_layers(recipe, 16, 0))  # Keras' own marks
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert all(layer.supports_jit for layer in augmentation_layers(recipe, 16, 0))


def test_random_crop_resize_draws_a_window_per_image_in_a_graph():
    import tensorflow as tf

    layer = RandomCropResize(0.5, seed=1)
    assert not layer.supports_jit  # TensorFlow's transform kernel has no XLA version: Keras must not ask for XLA
    ramp = np.tile(np.arange(8, dtype="float32")[None, :, None, None], (4, 1, 8, 3))
    out = tf.function(lambda x: layer(x, training=True))(ramp).numpy()
    assert out.shape == ramp.shape
    columns = out[:, :, 0, 0]
    assert (np.diff(columns, axis=1) >= 0).all() and (columns.max(axis=1) - columns.min(axis=1) < 5).all()
    assert len({tuple(np.round(row, 3)) for row in columns}) > 1  # not one window for the whole batch
    np.testing.assert_array_equal(layer(ramp, training=False), ramp)
