"""What a trial's model costs: its parameter count, FLOPs per image and inference time per image.

The seed chose its model by accuracy *and* efficiency, so every trial records these next to its
score (`search.records.costs` carries them to the leaderboard).

Measuring cost, paid once per trial (before it trains when the study bounds or optimises a cost,
otherwise after it trained to its end; loop.py): one trace of the inference graph for the
FLOP count (TensorFlow backend only) and `1 + REPEATS` predict calls on a batch of `BATCH` images.
Measured on 2 busy CPU cores: 0.5 s for the 32 px test CNN, 0.5 s for the 128 px CNN, 5.5 s for
EfficientNet-B0 at 224 px, 18 s for EfficientNet-B4 at 380 px (mostly the CPU's slow predict
calls; on a GPU the traces dominate and the calls take milliseconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from leafsearch.runtime import gpus
from search.records.files import read_json, write_json_atomic

BATCH = 8  # images per timed predict call
REPEATS = 3  # timed calls after one warm-up call (which builds the predict function)


def parameter_count(model: keras.Model) -> int:
    """Every weight of the model, trainable or not (a frozen backbone still has to be stored and run)."""
    return int(model.count_params())


def flops_per_image(model: keras.Model) -> int | None:
    """Floating-point operations of one image's forward pass, as TensorFlow's profiler counts them
    (a multiply-add is 2), on the inference graph at batch 1. None under another Keras backend, or
    when the profiler finds no counted operation."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    shape = [1, *model.input_shape[1:]]
    graph = (
        tf.function(lambda x: model(x, training=False))
        .get_concrete_function(tf.TensorSpec(shape, model.inputs[0].dtype))
        .graph
    )
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the profiler is a TF1 API: silence its deprecation notice
    try:
        profile = tf.compat.v1.profiler.profile(
            graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    finally:
        logger.setLevel(level)
    return int(profile.total_float_ops) or None


def inference_ms(model: keras.Model, images: np.ndarray) -> float:
    """Milliseconds per image of `predict_on_batch` on up to BATCH of `images`, on the device the
    model runs on: the median of REPEATS calls after a warm-up call."""
    batch = np.asarray(images[:BATCH])
    if len(batch) == 0:
        raise ValueError("inference_ms needs at least one image")
    model.predict_on_batch(batch)  # builds (traces / compiles) the predict function
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        model.predict_on_batch(batch)  # returns NumPy: the device has finished
        times.append(time.perf_counter() - started)
    return round(1000.0 * statistics.median(times) / len(batch), 4)


def measure(model: keras.Model, images: np.ndarray) -> dict[str, Any]:
    """The cost record of one model (see search/costs.py for its columns)."""
    costs: dict[str, Any] = {"params": parameter_count(model), "infer_ms": inference_ms(model, images)}
    flops = flops_per_image(model)
    if flops is not None:
        costs["flops"] = flops
    return costs


def architecture_key(model: keras.Model) -> str:
    """Identifies what the costs depend on: each top-level layer's kind, output shape, weight count
    and activation, the dtype policy, the backend and the GPUs in view. Dropout rates, seeds and learning rates do
    not change them, so trials that differ only in those share one measurement."""
    layers = [
        (
            type(layer).__name__,
            _output_shape(layer),
            layer.count_params() if layer.built else 0,
            getattr(getattr(layer, "activation", None), "__name__", ""),
        )
        for layer in model.layers
    ]
    described = {
        "input": str(model.input_shape),
        "layers": layers,
        "policy": keras.config.dtype_policy().name,
        "backend": keras.backend.backend(),
        "gpus": len(gpus()),
    }  # infer_ms is the device's
    return hashlib.sha1(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]


def _output_shape(layer: keras.layers.Layer) -> str:
    try:
        return str(layer.output.shape)
    except (AttributeError, ValueError):  # a layer used more than once has no single output
        return ""


def measure_cached(model: keras.Model, images: np.ndarray, cache_dir: Path | None) -> dict[str, Any]:
    """`measure`, reused for every later model of the same architecture found in `cache_dir` (the
    study's decode cache folder, on this machine): a trace and timed calls saved per trial (18 s
    for EfficientNet-B4 at 380 px on a CPU)."""
    if cache_dir is None:
        return measure(model, images)
    path = Path(cache_dir) / "costs" / f"{architecture_key(model)}.json"
    try:
        cached = read_json(path, None)
    except ValueError:  # a damaged cache file is measured again
        cached = None
    if isinstance(cached, dict) and cached.get("params") == parameter_count(model):
        return cached
    costs = measure(model, images)
    write_json_atomic(path, costs)
    return costs
