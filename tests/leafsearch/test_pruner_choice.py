"""`--pruner` from the command line to the study, without training: accepted per engine, and kept
in an Optuna study's settings for a joining worker (`leafsearch worker` prunes the same way)."""

import pytest

from leafsearch.cli.main import build_parser
from leafsearch.training import setup
from search import UsageError
from tests.search.fakes import Curve, run


@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_curve_is_a_pruner_of_both_engines(backend):
    args = build_parser().parse_args(["run", "spaces/cnn.py", "--backend", backend, "--pruner", "curve"])
    assert setup.chosen_pruner(backend, args.pruner, args.no_prune) == "curve"
    with pytest.raises(UsageError, match="--no-prune contradicts --pruner curve"):
        setup.chosen_pruner(backend, "curve", True)
    assert (
        setup.chosen_pruner(backend, None, False) == {"optuna": "asha", "kerastuner": "curve"}[backend]
    )  # the defaults


def test_a_joining_worker_takes_the_studys_pruner(tmp_path):
    settings = {"trials": 2, "max_epochs": 3, "algorithm": "tpe", "pruner": "curve"}
    run(tmp_path, Curve(), trials=2, pruner="curve", settings=settings)
    _, _, asked = setup.joined(setup.Request(space_file=None, results=tmp_path, study="s"))
    assert asked.pruner == "curve" and asked.backend == "optuna"


@pytest.mark.parametrize(
    "backend, choices, objectives",
    [
        ("optuna", {"algorithm": "bayesian"}, {}),
        ("kerastuner", {"algorithm": "tpe"}, {}),
        ("kerastuner", {"pruner": "asha"}, {}),
        ("kerastuner", {"storage": "sqlite:///x.db"}, {}),
        ("kerastuner", {}, {"infer_ms": "minimize"}),
    ],
)
def test_the_command_line_and_the_engine_refuse_in_the_same_words(tmp_path, backend, choices, objectives):
    import dataclasses

    from search.engines import make_engine
    from search.options import RunOptions
    from tests.search.fakes import SPACE, SPEC

    spec = dataclasses.replace(SPEC, objectives=objectives)
    with pytest.raises(UsageError) as command_line:
        setup.prepare(
            setup.Request(space_file=None, results=tmp_path, backend=backend, **choices), SPACE, spec, note=print
        )
    with pytest.raises(UsageError) as engine:
        make_engine(SPACE, spec, RunOptions("s", tmp_path / "s", trials=1, backend=backend, **choices)).check_options()
    assert str(command_line.value) == str(engine.value)
    assert not any(tmp_path.iterdir())  # refused before anything was written
