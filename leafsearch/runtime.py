"""What the trial runs on: accelerator detection, the dtype policy, library versions, and a quiet
Keras import. The lowest layer: it imports no other leafsearch module, and Keras only when asked."""

from __future__ import annotations

import importlib
import os
import platform
import sys


def import_keras_quietly() -> None:
    """Import Keras (and, under the TensorFlow backend, TensorFlow) with TensorFlow's C++ start-up
    chatter silenced (`_quietly`)."""
    _quietly("keras")


def import_tensorflow_quietly():
    """TensorFlow, for what needs it under any backend (tf.summary for TensorBoard). Under JAX,
    Keras did not import it, so without this its start-up chatter would print in every trial
    (six lines, between the progress lines)."""
    _quietly("tensorflow")
    import tensorflow as tf

    return tf


def _quietly(module: str) -> None:
    """Import `module` with TensorFlow's C++ start-up chatter ("Could not find cuda drivers",
    oneDNN, absl's pre-init warning) silenced: it ignores TF_CPP_MIN_LOG_LEVEL because it is
    printed before logging is set up, so stderr goes to /dev/null for the import when
    TF_CPP_MIN_LOG_LEVEL is 3 (the CLI's default). Set it below 3 to see it."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3" or module in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                importlib.import_module(module)  # imported for its side effect (TF start-up)
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def gpus() -> list:
    """The visible GPUs (TensorFlow's view; empty on other backends' CPU runs)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        import jax

        return [d for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # auto: mixed_float16 on a GPU, float32 on the CPU


def set_precision(choice: str) -> str:
    """Apply the dtype policy: mixed_float16 on a GPU when `auto`, float32 on the CPU."""
    import keras

    policy = choice
    if choice == "auto":
        policy = "mixed_float16" if gpus() else "float32"
    keras.mixed_precision.set_dtype_policy(policy)
    return policy


def describe() -> str:
    found = gpus()
    return f"{len(found)} GPU(s)" if found else "CPU"


def versions() -> dict[str, str]:
    """Library versions recorded with every trial, so a result can be reproduced."""
    import keras
    import numpy
    import optuna

    out = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "optuna": optuna.__version__,
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    return out


def report(precision: str) -> dict:
    """What trials run on: the device, the dtype policy `precision` resolves to, the versions.

    Run where the trials run (a child of the fork server), so the study process need not import
    Keras to print it and record it with every trial."""
    policy = set_precision(precision)
    return {"device": describe(), "gpus": len(gpus()), "policy": policy, "versions": versions()}
