"""`--warm-start STUDY`: the earlier study's best complete trials, projected onto the new space,
run first when the new study is created (both engines), never again on resume; bad input is one
UsageError before anything is written."""

import json

import numpy as np
import pytest
from optuna.trial import TrialState

from search import Bool, Choice, Fixed, Float, Int, Space, UsageError
from search.warmstart import how_many, plan
from tests.search import toy_study
from tests.search.fakes import ENGINES, Curve, board, run

pytestmark = [
    pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName:DeprecationWarning"),
]
engines = pytest.mark.parametrize("backend, algorithm", ENGINES, ids=[b for b, _ in ENGINES])

# The toy study's best complete trials are 1 (0.70) and 4 (0.65); it also has batch_size=Fixed(16).
NEW = Space(
    learning_rate=Float(1e-3, 1e-1, log=True, default=0.01),  # trial 4's 2e-4 is outside
    dense_units=Int(64, 256, step=64, default=128),  # trial 4's 448 is outside
    loss=Choice(["ce", "<b>x"], default="ce"),
    label_smoothing=Float(0.0, 0.2, when={"loss": "<b>x"}, default=0.0),  # trial 4's 0.25 is outside
    width=Choice([8, 16, 32], default=16),  # new: its default
)
WARM_1 = {"learning_rate": 3e-3, "dense_units": 256, "loss": "<b>x", "label_smoothing": 0.1, "width": 16}
WARM_4 = {"learning_rate": 0.01, "dense_units": 128, "loss": "<b>x", "label_smoothing": 0.0, "width": 16}
BASELINE = {"learning_rate": 0.01, "dense_units": 128, "loss": "ce", "width": 16}


def test_how_many_is_a_quarter_of_the_target_between_1_and_5():
    assert [how_many(n) for n in (1, 3, 4, 8, 20, 100)] == [1, 1, 1, 2, 5, 5]


def test_projection_keeps_the_values_the_new_space_takes_and_defaults_the_rest():
    space = Space(
        size=Fixed(380),
        units=Int(64, 256, step=64, default=64),
        flip=Bool(default=False),
        opt=Choice(["adam", "sgd"], default="adam"),
        momentum=Float(0.5, 0.99, when={"opt": "sgd"}, default=0.9),
        rate=Float(1e-4, 1e-2, log=True),
    )  # no default: the engine draws it
    earlier = {
        "size": np.int64(256),
        "units": 128.0,
        "flip": "True",
        "opt": "adam",
        "momentum": 0.8,
        "rate": 0.5,
        "patience": 3,
    }
    projected, dropped = space.project(earlier)
    assert projected == {"size": 380, "units": 128, "flip": True, "opt": "adam"}
    assert type(projected["units"]) is int
    assert dropped == {"size": 256, "momentum": 0.8, "rate": 0.5, "patience": 3}  # momentum: inactive under adam
    assert space.project({"units": 100})[0]["units"] == 64  # off the step: the default


def test_the_plan_projects_the_best_trials_and_names_what_was_dropped(tmp_path):
    toy_study.make_study(tmp_path)
    warm = plan(tmp_path, "toy", "new", NEW, target=8)
    assert warm.trials == ((1, WARM_1), (4, WARM_4))
    assert warm.note == (
        "warm start from toy: 2 trials queued first (its trials 1, 4, projected onto this space); "
        "then the baseline (the space's defaults); dropped learning_rate=0.0002 (new space: a number in "
        "[0.001, 0.1]), dense_units=448 (new space: an integer in [64, 256] step 64), label_smoothing=0.25 "
        "(new space: a number in [0.0, 0.2], only when loss in ['<b>x']), batch_size (not in the new space)"
    )


def test_duplicates_and_the_baseline_among_them_are_run_once(tmp_path):
    toy_study.make_study(tmp_path)
    narrow = Space(loss=Choice(["ce", "<b>x"], default="<b>x"), width=Choice([8, 16], default=16))
    warm = plan(tmp_path, "toy", "new", narrow, target=12)  # best 3: trials 1, 4 and 0
    assert warm.trials == ((1, {"loss": "<b>x", "width": 16}), (0, {"loss": "ce", "width": 16}))
    assert "1 duplicate left out" in warm.note and "the baseline (the space's defaults) is one of them" in warm.note
    objective = Curve()
    run(tmp_path, objective, trials=3, space=narrow, name="new", warm_start=warm)
    assert objective.calls[:2] == [{"loss": "<b>x", "width": 16}, {"loss": "ce", "width": 16}]
    assert objective.calls[2] not in objective.calls[:2]  # the baseline was not run a second time


@engines
def test_a_new_study_runs_the_projected_trials_first_then_the_baseline(tmp_path, backend, algorithm):
    toy_study.make_study(tmp_path)
    warm = plan(tmp_path, "toy", "s", NEW, target=8)
    objective = Curve()
    run(tmp_path, objective, trials=4, backend=backend, space=NEW, warm_start=warm)
    assert objective.calls[:3] == [WARM_1, WARM_4, BASELINE]
    assert objective.calls[3] not in objective.calls[:3]
    out = (tmp_path / "out.txt").read_text()
    assert "Warm start from toy: 2 trials queued first" in " ".join(out.split())
    recorded = json.loads((tmp_path / "s" / "study.json").read_text())["warm_start"]
    assert recorded == {"study": "toy", "trials": [1, 4]}


@engines
def test_resuming_queues_nothing_again_and_is_never_refused_for_the_flag(tmp_path, backend, algorithm):
    toy_study.make_study(tmp_path)
    warm = plan(tmp_path, "toy", "s", NEW, target=8)
    run(tmp_path, Curve(), trials=3, backend=backend, space=NEW, warm_start=warm)
    assert plan(tmp_path, "toy", "s", NEW, target=8).trials == ()  # the study exists: nothing is read
    resumed = Curve()
    run(tmp_path, resumed, trials=4, backend=backend, space=NEW, warm_start=warm)  # even handed the trials again
    assert len(resumed.calls) == 1 and resumed.calls[0] not in (WARM_1, WARM_4, BASELINE)
    assert "exists, so it resumes" in (tmp_path / "out.txt").read_text()
    without = Curve()
    run(tmp_path, without, trials=5, backend=backend, space=NEW)  # and without the flag
    assert len(without.calls) == 1 and len(board(tmp_path)) == 5
    assert json.loads((tmp_path / "s" / "study.json").read_text())["warm_start"] == {"study": "toy", "trials": [1, 4]}


@engines
def test_an_interrupted_study_keeps_the_rest_of_its_queue(tmp_path, backend, algorithm):
    toy_study.make_study(tmp_path)
    warm = plan(tmp_path, "toy", "s", NEW, target=8)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, Curve(interrupt_at=1), trials=4, backend=backend, space=NEW, warm_start=warm)
    resumed = Curve()
    run(tmp_path, resumed, trials=4, backend=backend, space=NEW)
    # the interrupted one continues and the rest of the queue runs (Optuna queues the interrupted one last)
    assert sorted(map(repr, resumed.calls[:3])) == sorted(map(repr, [WARM_1, WARM_4, BASELINE]))
    assert len(board(tmp_path)) == 4


def test_bad_input_is_one_usage_error_and_writes_nothing(tmp_path):
    with pytest.raises(
        UsageError, match=r"--warm-start: no study 'nope' in .*/ \(leafsearch studies --results .* lists them\)"
    ):
        plan(tmp_path, "nope", "s", NEW, target=8)
    with pytest.raises(UsageError, match="--warm-start s: that is the study being run"):
        plan(tmp_path, "s", "s", NEW, target=8)
    toy_study.make_study(
        tmp_path,
        name="failed",
        trials=[(TrialState.FAIL, None, 1, {"learning_rate": 1e-3, "dense_units": 64, "loss": "ce"}, "nan loss")],
    )
    with pytest.raises(UsageError, match="study 'failed' has no complete trial yet"):
        plan(tmp_path, "failed", "s", NEW, target=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed"]
