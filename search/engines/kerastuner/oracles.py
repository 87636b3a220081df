"""KerasTuner's oracles as leafsearch uses them: a queue of first trials (a warm start's, then the
space's defaults), no retries, no failure limit of their own (the study loop counts failures),
and Hyperband's budgets."""

from __future__ import annotations

import sys
from typing import Any

import keras_tuner

from search.engines.choices import ALGORITHMS
from search.errors import UsageError

HYPERBAND_FACTOR = 3


FIRST_STATE = "leafsearch_first"  # the queue's key in the oracle's saved state (oracle.json)


class _QueuedFirst:
    """The first trials come from a queue (a warm start's trials, then the space's defaults).
    `_random_values` is where each of the three oracles draws a new trial's values (KerasTuner
    1.4 has no public hook for first trials); the queue is saved with the oracle's state, so a
    resumed study serves what is left of it and never serves an entry twice."""

    # Attributes of the KerasTuner oracle this class is mixed into, that it reads.
    hyperparameters: keras_tuner.HyperParameters
    _seed_state: int

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.first: list[dict[str, Any]] = []
        # A chief whose workers run on their own (not started by it) and outlive its restart: the
        # trials its previous life handed out stay with the tuners running them (see `reload`).
        self.keep_ongoing = False
        self._saved_ongoing: dict[str, str] = {}  # tuner id -> trial id, as the saved state had them

    def _random_values(self):
        while self.first:
            values = self._completed(self.first.pop(0))
            if not self._duplicate(values):
                return values
        return super()._random_values()

    def _completed(self, given: dict[str, Any]) -> dict[str, Any]:
        """`given` with each active parameter it leaves out drawn, as `_random_values` draws it."""
        hps = keras_tuner.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                if hp.name in given:
                    hps.values[hp.name] = given[hp.name]
                else:
                    hps.values[hp.name] = hp.random_sample(self._seed_state)
                    self._seed_state += 1
        return hps.values

    def get_state(self):
        return {**super().get_state(), FIRST_STATE: list(self.first)}

    def set_state(self, state):
        super().set_state(state)
        self._saved_ongoing = dict(state.get("ongoing_trials", {}))
        if FIRST_STATE in state:
            self.first = list(state[FIRST_STATE])
        elif self.trials:  # saved before the queue was: its baseline was trial 0
            self.first = []

    def reload(self):
        """KerasTuner queues the trials that were running for any tuner to retry: right when every
        process died with the chief, but a restarted chief whose workers lived on would hand a trial
        one of them is still training to another. With `keep_ongoing` they stay with their tuner:
        it ends them, or gets them back if it asks again (KerasTuner's rule for a tuner id)."""
        super().reload()
        if self.keep_ongoing:
            for tuner_id, trial_id in self._saved_ongoing.items():
                if trial_id in self._retry_queue and trial_id in self.trials:
                    self._retry_queue.remove(trial_id)
                    self.ongoing_trials[tuner_id] = self.trials[trial_id]

    @keras_tuner.synchronized
    def end_trial(self, trial):
        """Once per trial: a worker that sent it again after the reply was lost (the chief
        restarting, the network) does not end it twice."""
        if trial.trial_id in self.end_order and all(t.trial_id != trial.trial_id for t in self.ongoing_trials.values()):
            return
        super().end_trial(trial)


class _RandomSearchOracle(_QueuedFirst, keras_tuner.oracles.RandomSearchOracle):
    pass


class _BayesianOptimizationOracle(_QueuedFirst, keras_tuner.oracles.BayesianOptimizationOracle):
    def populate_space(self, trial_id):
        """Queued trials before the Gaussian process, however few its random start has."""
        if self.first:
            return self._random_populate_space()
        return super().populate_space(trial_id)


class _HyperbandOracle(_QueuedFirst, keras_tuner.oracles.HyperbandOracle):
    pass  # queued trials start its first bracket, each with that bracket's first budget


def make_oracle(
    algorithm: str, metric: str, direction: str, hp: keras_tuner.HyperParameters, seed: int, max_epochs: int
) -> keras_tuner.Oracle:
    common = dict(
        objective=keras_tuner.Objective(metric, "max" if direction == "maximize" else "min"),
        hyperparameters=hp,
        allow_new_entries=False,
        max_retries_per_trial=0,
        seed=seed + 1,  # KerasTuner treats seed 0 as "no seed" (`seed or random.randint(...)`)
        max_consecutive_failed_trials=sys.maxsize,  # the study loop counts failures in a row itself
    )
    if algorithm == "random":
        return _RandomSearchOracle(**common)
    if algorithm == "bayesian":
        return _BayesianOptimizationOracle(**common)
    if algorithm == "hyperband":  # no fixed number of iterations: the target of trials ends the search
        return _HyperbandOracle(max_epochs=max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=None, **common)
    raise UsageError(
        f"--algorithm {algorithm}: unknown for the kerastuner backend; use one of {', '.join(ALGORITHMS['kerastuner'])}"
    )


def hyperband_budget(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """The epoch budget Hyperband gave a trial (empty for the other oracles)."""
    values = hp.values
    if "tuner/epochs" not in values:
        return {}
    extends = values.get("tuner/trial_id")
    return {
        "epoch_budget": int(values["tuner/epochs"]),
        "initial_epoch": int(values.get("tuner/initial_epoch", 0)),
        "extends_trial": None if extends is None else int(extends),
        "bracket": values.get("tuner/bracket"),
        "round": values.get("tuner/round"),
    }
