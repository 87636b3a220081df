"""Precise batch-norm statistics: recomputed from un-augmented training images, for the layers
training updates only, with the layers' own momentum given back."""

import keras
import numpy as np

from leafsearch.training.precise_bn import PreciseBatchNorm, recalibrate, updated_batch_norms


def small_model() -> keras.Model:
    """an `aug_` layer (a scale that would swamp the statistics were it not skipped) -> a trainable batch norm -> a
    frozen nested block with its own batch norm -> a classifier."""
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Rescaling(100.0, name="aug_scale")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    frozen_in = keras.Input((4, 4, 3))
    frozen = keras.Model(frozen_in, keras.layers.BatchNormalization(name="frozen_bn")(frozen_in), name="backbone")
    frozen.trainable = False
    x = frozen(x)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_recalibrate_sets_the_statistics_of_the_images_without_augmentation():
    model = small_model()
    images = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 3)).astype("float32")
    recalibrate(model, images, batch_size=4)
    bn = model.get_layer("bn")
    batches = images.reshape(2, 4, 4, 4, 3)
    np.testing.assert_allclose(bn.moving_mean.numpy(), images.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batches.var(axis=(1, 2, 3)).mean(axis=0), rtol=1e-3)
    assert bn.momentum == 0.9
    frozen = model.get_layer("backbone").get_layer("frozen_bn")
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(frozen.moving_variance.numpy(), np.ones(3))
    assert updated_batch_norms(model) == [bn]


def test_the_callback_recalibrates_before_each_validation_on_the_same_images():
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (20, 4, 4, 3)).astype("float32")
    labels = keras.utils.to_categorical(rng.integers(0, 2, 20), 2)
    callback = PreciseBatchNorm(images, np.arange(12), batch_size=4, seed=0)  # one pass of 12: CHUNK is larger
    assert len(callback.images) == 12  # every training image when there are fewer than IMAGES
    model.fit(
        images[:12],
        labels[:12],
        validation_data=(images[12:], labels[12:]),
        epochs=1,
        batch_size=4,
        verbose=0,
        callbacks=[callback],
    )
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), images[:12].mean(axis=(0, 1, 2)), rtol=1e-4)


def test_the_callback_reads_what_training_feeds_at_each_validation():
    """A cached trial feeds its plain features first, then an augmented view: given a function,
    each validation recalibrates on what it gives then, the same rows every time."""
    model = small_model()
    rng = np.random.default_rng(2)
    first, later = (rng.uniform(0, 255, (12, 4, 4, 3)).astype("float32") for _ in range(2))
    fed = [first]
    callback = PreciseBatchNorm(lambda: fed[0], np.arange(12), batch_size=4, seed=0)
    callback.set_model(model)
    callback.on_test_begin()
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), first.mean(axis=(0, 1, 2)), rtol=1e-4)
    fed[0] = later
    callback.on_test_begin()
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), later.mean(axis=(0, 1, 2)), rtol=1e-4)


def test_a_trial_with_background_replacement_keeps_it_in_the_statistics():
    from leafsearch.models.layers import BackgroundReplace

    inputs = keras.Input((8, 8, 3))
    x = BackgroundReplace(1.0, seed=0, name="aug_background")(inputs)
    x = keras.layers.Rescaling(100.0, name="aug_scale")(x)  # other augmentation: still skipped
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    leaves = np.zeros((16, 8, 8, 3), "float32")
    leaves[:, 3:5, 3:5, 1] = 200.0  # a green leaf on a background marked exactly 0, as training feeds it
    recalibrate(model, leaves, batch_size=8)
    mean = model.get_layer("bn").moving_mean.numpy()
    clean = leaves.mean(axis=(0, 1, 2))
    assert (mean > clean + 20).all() and (mean < 255).all()  # new backgrounds, not black, not scaled
