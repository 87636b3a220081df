"""The search engines: one adapter each behind the protocol of base.py, picked by backend name.

The adapters never import each other; only `make_engine` knows them both, and it imports the
chosen one alone (the Optuna path never loads KerasTuner, and so never Keras)."""

from __future__ import annotations

from search.engines.base import Engine
from search.engines.choices import ALGORITHMS, BACKENDS, PRUNERS, default_algorithm
from search.errors import UsageError
from search.options import RunOptions
from search.space import Space
from search.study import Study

__all__ = ["ALGORITHMS", "BACKENDS", "PRUNERS", "Engine", "default_algorithm", "make_engine"]


def make_engine(space: Space, spec: Study, options: RunOptions) -> Engine:
    """The adapter of `options.backend`, its module imported only now."""
    if options.backend == "optuna":
        from search.engines.optuna import OptunaEngine

        return OptunaEngine(space, spec, options)
    if options.backend == "kerastuner":
        from search.engines.kerastuner import KerasTunerEngine

        return KerasTunerEngine(space, spec, options)
    raise UsageError(f"--backend {options.backend}: unknown; use one of {', '.join(BACKENDS)}")
