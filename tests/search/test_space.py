"""The space DSL: sampling respects bounds, log scales and conditions; validation finds every mistake."""

import math
import random

import numpy as np
import optuna
import pytest

from search import Bool, Choice, Fixed, Float, Int, Space, UsageError
from search.engines.optuna.space import sample


def recipe_space() -> Space:
    return Space(
        batch_size=Choice([8, 16, 32, 64, 128]),
        learning_rate=Float(1e-5, 1e-1, log=True),
        dropout=Float(0.0, 0.5),
        dense_units=Int(128, 1024, step=128),
        augment=Bool(),
        loss=Choice(["ce", "ce_smooth", "focal"]),
        label_smoothing=Float(0.0, 0.3, when={"loss": "ce_smooth"}),
        focal_gamma=Float(0.5, 5.0, when={"loss": ["focal"]}),
        image_size=Fixed(64),
    )


def optuna_samples(space: Space, n: int, sampler=None) -> list[dict]:
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=1))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(sample(space, trial))
        study.tell(trial, 0.0)
    return out


def test_optuna_sampling_respects_bounds_types_and_steps():
    for params in optuna_samples(recipe_space(), 60):
        assert params["batch_size"] in (8, 16, 32, 64, 128)
        assert 1e-5 <= params["learning_rate"] <= 1e-1
        assert 0.0 <= params["dropout"] <= 0.5
        assert isinstance(params["dense_units"], int) and params["dense_units"] % 128 == 0
        assert 128 <= params["dense_units"] <= 1024
        assert isinstance(params["augment"], bool)
        assert params["image_size"] == 64


def test_log_scale_samples_spread_over_decades():
    logs = [math.log10(p["learning_rate"]) for p in optuna_samples(recipe_space(), 200)]
    # uniform in log10 over [-5, -1]: each decade gets about a quarter of the draws
    counts = np.histogram(logs, bins=[-5, -4, -3, -2, -1])[0]
    assert counts.min() > 25, counts
    linear = [p["dropout"] for p in optuna_samples(recipe_space(), 200)]
    assert abs(np.mean(linear) - 0.25) < 0.05


def test_conditional_parameter_present_only_under_its_parent_value():
    seen = set()
    for params in optuna_samples(recipe_space(), 80):
        seen.add(params["loss"])
        assert ("label_smoothing" in params) == (params["loss"] == "ce_smooth")
        assert ("focal_gamma" in params) == (params["loss"] == "focal")
        if "label_smoothing" in params:
            assert 0.0 <= params["label_smoothing"] <= 0.3
    assert seen == {"ce", "ce_smooth", "focal"}


def test_child_of_an_inactive_parent_is_inactive_and_parents_sample_first():
    space = Space(
        c=Float(0.0, 1.0, when={"b": True}),  # defined before its parent
        a=Choice(["x", "y"]),
        b=Bool(when={"a": "y"}),
    )
    assert space.problems() == []
    rng = random.Random(0)
    for _ in range(50):
        params = space.sample(
            lambda name, p: (
                rng.choice(p.values)
                if isinstance(p, Choice)
                else rng.choice([True, False])
                if isinstance(p, Bool)
                else rng.uniform(p.low, p.high)
            )
        )
        if params["a"] == "x":
            assert "b" not in params and "c" not in params
        assert ("c" in params) == (params.get("b") is True)
        assert list(params) == [n for n in ["c", "a", "b"] if n in params]  # definition order kept


def test_defaults_follow_conditions():
    space = Space(
        loss=Choice(["ce", "ce_smooth"], default="ce_smooth"),
        label_smoothing=Float(0, 0.3, default=0.1, when={"loss": "ce_smooth"}),
    )
    assert space.defaults() == {"loss": "ce_smooth", "label_smoothing": 0.1}


@pytest.mark.parametrize(
    "param, fragment",
    [
        (Choice([]), "choices must be a non-empty list"),
        (Float(1.0, 1.0), "low must be < high"),
        (Float(0.5, 0.1), "low must be < high"),
        (Int(10, 2), "low must be < high"),
        (Float(0.0, 1.0, log=True), "log=True needs low > 0"),
        (Int(-1, 8, log=True), "log=True needs low > 0"),
        (Float(0.0, 1.0, default=2.0), "default 2.0 is outside"),
        (Choice(["a", "a"]), "distinct"),
        (Choice([[1, 2]]), "choices must be str, int, float, bool or None"),
        (Int(1, 8, step=0), "step must be > 0"),
        (Float("a", 1.0), "must be numbers"),
    ],
)
def test_each_validation_error_names_the_parameter(param, fragment):
    problems = Space(my_param=param).problems()
    assert len(problems) == 1
    assert problems[0].startswith("parameter `my_param`:")
    assert fragment in problems[0]


def test_condition_on_unknown_parent_and_impossible_value():
    space = Space(
        loss=Choice(["ce", "ce_smooth"]),
        smoothing=Float(0.0, 0.3, when={"losss": "ce_smooth"}),
        gamma=Float(0.0, 3.0, when={"loss": "focal"}),
    )
    problems = space.problems()
    assert any("`smoothing`" in p and "unknown parameter `losss`" in p for p in problems)
    assert any("`gamma`" in p and "'focal' can never hold" in p for p in problems)


def test_condition_cycle_is_reported():
    space = Space(a=Bool(when={"b": True}), b=Bool(when={"a": True}))
    assert any("cycle" in p for p in space.problems())


def test_unknown_names_are_reported_against_the_known_vocabulary():
    problems = Space(learnin_rate=Float(1e-4, 1e-2)).problems(known_names={"learning_rate", "dropout"})
    assert problems == ["parameter `learnin_rate`: unknown name; known parameters are dropout, learning_rate"]


def test_validate_reports_every_problem_in_one_line():
    space = Space(a=Choice([]), b=Float(2, 1))
    with pytest.raises(UsageError) as info:
        space.validate("spaces/x.py")
    message = str(info.value)
    assert message.startswith("spaces/x.py: invalid space:")
    assert "`a`" in message and "`b`" in message and "\n" not in message


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("batch_size", "16", 16),
        ("learning_rate", "0.001", 0.001),
        ("loss", "ce_smooth", "ce_smooth"),
        ("augment", "false", False),
        ("dense_units", "256", 256),
        ("image_size", "64", 64),
    ],
)
def test_pin_fixes_a_value_of_the_space(name, text, expected):
    pinned = recipe_space().pin(name, text)
    assert isinstance(pinned[name], Fixed) and pinned[name].value == expected
    for params in optuna_samples(pinned, 5):
        if name in params:
            assert params[name] == expected and type(params[name]) is type(expected)


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("batch_size", "12", "outside the space"),
        ("learning_rate", "1.5", "outside the space"),
        ("dense_units", "200", "outside the space"),
        ("loss", "mse", "outside the space"),
        ("batch_size", "big", "outside the space"),
        ("nope", "1", "unknown parameter `nope`"),
    ],
)
def test_pin_rejects_unknown_names_and_values_outside_the_space(name, text, fragment):
    with pytest.raises(UsageError, match=fragment):
        recipe_space().pin(name, text)


def test_pinned_conditional_keeps_its_condition():
    pinned = recipe_space().pin("label_smoothing", "0.2")
    for params in optuna_samples(pinned, 30):
        assert ("label_smoothing" in params) == (params["loss"] == "ce_smooth")


def test_to_dict_changes_when_a_range_changes():
    assert recipe_space() == recipe_space()
    changed = Space({**dict(recipe_space().items()), "dropout": Float(0.0, 0.6)})
    assert changed != recipe_space()
