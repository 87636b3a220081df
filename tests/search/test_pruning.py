"""The engine-agnostic median rule: its cases, and the same answers as Optuna's MedianPruner."""

import math
import random

import optuna
import pytest
from optuna.trial import TrialState

from search.engines.median_rule import MedianRule, curve_of
from search.engines.pruning import Reference

GOOD = [[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7], [0.6, 0.7, 0.8, 0.9]]  # median at epoch 2: 0.7


def median_should_prune(curve, finished, direction, **constants):
    return MedianRule(**constants).should_prune(curve, 10, Reference(direction, finished))  # the horizon plays no part


def test_a_curve_below_the_median_is_pruned_after_the_warm_up():
    assert not median_should_prune([0.1], GOOD, "maximize")
    assert not median_should_prune([0.1, 0.1], GOOD, "maximize")  # epochs 0 and 1 are the warm-up
    assert median_should_prune([0.1, 0.1, 0.1], GOOD, "maximize")
    assert not median_should_prune([0.1, 0.1, 0.75], GOOD, "maximize")


def test_no_pruning_before_enough_trials_have_finished():
    assert not median_should_prune([0.1, 0.1, 0.1], GOOD[:2], "maximize")
    assert median_should_prune([0.1, 0.1, 0.1], GOOD[:2], "maximize", n_startup_trials=2)
    assert not median_should_prune([0.1, 0.1, 0.1], [], "maximize", n_startup_trials=0)


def test_the_best_value_so_far_is_compared():
    assert not median_should_prune([0.1, 0.9, 0.1], GOOD, "maximize")


def test_minimize_prunes_curves_above_the_median():
    losses = [[1.0, 0.9, 0.8], [1.0, 0.8, 0.6], [1.0, 0.7, 0.4]]
    assert median_should_prune([2.0, 2.0, 2.0], losses, "minimize")
    assert not median_should_prune([2.0, 2.0, 0.5], losses, "minimize")


def test_only_finished_curves_that_reached_the_epoch_count():
    short = [[0.9], [0.9], [0.9]]
    assert not median_should_prune([0.1, 0.1, 0.1], short, "maximize")  # nobody reached epoch 2
    assert median_should_prune([0.1, 0.1, 0.1], short + [[0.9, 0.9, 0.2]], "maximize")  # median of one: 0.2


def test_missing_epochs_are_skipped():
    assert not median_should_prune([0.1, 0.1, None], GOOD, "maximize")  # latest value is at epoch 1
    assert median_should_prune([None, math.nan, 0.1], GOOD, "maximize")
    assert not median_should_prune([], GOOD, "maximize")


def test_curve_of_a_history():
    history = [{"epoch": 0, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": float("nan")}, {"epoch": 3, "loss": 1.0}]
    assert curve_of(history, "val_accuracy") == [0.5, None, None, None]


def test_bad_direction_is_an_error():
    with pytest.raises(ValueError, match="direction must be"):
        median_should_prune([1.0], GOOD, "up")


def _frozen(curve, state, value=None):
    values = {step: v for step, v in enumerate(curve) if v is not None}
    return optuna.trial.create_trial(state=state, value=value, intermediate_values=values, params={}, distributions={})


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_agrees_with_optunas_median_pruner(direction):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)

    def draw():
        return [
            rng.choice([None, round(rng.random(), 2)]) if rng.random() < 0.15 else round(rng.random(), 2)
            for _ in range(rng.randint(1, 6))
        ]

    checked = pruned = 0
    for _ in range(300):
        finished = [draw() for _ in range(rng.randint(0, 6))]
        curve = draw()
        study = optuna.create_study(direction=direction)
        for done in finished:
            study.add_trial(_frozen(done, TrialState.COMPLETE, value=0.5))
        study.add_trial(_frozen([0.0, 0.0, 0.0, 0.0], TrialState.PRUNED))  # pruned trials do not count
        if all(v is None for v in curve):
            continue
        expected = pruner.prune(study, _frozen(curve, TrialState.RUNNING))
        assert median_should_prune(curve, finished, direction) == expected, (curve, finished)
        checked += 1
        pruned += expected
    assert checked > 250 and 10 <= pruned <= checked - 10  # both answers were compared


def test_every_rule_is_found_by_its_name_and_has_the_one_signature():
    from search.engines.choices import PRUNERS
    from search.engines.curve_rule import CurveRule
    from search.engines.pruning import NoPruning, PruningRule
    from search.engines.rules import RULES, pruning_rule

    assert {name: type(pruning_rule(name)) for name in RULES} == {
        "curve": CurveRule,
        "median": MedianRule,
        "none": NoPruning,
    }
    assert set(PRUNERS["kerastuner"]) == set(RULES)  # every pruner the KerasTuner adapter applies is a rule
    flat = [0.1, 0.1, 0.1]
    for name in RULES:
        rule = pruning_rule(name)
        assert isinstance(rule, PruningRule)
        assert rule.should_prune(flat, 10, Reference("maximize", GOOD)) is (name != "none")


def test_an_unknown_rule_is_one_line_naming_the_choices():
    from search.engines.rules import pruning_rule

    with pytest.raises(ValueError) as raised:
        pruning_rule("asha")
    assert str(raised.value) == "A pruning rule must be one of curve, median, none. Received: name='asha'"


@pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning", "ignore:getName:DeprecationWarning")
@pytest.mark.parametrize("name", ["curve", "median", "none"])
def test_the_kerastuner_adapter_applies_the_rule_its_study_names(tmp_path, name):
    from search.engines.base import Ticket
    from search.engines.kerastuner.adapter import KerasTunerEngine
    from search.engines.rules import RULES
    from search.options import RunOptions
    from tests.search.fakes import SPACE, SPEC

    engine = KerasTunerEngine(SPACE, SPEC, RunOptions("s", tmp_path / "s", trials=5, backend="kerastuner", pruner=name))
    assert type(engine.rule) is RULES[name]
    engine._reference = Reference("maximize", GOOD)
    assert engine.report(Ticket(3, {}, 0, epoch_budget=10), 2, 0.1, [0.1, 0.1, 0.1]) is (name != "none")
