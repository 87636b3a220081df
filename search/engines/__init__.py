"""The search engines: one adapter each behind the protocol of base.py, picked by backend name.

The adapters never import each other; only `make_engine` knows them both, and it imports the
chosen one alone (the Optuna path never loads KerasTuner, and so never Keras)."""

from __future__ import annotations

from search.engines.base import Engine
from search.engines.choices import ALGORITHMS, BACKENDS, PRUNERS, check_options, default_algorithm, default_pruner
from search.options import RunOptions
from search.space import Space
from search.study import Study

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "PRUNERS",
    "Engine",
    "check_options",
    "default_algorithm",
    "default_pruner",
    "engine_class",
    "make_engine",
]


def engine_class(backend: str) -> type[Engine]:
    """The adapter of `backend`, its module imported only now."""
    check_options(backend)
    if backend == "optuna":
        from search.engines.optuna.adapter import OptunaEngine

        return OptunaEngine
    if backend == "kerastuner":
        from search.engines.kerastuner.adapter import KerasTunerEngine

        return KerasTunerEngine
    raise AssertionError(f"search.engines.BACKENDS names {backend!r}, which has no adapter")


def make_engine(space: Space, spec: Study, options: RunOptions) -> Engine:
    return engine_class(options.backend)(space, spec, options)
