"""Tests for leafsearch.schedules (triangular cyclical learning rates)."""

import json

import keras
import numpy as np
import pytest

from leafsearch.training.schedules import Triangular2CyclicalLearningRate, TriangularCyclicalLearningRate


def closed_form(step, initial, maximal, step_size, halve):
    """Smith (2017), as in tfa.optimizers.CyclicalLearningRate."""
    cycle = np.floor(1 + step / (2 * step_size))
    x = np.abs(step / step_size - 2 * cycle + 1)
    scale = 1 / 2 ** (cycle - 1) if halve else 1.0
    return initial + (maximal - initial) * np.maximum(0, 1 - x) * scale


def _value(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


# initial=1, maximal=3, step_size=4: a cycle is 8 steps, peaks at 4, 12, 20.
TRIANGULAR_BY_HAND = {0: 1.0, 2: 2.0, 4: 3.0, 6: 2.0, 8: 1.0, 10: 2.0, 12: 3.0, 20: 3.0, 9: 1.5}
TRIANGULAR2_BY_HAND = {
    0: 1.0,
    2: 2.0,
    4: 3.0,
    8: 1.0,
    10: 1.5,
    12: 2.0,  # cycle 2: amplitude 1
    16: 1.0,
    18: 1.25,
    20: 1.5,  # cycle 3: amplitude 0.5
    28: 1.25,
}  # cycle 4 peak: amplitude 0.25


@pytest.mark.parametrize(
    "cls, by_hand",
    [
        (TriangularCyclicalLearningRate, TRIANGULAR_BY_HAND),
        (Triangular2CyclicalLearningRate, TRIANGULAR2_BY_HAND),
    ],
)
def test_values_by_hand(cls, by_hand):
    schedule = cls(initial_learning_rate=1.0, maximal_learning_rate=3.0, step_size=4)
    for step, expected in by_hand.items():
        assert _value(schedule, step) == pytest.approx(expected, rel=1e-6), step


@pytest.mark.parametrize(
    "cls, halve",
    [(TriangularCyclicalLearningRate, False), (Triangular2CyclicalLearningRate, True)],
)
def test_matches_closed_form(cls, halve):
    kwargs = dict(initial_learning_rate=1e-4, maximal_learning_rate=1e-2, step_size=5)
    schedule = cls(**kwargs)
    steps = list(range(0, 41)) + [2.5, 7.5, 12.5, 22.5]
    expected = closed_form(np.array(steps, np.float64), 1e-4, 1e-2, 5, halve)
    got = [_value(schedule, s) for s in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_integer_step_tensor_and_variable():
    schedule = Triangular2CyclicalLearningRate(0.1, 0.5, step_size=10)
    step = keras.Variable(15, dtype="int64", trainable=False)
    assert _value(schedule, step) == pytest.approx(0.3, rel=1e-6)
    step.assign(35)  # cycle 2 descending half: 0.1 + 0.4 * 0.5 * 0.5
    assert _value(schedule, step) == pytest.approx(0.2, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(step_size=0), r"Argument `step_size` must be > 0. Received: step_size=0"),
        (dict(step_size=-3), r"Received: step_size=-3"),
        (
            dict(initial_learning_rate=0.0),
            r"`initial_learning_rate` must be > 0. "
            r"Received: initial_learning_rate=0.0",
        ),
        (dict(maximal_learning_rate=1e-4), r"`maximal_learning_rate` must be >= `initial_learning_rate`"),
    ],
)
@pytest.mark.parametrize("cls", [TriangularCyclicalLearningRate, Triangular2CyclicalLearningRate])
def test_arguments_validated(cls, kwargs, message):
    args = dict(initial_learning_rate=1e-3, maximal_learning_rate=1e-2, step_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        cls(**args)


def test_constant_schedule_allowed():
    schedule = TriangularCyclicalLearningRate(1e-3, 1e-3, step_size=4)
    assert _value(schedule, 3) == pytest.approx(1e-3)


@pytest.mark.parametrize("cls", [TriangularCyclicalLearningRate, Triangular2CyclicalLearningRate])
def test_config_round_trip(cls):
    schedule = cls(1e-4, 1e-2, step_size=7, name="clr")
    config = schedule.get_config()
    assert config == {"initial_learning_rate": 1e-4, "maximal_learning_rate": 1e-2, "step_size": 7, "name": "clr"}
    assert cls.from_config(config).get_config() == config
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
    assert serialized["registered_name"] == f"leafsearch>{cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls
    assert revived.get_config() == config
    assert _value(revived, 10) == pytest.approx(_value(schedule, 10))


def test_inside_adam_saved_and_loaded(tmp_path):
    keras.utils.set_random_seed(0)
    schedule = Triangular2CyclicalLearningRate(1e-3, 1e-2, step_size=2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 2, 12), 2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 3 steps
    # The optimizer's current learning rate is the schedule at step 3.
    assert float(model.optimizer.learning_rate) == pytest.approx(closed_form(3.0, 1e-3, 1e-2, 2, True), rel=1e-6)
    path = tmp_path / "clr.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    lr = loaded.optimizer._learning_rate
    assert type(lr) is Triangular2CyclicalLearningRate
    assert lr.get_config() == schedule.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 3
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
