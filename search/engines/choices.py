"""The search engines leafsearch drives and their algorithms (the first is each one's default).

Kept apart from the adapters so the command line can check a flag without importing an engine."""

BACKENDS = ("optuna", "kerastuner")

ALGORITHMS = {
    "optuna": ("tpe", "random", "nsga2"),
    "kerastuner": ("random", "bayesian", "hyperband"),
}


def default_algorithm(backend: str) -> str:
    return ALGORITHMS[backend][0]


# How a study stops unpromising trials early (the first is each engine's default). `asha` and
# `hyperband` need intermediate values at every epoch, which only Optuna's trials take; the
# KerasTuner engine prunes by the median rule (search.engines.median_rule), the learning-curve rule
# (search.engines.curve_rule) or through its own Hyperband algorithm. `asha` is Optuna's default
# since validation reads precise batch-norm statistics: on bench/time_to_quality.py it kept the
# accuracy of `curve` (within half a point) in half the epochs (bench/README.md).
PRUNERS = {
    "optuna": ("asha", "curve", "median", "hyperband", "none"),
    "kerastuner": ("curve", "median", "none"),
}


def default_pruner(backend: str) -> str:
    return PRUNERS[backend][0]


# A KerasTuner study's storage, named here so that a report finds it without importing KerasTuner
# (and so Keras): its project folder inside the study folder, and leafsearch's identity file in it.
KERASTUNER_PROJECT = "kerastuner"
KERASTUNER_IDENTITY = "leafsearch.json"
