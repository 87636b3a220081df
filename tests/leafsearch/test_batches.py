"""The backend-neutral input path: batches gathered from the decode cache with NumPy alone."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leafsearch.data.batches import CachedBatches, make_batches

ROOT = Path(__file__).resolve().parents[2]


def numbered_images(n: int) -> np.ndarray:
    """Image k is filled with the value k, so a batch tells which images it holds."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 3)).copy()


def ids(batch_images: np.ndarray) -> list[int]:
    return batch_images[:, 0, 0, 0].astype(int).tolist()


def epoch(batches) -> list[list[int]]:
    return [ids(batches[i][0]) for i in range(len(batches))]


def test_training_batches_are_full_cover_every_image_and_reshuffle_each_epoch():
    images, labels = numbered_images(30), np.arange(30) % 3
    indices = np.arange(3, 26)  # 23 images
    batches = CachedBatches(images, labels, indices, 3, batch_size=5, shuffle=True, seed=7)
    first = epoch(batches)
    assert len(first) == 5 and all(len(batch) == 5 for batch in first)
    seen = [i for batch in first for i in batch]
    assert set(seen) == set(indices.tolist())  # every image, the last batch topped up with the first ones
    assert seen[-2:] == seen[:2]
    for k in range(len(batches)):
        batch_images, onehot = batches[k]
        assert onehot.shape == (5, 3) and (onehot.sum(axis=1) == 1).all()
        assert onehot.argmax(axis=1).tolist() == [labels[i] for i in ids(batch_images)]
    batches.on_epoch_end()
    second = epoch(batches)
    assert second != first and set(i for b in second for i in b) == set(indices.tolist())
    again = CachedBatches(images, labels, indices, 3, batch_size=5, shuffle=True, seed=7)
    assert epoch(again) == first  # the seed fixes the order


def test_validation_batches_keep_the_order_and_end_with_a_short_batch():
    images, labels = numbered_images(12), np.arange(12) % 2
    batches = CachedBatches(images, labels, [9, 2, 5, 7, 0], 2, batch_size=2, shuffle=False, seed=0)
    assert epoch(batches) == [[9, 2], [5, 7], [0]]
    with pytest.raises(IndexError):
        batches[3]


def test_bad_arguments_name_the_problem():
    images = numbered_images(4)
    with pytest.raises(ValueError, match="batch_size"):
        CachedBatches(images, np.zeros(4), [0, 1], 2, batch_size=0, shuffle=False, seed=0)
    with pytest.raises(ValueError, match="indices"):
        CachedBatches(images, np.zeros(4), [], 2, batch_size=2, shuffle=False, seed=0)


def test_keras_trains_on_cached_batches_and_reshuffles_between_epochs():
    import keras

    images, labels = numbered_images(24), np.arange(24) % 2
    batches = make_batches(images, labels, np.arange(24), 2, batch_size=8, shuffle=True, seed=1, backend="jax")
    assert isinstance(batches, CachedBatches)
    orders = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            orders.append(list(batches._order))

    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(batches, epochs=2, verbose=0, callbacks=[Record()])
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert orders[0] != orders[1]


@pytest.mark.slow  # trains under JAX in a subprocess
def test_a_trial_model_trains_under_jax_without_tensorflow(tmp_path):
    """Under the JAX backend, with TensorFlow made unimportable, the decode cache, the batches and
    the trial's model (augmentation included) train, and `fit` compiles the step (jit), rather
    than running it op by op as Keras would for its RandomRotation/RandomZoom layers; the precise
    batch-norm statistics set before validation stay in the model."""
    from PIL import Image

    for name in ("Apple", "Grape"):
        (tmp_path / "leaves" / name).mkdir(parents=True)
        for k in range(5):
            Image.new("RGB", (20, 20), (k * 40, 100 if name == "Apple" else 10, 0)).save(
                tmp_path / "leaves" / name / f"{k}.png"
            )
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text("raise ImportError('TensorFlow is not installed here')\n")
    script = (
        "import sys, keras\n"
        "from leafsearch import data as leafdata\n"
        "from leafsearch.data.batches import make_batches\n"
        "from leafsearch.models.cnn import build_cnn\n"
        "from leafsearch.training.precise_bn import PreciseBatchNorm, recalibrate\n"
        "from leafsearch.training.recipe import resolve\n"
        "import numpy as np\n"
        "data = leafdata.prepare(sys.argv[1], 16, cache_dir=sys.argv[2])\n"
        "model = build_cnn(resolve({'image_size': 16, 'aug_crop': 0.2}, 'cnn'), data.num_classes, 0)\n"
        "model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])\n"
        "args = (data.images, data.labels)\n"
        "precise = PreciseBatchNorm(data.images, data.train_idx, 4, 0)\n"
        "history = model.fit(make_batches(*args, data.train_idx, data.num_classes, 4, True, 0), epochs=1, verbose=0,\n"
        "                    validation_data=make_batches(*args, data.val_idx, data.num_classes, 4, False, 0), callbacks=[precise])\n"
        "assert 0 <= history.history['val_accuracy'][0] <= 1 and history.history['loss'][0] > 0\n"
        "bn = model.get_layer('block1_bn'); validated = bn.moving_mean.numpy().copy()\n"
        "recalibrate(model, precise.images, precise.batch_size)  # the validation's statistics were kept by the JAX trainer\n"
        "assert np.allclose(bn.moving_mean.numpy(), validated, atol=1e-5), (validated, bn.moving_mean.numpy())\n"
        "print(keras.backend.backend(), model.jit_compile, 'tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "leaves"), str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["jax", "True", "False"]
    assert any((tmp_path / "cache").iterdir())  # decoded once, into the cache
