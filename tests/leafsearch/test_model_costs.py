"""The cost measurement against closed-form counts on a tiny model."""

import keras
import numpy as np
import pytest

from leafsearch import costs


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
