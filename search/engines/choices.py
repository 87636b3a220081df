"""The search engines leafsearch drives, their algorithms and pruners (the first is each one's
default), and the one check of a run's choices among them.

Kept apart from the adapters so the command line can check a flag without importing an engine."""

from __future__ import annotations

import importlib.util
from collections.abc import Collection

from search.errors import UsageError

BACKENDS = ("optuna", "kerastuner")

ALGORITHMS = {
    "optuna": ("tpe", "random", "nsga2"),
    "kerastuner": ("random", "bayesian", "hyperband"),
}


def default_algorithm(backend: str) -> str:
    return ALGORITHMS[backend][0]


# How a study stops unpromising trials early (the first is each engine's default). `asha` and
# `hyperband` need intermediate values at every epoch, which only Optuna's trials take; the
# KerasTuner engine applies the rule of its pruner's name itself (search.engines.rules: the median
# rule, the learning-curve rule), or prunes through its own Hyperband algorithm. `asha` is Optuna's default
# since validation reads precise batch-norm statistics: on bench/time_to_quality.py it kept the
# accuracy of `curve` (within half a point) in half the epochs (bench/README.md).
PRUNERS = {
    "optuna": ("asha", "curve", "median", "hyperband", "none"),
    "kerastuner": ("curve", "median", "none"),
}


def default_pruner(backend: str) -> str:
    return PRUNERS[backend][0]


def check_options(
    backend: str,
    algorithm: str | None = None,
    pruner: str | None = None,
    *,
    storage: str | None = None,
    objectives: Collection[str] = (),
) -> None:
    """Refuse, as one UsageError, a choice the engine cannot honour: an unknown backend, an
    algorithm or pruner not of this backend (None: not chosen, the default), and for KerasTuner
    a storage URL, several objectives, or Bayesian optimisation without its libraries. The
    command line (before anything is touched) and every engine (before the study is opened) call
    this one check, so both say the same."""
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: unknown; use one of {', '.join(BACKENDS)}")
    if algorithm is not None and algorithm not in ALGORITHMS[backend]:
        raise UsageError(
            f"--algorithm {algorithm}: unknown for the {backend} backend; use one of {', '.join(ALGORITHMS[backend])}"
        )
    if pruner is not None and pruner not in PRUNERS[backend]:
        elsewhere = [other for other in BACKENDS if other != backend and pruner in PRUNERS[other]]
        hint = "; KerasTuner's own successive halving is --algorithm hyperband" if backend == "kerastuner" else ""
        raise UsageError(
            f"--pruner {pruner}: not for the {backend} backend; use one of {', '.join(PRUNERS[backend])}{hint}"
            + "".join(f", or --backend {other}" for other in elsewhere)
        )
    if backend != "kerastuner":
        return
    if storage is not None:
        raise UsageError(
            "--storage is for the optuna backend; a kerastuner study is stored in its project folder under --results"
        )
    if len(objectives) > 1:  # its oracles score a trial by one number
        raise UsageError(
            f"--backend kerastuner optimises one objective; for {', '.join(objectives)} together pass --backend optuna"
        )
    missing = [
        module
        for module in ("sklearn", "scipy")
        if algorithm == "bayesian" and importlib.util.find_spec(module) is None
    ]
    if missing:
        raise UsageError(
            f"--algorithm bayesian needs scikit-learn and scipy (missing: {', '.join(missing)}); pip install scikit-learn"
        )


# A KerasTuner study's storage, named here so that a report finds it without importing KerasTuner
# (and so Keras): its project folder inside the study folder, and leafsearch's identity file in it.
KERASTUNER_PROJECT = "kerastuner"
KERASTUNER_IDENTITY = "leafsearch.json"
