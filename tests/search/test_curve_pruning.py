"""The learning-curve rule on hand-made curves, and its Optuna pruner on a study's trials."""

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search.engines.curve_rule import CurveRule, extrapolate
from search.engines.optuna.curve import CurvePruner
from search.engines.pruning import Reference

RULE = CurveRule()
# Finished trials that saturate at 0.70-0.72 within 10 epochs.
FINISHED = [
    [0.30, 0.50, 0.60, 0.65, 0.68, 0.69, 0.70, 0.70, 0.71, 0.71],
    [0.20, 0.45, 0.58, 0.64, 0.67, 0.69, 0.70, 0.71, 0.72, 0.72],
    [0.35, 0.52, 0.60, 0.63, 0.66, 0.68, 0.69, 0.70, 0.70, 0.70],
]
FLAT = [0.05, 0.06, 0.05, 0.06, 0.05, 0.06, 0.05, 0.06, 0.05, 0.06]
PLATEAU = [0.30, 0.42, 0.48, 0.50, 0.51, 0.51, 0.52, 0.52, 0.52, 0.52]  # heading for 0.52
SLOW = [0.10, 0.30, 0.45, 0.55, 0.62, 0.67, 0.71, 0.74, 0.76, 0.77]  # behind everyone until epoch 6, then best


def should_prune(rule, curve, finished, direction, horizon, best=None):
    return rule.should_prune(curve, horizon, Reference(direction, finished, best))


def decisions(curve, finished=FINISHED, direction="maximize", rule=RULE, horizon=10):
    return [should_prune(rule, curve[:n], finished, direction, horizon) for n in range(1, len(curve) + 1)]


def first_cut(curve, **kwargs):
    cuts = decisions(curve, **kwargs)
    return cuts.index(True) if True in cuts else None


def test_a_curve_that_cannot_catch_up_is_stopped_after_the_warm_up():
    assert first_cut(FLAT) == RULE.n_warmup_steps
    assert first_cut(PLATEAU) is not None


def test_the_slow_starter_that_ends_best_is_never_stopped():
    assert not any(decisions(SLOW))
    # ... while the median rule, comparing epochs, would have stopped it at its third epoch
    from search.engines.median_rule import MedianRule

    assert should_prune(MedianRule(), SLOW[:3], FINISHED, "maximize", 10)


def test_a_curve_still_rising_steeply_is_kept():
    steep = [0.05, 0.06, 0.07, 0.30]  # a late start, rising 0.23 in its last epoch
    assert not should_prune(RULE, steep, FINISHED, "maximize", 10)


def test_a_late_start_is_judged_by_its_latest_epochs():
    late = [0.04, 0.04, 0.04, 0.04, 0.30, 0.50, 0.55, 0.56, 0.56]  # flat at chance, then saturating at 0.56
    assert should_prune(RULE, late, FINISHED, "maximize", 10)
    assert not should_prune(CurveRule(window=None), late, FINISHED, "maximize", 10)  # the flat start blurs the fit


def test_a_trial_near_the_best_is_kept_by_the_slack():
    near = [0.69, 0.70, 0.70, 0.70]  # flat, but within 0.02 of the best (0.72)
    assert not should_prune(RULE, near, FINISHED, "maximize", 10)
    assert should_prune(CurveRule(slack=0.0, k=0.0, min_sigma=0.0, peer_band=None), near, FINISHED, "maximize", 10)


def test_no_pruning_before_enough_trials_finished_or_anything_was_reached():
    assert not any(decisions(FLAT, finished=[]))  # the first trial (the baseline) is never cut
    assert not any(decisions(FLAT, finished=FINISHED[:2], rule=CurveRule(n_startup_trials=3)))
    assert any(decisions(FLAT, finished=FINISHED[:1]))  # one finished trial sets the bar by default
    assert not should_prune(CurveRule(n_startup_trials=0), FLAT, [], "maximize", 10)  # nothing reached yet


def test_a_better_value_from_a_pruned_trial_counts():
    at_060 = [0.40, 0.50, 0.55, 0.57, 0.58, 0.58]
    low = [[v - 0.2 for v in c] for c in FINISHED]  # finished trials saturate at 0.50-0.52
    assert not should_prune(RULE, at_060, low, "maximize", 10)
    assert should_prune(RULE, at_060, low, "maximize", 10, best=0.80)


def test_a_peer_that_caught_up_from_the_same_place_keeps_a_trial():
    late = [0.05, 0.05, 0.05, 0.05, 0.05, 0.20, 0.45, 0.65, 0.75, 0.76]  # a finished late riser
    stuck = [0.05, 0.05, 0.05, 0.05]
    peers = CurveRule(peer_band=0.05)
    assert not should_prune(peers, stuck, FINISHED + [late], "maximize", 10)
    assert should_prune(peers, stuck, FINISHED, "maximize", 10)
    assert RULE.peer_band is None and should_prune(RULE, stuck, FINISHED + [late], "maximize", 10)  # off by default


def test_minimize_is_the_mirror_image():
    losses = [[1 - v for v in c] for c in FINISHED]
    assert decisions([1 - v for v in FLAT], losses, "minimize") == decisions(FLAT)
    assert not any(decisions([1 - v for v in SLOW], losses, "minimize"))


def test_missing_epochs_are_skipped():
    assert not should_prune(RULE, [None, None, 0.05], FINISHED, "maximize", 10)  # one value: no fit yet
    assert should_prune(RULE, [0.05, math.nan, 0.05, None, 0.05], FINISHED, "maximize", 10)
    assert not should_prune(RULE, [], FINISHED, "maximize", 10)


@pytest.mark.parametrize("truth", [lambda t: 0.8 - 0.6 * np.exp(-0.5 * t), lambda t: 0.9 - 0.7 * t**-0.8])
def test_the_fit_extrapolates_a_saturating_curve_optimistically(truth):
    t = np.arange(1.0, 7.0)
    predicted, final = extrapolate(t, truth(t), 10), float(truth(np.array(10.0)))
    assert final - 0.005 <= predicted <= final + 0.05  # the better family's guess: never below, a little above


def test_bad_direction_is_an_error():
    with pytest.raises(ValueError, match="direction must be"):
        should_prune(RULE, [1.0], FINISHED, "up", 10)


def _frozen(curve, state, value=None):
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params={},
        distributions={},
        intermediate_values={step: v for step, v in enumerate(curve) if v is not None},
    )


@pytest.mark.parametrize("horizon", [None, 10])
def test_the_optuna_pruner_reads_the_studys_trials(horizon):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for curve in FINISHED:
        study.add_trial(_frozen(curve, TrialState.COMPLETE, value=max(curve)))
    pruner = CurvePruner(horizon)
    assert pruner.prune(study, _frozen(FLAT[:3], TrialState.RUNNING))
    assert not pruner.prune(study, _frozen(SLOW[:3], TrialState.RUNNING))
    assert not pruner.prune(study, _frozen([], TrialState.RUNNING))
    study.add_trial(_frozen([0.5, 0.9], TrialState.PRUNED))  # its 0.9 is the best reached so far
    assert pruner.prune(study, _frozen([0.6, 0.68, 0.70, 0.71], TrialState.RUNNING))
    assert not CurvePruner(horizon).prune(
        optuna.create_study(), _frozen(FLAT[:3], TrialState.RUNNING)
    )  # no trial finished


def test_the_horizon_is_what_the_trial_may_still_train():
    rising = [0.20, 0.30, 0.40, 0.50]
    assert should_prune(
        RULE, rising, FINISHED, "maximize", horizon=5
    )  # one epoch to go: 0.50 + a rise of 0.1 cannot reach 0.72
    assert not should_prune(RULE, rising, FINISHED, "maximize", horizon=30)
    assert not should_prune(
        RULE, rising, FINISHED, "maximize", horizon=4
    )  # its last epoch: stopping saves nothing, it completes


@pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning", "ignore:getName:DeprecationWarning")
def test_kerastuner_gives_the_rule_each_trials_epoch_budget(tmp_path):
    from search.engines.base import Ticket
    from search.engines.kerastuner.adapter import KerasTunerEngine
    from search.options import RunOptions
    from tests.search.fakes import SPACE, SPEC

    engine = KerasTunerEngine(
        SPACE, SPEC, RunOptions("s", tmp_path / "s", trials=5, backend="kerastuner", pruner="curve")
    )
    engine._reference = Reference("maximize", FINISHED, 0.72)
    rising = [0.20, 0.30, 0.40, 0.50]
    assert engine.report(Ticket(3, {}, 0, epoch_budget=5), 3, 0.5, rising)
    assert not engine.report(Ticket(3, {}, 0, epoch_budget=30), 3, 0.5, rising)
