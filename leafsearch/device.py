"""What the trial runs on: accelerator detection, the dtype policy, and library versions."""

from __future__ import annotations

import platform


def gpus() -> list:
    """The visible GPUs (TensorFlow's view; empty on other backends' CPU runs)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        import jax

        return [d for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


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

    out = {"python": platform.python_version(), "keras": keras.__version__, "keras_backend": keras.backend.backend(),
           "numpy": numpy.__version__, "optuna": optuna.__version__}
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
