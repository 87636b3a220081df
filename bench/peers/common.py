"""What both hand-written peers share, as a user would write it once: the data, the seed's CNN,
the early stopping and a per-epoch log. Plain Keras; nothing from leafsearch.

The CNN is the one `spaces/cnn.py` trains: the seed's augmentations (flip, rotation 0.1, zoom 0.1)
inside the model, 0-255 inputs rescaled, five conv + ReLU + batch-norm (momentum 0.9) + max-pool
blocks, flatten, dense, dropout, softmax.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import keras
import tensorflow as tf

STARTED = time.time()  # the process's start, near enough: the first import of the script
EPOCHS: list[dict] = []  # every epoch trained: when it ended and its val_accuracy


def arguments() -> argparse.Namespace:
    """TRAIN VAL TEST --trials N --max-epochs E --image-size S --seed SEED --dir DIR, as both peers take them."""
    parser = argparse.ArgumentParser()
    for name in ("train", "val", "test"):
        parser.add_argument(name)
    for flag in ("--trials", "--max-epochs", "--image-size", "--seed"):
        parser.add_argument(flag, type=int, required=True)
    parser.add_argument("--dir", required=True)
    return parser.parse_args()


def datasets(train_dir: str, val_dir: str, test_dir: str, size: int):
    """Unbatched, cached training and validation images; the batched test set; the class count."""
    load = lambda d, **kw: keras.utils.image_dataset_from_directory(d, image_size=(size, size), **kw)  # noqa: E731
    train = load(train_dir, batch_size=None, shuffle=False)
    classes = len(train.class_names)
    val = load(val_dir, batch_size=None, shuffle=False).cache()
    test = load(test_dir, batch_size=64, shuffle=False)
    return train.cache(), val, test, classes


def batched(train, val, batch_size: int, seed: int):
    train = train.shuffle(4096, seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return train, val.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def build_cnn(
    size: int, classes: int, learning_rate: float, dropout: float, dense_units: int, seed: int
) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)(inputs)
    x = keras.layers.RandomRotation(0.1, fill_mode="constant", seed=seed + 1)(x)
    x = keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2)(x)
    x = keras.layers.Rescaling(1 / 255)(x)
    for filters in (16, 32, 64, 128, 256):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    x = keras.layers.Dropout(dropout, seed=seed)(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def early_stopping() -> keras.callbacks.Callback:
    return keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=5, restore_best_weights=True)


class EpochLog(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        EPOCHS.append({"ended_at": time.time(), "val_accuracy": float(logs["val_accuracy"])})


def finish(best_val: float, test_accuracy: float, **extra) -> None:
    """The peer's figures as one JSON line on stdout (the benchmark adds the wall time)."""
    print(
        json.dumps(
            {
                "best_val_accuracy": best_val,
                "test_accuracy": test_accuracy,
                "epochs_trained": len(EPOCHS),
                "started_at": STARTED,
                "epochs": EPOCHS,
                **extra,
            }
        )
    )
    sys.stdout.flush()
