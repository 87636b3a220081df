"""The space DSL on KerasTuner's HyperParameters: every kind, log scales, conditions, defaults."""

import keras_tuner
import pytest

from search import Bool, Choice, Fixed, Float, Int, Space, UsageError
from search.engines.kerastuner.space import declare, decode, encode, encode_values, sample

SPACE = Space(
    lr=Float(1e-4, 1e-1, log=True, default=1e-3),
    dropout=Float(0.0, 0.5, step=0.1, default=0.2),
    units=Int(16, 256, log=True, default=64),
    layers=Int(1, 5, step=2, default=3),
    loss=Choice(["ce", "ce_smooth", "focal"], default="ce"),
    smoothing=Float(0.05, 0.3, default=0.1, when={"loss": "ce_smooth"}),
    gamma=Float(0.5, 5.0, default=2.0, when={"loss": ["focal"]}),
    gamma_decay=Bool(default=True, when={"gamma": 2.0}),
    mode=Choice([None, "a", 3], default="a"),
    extra=Int(1, 3, default=2, when={"mode": [None, 3]}),
    flip=Bool(default=False),
    image_size=Fixed(128),
    tag=Fixed(None),
    tagged=Bool(default=True, when={"tag": None}),
)


def declared(space=SPACE):
    return declare(space, keras_tuner.HyperParameters())


def test_every_kind_maps_to_its_keras_tuner_type():
    hp = declared()
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {
        "lr": "Float",
        "dropout": "Float",
        "units": "Int",
        "layers": "Int",
        "loss": "Choice",
        "smoothing": "Float",
        "gamma": "Float",
        "gamma_decay": "Boolean",
        "mode": "Choice",
        "extra": "Int",
        "flip": "Boolean",
        "image_size": "Fixed",
        "tag": "Fixed",
        "tagged": "Boolean",
    }
    by_name = {p.name: p for p in hp.space}
    assert by_name["lr"].sampling == "log" and by_name["units"].sampling == "log" and by_name["units"].step is None
    assert by_name["dropout"].sampling == "linear" and by_name["dropout"].step == 0.1
    assert by_name["layers"].step == 2 and list(by_name["layers"].values) == [1, 3, 5]
    assert by_name["loss"].values == ["ce", "ce_smooth", "focal"]


def test_log_floats_spread_over_the_decades():
    lr = next(p for p in declared().space if p.name == "lr")
    draws = [lr.random_sample(seed) for seed in range(400)]
    assert all(1e-4 <= v <= 1e-1 for v in draws)
    decades = [sum(lo <= v < lo * 10 for v in draws) for lo in (1e-4, 1e-3, 1e-2)]
    assert all(100 < n < 170 for n in decades), decades  # about a third each, not 1% in the first


def test_defaults_are_the_declared_values():
    hp = declared()
    assert sample(SPACE, hp) == SPACE.defaults()
    assert sample(SPACE, hp) == {
        "lr": 1e-3,
        "dropout": 0.2,
        "units": 64,
        "layers": 3,
        "loss": "ce",
        "mode": "a",
        "flip": False,
        "image_size": 128,
        "tag": None,
        "tagged": True,
    }


def test_declaring_twice_adds_nothing():
    hp = declared()
    assert len(declare(SPACE, hp).space) == len(SPACE)


def test_a_conditional_parameter_is_present_only_when_its_parent_triggers_it():
    hp = declared()
    for loss in ("ce", "ce_smooth", "focal"):
        hp.values["loss"] = loss
        hp.ensure_active_values()  # what the oracle does with a trial's values
        params = sample(SPACE, hp)
        assert ("smoothing" in params) == (loss == "ce_smooth")
        assert ("gamma" in params) == (loss == "focal")
        assert "gamma_decay" not in params or params["gamma"] == 2.0  # grandchild: needs its parent active


def test_values_keras_tuner_cannot_hold_travel_as_labels():
    mode = SPACE["mode"]
    assert [encode(mode, v) for v in mode.values] == ["None", "'a'", "3"]
    assert [decode(mode, encode(mode, v)) for v in mode.values] == [None, "a", 3]
    hp = declared()
    for value, active in ((None, True), ("a", False), (3, True)):
        hp.values["mode"] = encode(mode, value)
        hp.ensure_active_values()
        params = sample(SPACE, hp)
        assert params["mode"] == value and type(params["mode"]) is type(value)
        assert ("extra" in params) == active
    assert sample(SPACE, hp)["tag"] is None and sample(SPACE, hp)["tagged"] is True


def test_sampled_values_are_plain_python_and_hyperband_keys_are_left_out():
    hp = declared()
    hp.values.update({"tuner/epochs": 3, "tuner/initial_epoch": 0, "tuner/trial_id": "1"})
    params = sample(SPACE, hp)
    assert not any(name.startswith("tuner/") for name in params)
    assert type(params["units"]) is int and type(params["lr"]) is float and type(params["flip"]) is bool


def test_encode_values_gives_a_trials_values():
    values = encode_values(SPACE, SPACE.defaults())
    hp = declared()
    hp.values = values
    assert sample(SPACE, hp) == SPACE.defaults() and values["mode"] == "'a'"


def test_oracle_draws_respect_the_conditions():
    hp = declared()
    for seed in range(30):
        for p in hp.space:
            if hp.is_active(p) and p.name not in ("mode",):
                hp.values[p.name] = p.random_sample(seed)
        hp.ensure_active_values()
        params = sample(SPACE, hp)
        assert all(SPACE.is_active(name, params) for name in params)
        assert all(SPACE[name].contains(value) for name, value in params.items())


def test_parents_that_are_not_nested_are_refused_with_the_parameter_named():
    space = Space(a=Bool(), b=Choice(["x", "y"]), c=Int(1, 2, when={"a": True, "b": "x"}))
    with pytest.raises(UsageError, match="parameter `c`: .*`a` and `b` are not nested.*--backend optuna"):
        declared(space)


def test_nested_parents_are_accepted():
    space = Space(a=Bool(), b=Choice(["x", "y"], when={"a": True}), c=Int(1, 2, when={"a": True, "b": "x"}))
    hp = declared(space)
    hp.values.update({"a": True, "b": "x"})
    hp.ensure_active_values()
    assert set(sample(space, hp)) == {"a", "b", "c"}
    hp.values["a"] = False
    hp.ensure_active_values()
    assert sample(space, hp) == {"a": False}
