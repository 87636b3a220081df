"""What every engine shares: the protocol's abstract methods, the one check of a run's choices
(the same words from the command line and from either engine), the processes' sampler streams."""

import dataclasses
import os

import pytest

from search import UsageError
from search.engines import Engine, check_options, make_engine
from search.engines.optuna.algorithms import make_pruner, make_sampler
from search.options import RunOptions
from tests.search.fakes import SPACE, SPEC

MULTI = dataclasses.replace(SPEC, objectives={"infer_ms": "minimize"})


def test_the_protocol_is_seven_methods_and_the_rest_are_hooks():
    assert Engine.__abstractmethods__ == {"stored_identity", "start", "ask", "report", "tell", "finished", "rows"}


@pytest.mark.parametrize(
    "backend, choices, spec, message",
    [
        (
            "optuna",
            {"algorithm": "bayesian"},
            SPEC,
            "--algorithm bayesian: unknown for the optuna backend; use one of tpe, random, nsga2",
        ),
        (
            "kerastuner",
            {"algorithm": "tpe"},
            SPEC,
            "--algorithm tpe: unknown for the kerastuner backend; use one of random, bayesian, hyperband",
        ),
        (
            "kerastuner",
            {"pruner": "asha"},
            SPEC,
            "--pruner asha: not for the kerastuner backend; use one of curve, median, none; "
            "KerasTuner's own successive halving is --algorithm hyperband, or --backend optuna",
        ),
        (
            "kerastuner",
            {"storage": "sqlite:///x.db"},
            SPEC,
            "--storage is for the optuna backend; a kerastuner study is stored in its project folder under --results",
        ),
        (
            "kerastuner",
            {},
            MULTI,
            "--backend kerastuner optimises one objective; for val_accuracy, infer_ms together pass --backend optuna",
        ),
    ],
)
def test_each_engine_refuses_in_the_words_of_the_one_check(tmp_path, backend, choices, spec, message):
    with pytest.raises(UsageError) as checked:
        check_options(
            backend,
            choices.get("algorithm"),
            choices.get("pruner"),
            storage=choices.get("storage"),
            objectives=spec.all_objectives,
        )
    assert str(checked.value) == message
    with pytest.raises(UsageError) as engine:
        make_engine(SPACE, spec, RunOptions("s", tmp_path / "s", trials=1, backend=backend, **choices)).check_options()
    assert str(engine.value) == message
    assert not (tmp_path / "s").exists()


def test_an_unknown_backend_and_optunas_own_lookups_say_the_same():
    with pytest.raises(UsageError, match=r"^--backend ray: unknown; use one of optuna, kerastuner$"):
        check_options("ray")
    with pytest.raises(
        UsageError, match=r"^--algorithm bayesian: unknown for the optuna backend; use one of tpe, random, nsga2$"
    ):
        make_sampler("bayesian", 0)
    with pytest.raises(
        UsageError,
        match=r"^--pruner fast: not for the optuna backend; use one of asha, curve, median, hyperband, none$",
    ):
        make_pruner("fast")


def test_the_defaults_and_every_listed_choice_pass():
    from search.engines import ALGORITHMS, PRUNERS

    for backend in ALGORITHMS:
        for algorithm in ALGORITHMS[backend]:
            for pruner in PRUNERS[backend]:
                check_options(backend, algorithm, pruner)
        check_options(backend)


def test_a_joined_worker_draws_apart_by_its_pid_and_a_started_one_by_its_index(tmp_path):
    started = RunOptions("s", tmp_path, trials=1, worker_index=2)
    joined = RunOptions("s", tmp_path, trials=1, worker_index=None)
    assert started.sampler_stream == 2 and joined.sampler_stream == os.getpid()
    assert RunOptions("s", tmp_path, trials=1).worker_index == 0  # the process the user started
