"""The cost measurement against closed-form counts on a tiny model."""

import keras
import numpy as np
import pytest

from leafsearch.models import costs


def dense_model() -> keras.Model:
    inputs = keras.Input(shape=(4,))
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def test_parameter_count_and_timing():
    model = dense_model()
    measured = costs.measure(model, np.ones((2, 4), dtype="float32"))
    assert measured["params"] == costs.parameter_count(model) == 4 * 3 + 3
    assert measured["infer_ms"] > 0


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="FLOPs are counted by TensorFlow's profiler")
def test_flops_of_a_dense_layer_are_its_multiply_adds_and_bias():
    # x @ W: 4 x 3 multiply-adds = 24 operations; + b: 3.
    assert costs.flops_per_image(dense_model()) == 2 * 4 * 3 + 3


def test_costs_are_measured_once_per_architecture(tmp_path, monkeypatch):
    from leafsearch.models.cnn import build_cnn
    from leafsearch.training.recipe import resolve

    def cnn(**params):
        return build_cnn(resolve({"image_size": 16, **params}, "cnn"), 3, seed=0)

    calls = []
    real = costs.measure
    monkeypatch.setattr(costs, "measure", lambda model, images: calls.append(model.name) or real(model, images))
    images = np.zeros((2, 16, 16, 3), dtype="uint8")
    first = costs.measure_cached(cnn(dropout=0.1), images, tmp_path)
    again = costs.measure_cached(cnn(dropout=0.4, learning_rate=0.01), images, tmp_path)  # the same layers and shapes
    assert again == first and len(calls) == 1
    narrower = costs.measure_cached(cnn(dense_units=64), images, tmp_path)
    assert len(calls) == 2 and narrower["params"] < first["params"]
    assert costs.architecture_key(cnn(activation="mish")) != costs.architecture_key(cnn())
    (next((tmp_path / "costs").iterdir())).write_text("{not json")  # a damaged entry is measured again
    costs.measure_cached(cnn(dropout=0.1), images, tmp_path)
    costs.measure_cached(cnn(dense_units=64), images, tmp_path)
    assert len(calls) == 3
