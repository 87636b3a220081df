"""The search engines leafsearch drives and their algorithms (the first is each one's default).

Kept apart from the runners so the command line can check a flag without importing an engine."""

ALGORITHMS = {
    "optuna": ("tpe", "random"),
    "kerastuner": ("random", "bayesian", "hyperband"),
}


def default_algorithm(backend: str) -> str:
    return ALGORITHMS[backend][0]
