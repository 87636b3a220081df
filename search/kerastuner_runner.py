"""The KerasTuner trial runner: KerasTuner's oracles decide, the shared objective trains.

The same space, objective, trial folders (`trials/<n>/{params,run,history}.json`), `study.json`
and leaderboard columns as the Optuna runner; `backend` is "kerastuner" and `algorithm` one of
ALGORITHMS (RandomSearch, BayesianOptimization, Hyperband oracles).

Storage is KerasTuner's project folder, `<study>/kerastuner/`: running the same command again
reloads it (`overwrite=False`) and resumes. `trials` is the target number of finished trials in
total, as under Optuna: it is the oracle's `max_trials` (Hyperband's too, whose brackets otherwise
decide how many trials run), so a second run with a higher target adds only the missing trials, and
one with the same target runs none. A trial left running (Ctrl-C, a crash) is the oracle's
`ongoing` trial: the reload runs it again first, with the same number, seed and trial folder, so
the objective continues from its checkpoint.

Leaderboard trial numbers are KerasTuner's trial ids as integers: the oracle makes each id from
the number of trials so far (zero-padded), so they run 0, 1, 2... and never change on resume.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import keras
import keras_tuner

from search import costs, engines, kerastuner_space, leaderboard
from search.checkpoints import copy_checkpoints
from search.display import Display
from search.errors import TrialFailed, TrialPruned, UsageError
from search.files import read_json, write_json_atomic
from search.optuna_runner import Objective, RunOptions, SearchAborted, identity_differences
from search.pruning import curve_of, median_should_prune
from search.reporter import Reporter, summarise
from search.space import Space
from search.study import Study
from search.trial_exec import TrialExecutor

ALGORITHMS = engines.ALGORITHMS["kerastuner"]
BACKEND = "kerastuner"
PROJECT_NAME = "kerastuner"  # KerasTuner's project folder inside the study folder
IDENTITY_NAME = "leafsearch.json"  # in the project folder: what must match to resume
HYPERBAND_FACTOR = 3

# KerasTuner's trial status -> leaderboard state, where the runner recorded no outcome itself.
# KerasTuner's distributed mode: a chief serves the oracle over gRPC, workers train and ask it
# for trials. These environment variables select the role (keras_tuner/src/distribute/utils.py).
TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"


def distributed_role() -> str:
    """"chief", "worker", or "alone" (no KerasTuner distributed mode)."""
    if ORACLE_IP not in os.environ:
        return "alone"
    return "chief" if "chief" in os.environ.get(TUNER_ID, "") else "worker"


_STATES = {"COMPLETED": "COMPLETE", "RUNNING": "RUNNING", "FAILED": "FAIL", "INVALID": "FAIL"}
_FINISHED = ("COMPLETED", "FAILED", "INVALID")


class KerasTunerReporter(Reporter):
    """Keeps the trial's curve and applies the median rule to it against the curves of the study's
    completed trials: KerasTuner's oracles take no intermediate values, so they cannot prune."""

    def __init__(self, direction: str, finished_curves: list[list[float | None]] | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.direction = direction
        self.finished_curves = finished_curves  # None: pruning is off
        self.curve: list[float | None] = []

    def _send(self, epoch: int, value: float) -> None:
        self.curve.extend([None] * (epoch + 1 - len(self.curve)))
        self.curve[epoch] = value

    def restore(self, history: list[dict[str, float]]) -> None:
        self.curve = []
        super().restore(history)

    def should_prune(self) -> bool:
        return self.finished_curves is not None and median_should_prune(self.curve, self.finished_curves, self.direction)


class _BaselineFirst:
    """The space's defaults are the first trial (a baseline to beat), as under the Optuna runner.

    `_random_values` is where each of the three oracles draws a new trial's values (KerasTuner 1.4
    has no public hook for a first trial of one's own)."""

    baseline: dict[str, Any] | None = None

    def _random_values(self):
        if self.baseline is not None and not self.trials:
            return dict(self.baseline)
        return super()._random_values()


class _RandomSearchOracle(_BaselineFirst, keras_tuner.oracles.RandomSearchOracle):
    pass


class _BayesianOptimizationOracle(_BaselineFirst, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _HyperbandOracle(_BaselineFirst, keras_tuner.oracles.HyperbandOracle):
    pass


def make_oracle(algorithm: str, spec: Study, hp: keras_tuner.HyperParameters, seed: int, max_epochs: int) -> keras_tuner.Oracle:
    """The oracle of `algorithm` over the declared space `hp`, optimising `spec.metric`."""
    common = dict(
        objective=keras_tuner.Objective(spec.metric, "max" if spec.direction == "maximize" else "min"),
        hyperparameters=hp,
        allow_new_entries=False,
        # KerasTuner treats seed 0 as "no seed" (`seed or random.randint(...)`): shift by one.
        seed=seed + 1,
        max_retries_per_trial=0,
        # The runner counts failures in a row itself: KerasTuner's own check raises a bare
        # RuntimeError inside `end_trial` before the project is saved, so it must never fire.
        max_consecutive_failed_trials=sys.maxsize,
    )
    if algorithm == "random":
        return _RandomSearchOracle(**common)
    if algorithm == "bayesian":
        return _BayesianOptimizationOracle(**common)
    if algorithm == "hyperband":
        # No fixed number of iterations: the runner's target of trials ends the search.
        return _HyperbandOracle(max_epochs=max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=None, **common)
    raise UsageError(f"--algorithm {algorithm}: unknown for the kerastuner backend; use one of {', '.join(ALGORITHMS)}")


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _row(folder: Path, metric: str, direction: str, algorithm: str, state: str | None = None,
         value: float | None = None, error: str = "", params: dict | None = None) -> dict[str, Any]:
    """One leaderboard row from a trial folder (`run.json` as the runner wrote it, the summary of
    `history.json`); the oracle, where there is one, supplies the state, score and parameters."""
    info = read_json(folder / "run.json", {}) or {}
    summary = summarise(read_json(folder / "history.json", []) or [], metric, direction)
    return {
        "trial": int(folder.name),
        "state": state or info.get("state", "RUNNING"),
        metric: summary.get(metric) if value is None else value,
        "val_loss": summary.get("val_loss"),
        "best_epoch": summary.get("best_epoch"),
        "epochs": summary.get("epochs"),
        "duration_s": info.get("duration_s"),
        "backend": BACKEND,
        "algorithm": info.get("algorithm", algorithm),
        "resumed_from": info.get("resumed_from"),
        "error": error or info.get("error") or "",
        "params": (read_json(folder / "params.json", {}) or {}) if params is None else params,
        "costs": costs.read(folder),
    }


def rows_from_oracle(
    oracle: keras_tuner.Oracle, space: Space, study_dir: Path, metric: str, direction: str, algorithm: str
) -> list[dict[str, Any]]:
    """Leaderboard rows: the oracle's trials, with the outcome, duration and error the runner wrote
    into each trial's `run.json` and the summary of its `history.json`."""
    rows = []
    for trial in oracle.trials.values():
        folder = study_dir / "trials" / str(int(trial.trial_id))
        info = read_json(folder / "run.json", {}) or {}
        state = info.get("state") or _STATES.get(trial.status, "FAIL")
        value = trial.score if state == "COMPLETE" and trial.score is not None else None
        error = info.get("error") or ""
        if state == "FAIL" and not error and trial.message:  # failed outside the objective
            error = trial.message.strip().splitlines()[-1]
        rows.append(_row(folder, metric, direction, algorithm, state=state, value=value, error=error,
                         params=kerastuner_space.sample(space, trial.hyperparameters)))
    return rows


def rows_from_folders(space: Space, study_dir: Path, metric: str, direction: str, algorithm: str) -> list[dict[str, Any]]:
    """Leaderboard rows from the trial folders alone: what a distributed worker, whose oracle is
    the chief's, knows of the study (every trial, when the workers share the results folder)."""
    folders = [f for f in (study_dir / "trials").glob("*") if f.name.isdigit() and (f / "run.json").is_file()]
    return [_row(folder, metric, direction, algorithm) for folder in sorted(folders, key=lambda f: int(f.name))]


class _TimeUp(Exception):
    """The timeout passed: start no new trial."""


class _BadInput(keras_tuner.errors.FatalError):
    """Carries the objective's UsageError through KerasTuner, which re-raises only FatalErrors."""

    def __init__(self, error: UsageError):
        super().__init__(str(error))
        self.error = error


class _Tuner(keras_tuner.Tuner):
    """KerasTuner's worker. `run_trial` calls the shared objective through the runner (KerasTuner's
    way to tune custom training); it builds and saves no Keras model (the objective keeps its own
    checkpoints) and prints nothing (the runner's Display reports)."""

    def __init__(self, runner: "KerasTunerRunner", **kwargs: Any):
        self.runner = runner
        super().__init__(**kwargs)

    def run_trial(self, trial, *args, **kwargs):
        return self.runner.run_trial(trial)

    def pre_create_trial(self):
        self.runner.before_trial()

    def on_search_begin(self):
        self.save()  # so that a run stopped inside its first trial reloads this project

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle records the trial; the project is saved
        keras.backend.clear_session(free_memory=True)  # Keras's global state, then gc.collect()
        self.runner.trial_ended(trial)

    def save_model(self, trial_id, model, step=0):
        raise NotImplementedError("leafsearch's objective keeps its own checkpoints under trials/<n>/checkpoints")

    def load_model(self, trial):
        raise NotImplementedError("leafsearch's objective keeps its own checkpoints under trials/<n>/checkpoints")


class KerasTunerRunner:
    """Runs trials until the project has `options.trials` finished ones (or the timeout passes).

    `max_epochs` is Hyperband's `max_epochs`: the most epochs one trial trains, counted across its
    training phases (default: `spec.max_epochs`)."""

    def __init__(
        self,
        space: Space,
        spec: Study,
        objective: Objective,
        options: RunOptions,
        display: Display,
        *,
        max_epochs: int | None = None,
    ):
        self.space = space
        self.spec = spec
        self.objective = objective
        self.options = options
        self.display = display
        self.max_epochs = max_epochs or spec.max_epochs
        self.tuner: _Tuner | None = None
        self._started = 0.0
        self._failures_in_a_row = 0
        self._outcome: tuple[int, str, float | None, float, str] | None = None
        self.executor = TrialExecutor(isolate=not options.in_process, preload=options.preload)
        self.role = distributed_role()

    @property
    def project_dir(self) -> Path:
        return self.options.study_dir / PROJECT_NAME

    def identity(self) -> dict[str, Any]:
        """What must match to resume: also the algorithm (each oracle keeps its own state) and
        Hyperband's max_epochs (its brackets' budgets follow from it)."""
        identity = {"metric": self.spec.metric, "direction": self.spec.direction, "pipeline": self.spec.pipeline,
                    "algorithm": self.options.algorithm, "space": self.space.to_dict(), **self.options.identity}
        if self.options.algorithm == "hyperband":
            identity["hyperband_max_epochs"] = self.max_epochs
        return identity

    # -- the run
    def run(self) -> keras_tuner.Tuner:
        options = self.options
        self._check_options()
        hp = kerastuner_space.declare(self.space, keras_tuner.HyperParameters())
        resuming = self._check_resume()
        oracle = make_oracle(options.algorithm, self.spec, hp, options.seed, self.max_epochs)
        baseline = self.space.defaults()
        if baseline and None not in baseline.values():
            oracle.baseline = kerastuner_space.encode_values(self.space, baseline)
        with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ..."
            self.tuner = _Tuner(self, oracle=oracle, directory=str(options.study_dir), project_name=PROJECT_NAME, overwrite=False)
        oracle = self.tuner.oracle
        oracle.max_trials = options.trials
        oracle.verbose = 0  # KerasTuner's own trial tables and "Search: Running Trial #1"
        if not resuming:
            write_json_atomic(self.project_dir / IDENTITY_NAME, self.identity())
        write_json_atomic(
            options.study_dir / "study.json",
            {"study": options.study_name, "metric": self.spec.metric, "direction": self.spec.direction,
             "pipeline": self.spec.pipeline, "backend": BACKEND, "algorithm": options.algorithm, "pruner": options.pruner,
             "storage": PROJECT_NAME, "params": self.space.names},
        )
        self._refresh_best()
        engine = f"kerastuner/{options.algorithm}"
        if options.algorithm == "hyperband":
            engine += f", up to {self.max_epochs} epochs a trial"
        self.display.study_started(options.study_name, self.finished_count(), options.trials,
                                   engine + ("" if options.prune else ", no pruning"), str(self.project_dir))
        self.write_leaderboard()
        self._started = time.monotonic()
        self._failures_in_a_row = 0
        if self.role == "chief":
            self.display.note(f"KerasTuner chief: serving the oracle on {os.environ[ORACLE_IP]}:{os.environ.get(ORACLE_PORT)} "
                              f"until the workers have finished {options.trials} trials.")
            self.tuner.search()  # KerasTuner's chief serves until every worker is told to stop
            self._refresh_best()
            self.write_leaderboard()
            return self.tuner
        try:
            self.tuner.search()
        except _TimeUp:
            self.display.note(f"Timeout of {options.timeout_s:.0f}s reached: no new trial started; run again to continue.")
        except _BadInput as exc:
            raise exc.error from None
        else:
            if self.role == "alone" and self.finished_count() < options.trials:
                self.display.note("KerasTuner's oracle stopped before the target: it found no untried values in the space.")
        return self.tuner

    def _check_options(self) -> None:
        options = self.options
        if options.algorithm not in ALGORITHMS:
            raise UsageError(f"--algorithm {options.algorithm}: unknown for the kerastuner backend; use one of {', '.join(ALGORITHMS)}")
        if options.storage is not None:
            raise UsageError("--storage is for the optuna backend; a kerastuner study is stored in its project folder under the results folder")
        if options.algorithm == "bayesian":
            missing = [m for m in ("sklearn", "scipy") if importlib.util.find_spec(m) is None]
            if missing:
                raise UsageError(f"--algorithm bayesian needs scikit-learn and scipy (missing: {', '.join(missing)}); pip install scikit-learn")

    def _check_resume(self) -> bool:
        """Whether the project exists; refuses one this run cannot continue (read only)."""
        options = self.options
        meta = read_json(options.study_dir / "study.json", {}) or {}
        if meta.get("backend", BACKEND) != BACKEND:
            raise UsageError(
                f"study {options.study_name!r} was run with the {meta['backend']} backend; "
                f"pass a new --study NAME to run it under kerastuner"
            )
        stored = read_json(self.project_dir / IDENTITY_NAME)
        if stored is None:
            if (self.project_dir / "oracle.json").exists():
                raise UsageError(f"{self.project_dir} holds a KerasTuner project leafsearch did not make; pass a new --study NAME")
            return False
        differences = identity_differences(stored, self.identity())
        if differences:
            raise UsageError(
                f"study {options.study_name!r} was run with a different setup ({'; '.join(differences)}): "
                f"its trials would not be comparable; pass a new --study NAME, or undo the change to resume"
            )
        return True

    def finished_count(self) -> int:
        if self.role == "worker":
            return sum(row["state"] != "RUNNING" for row in self.rows())
        return sum(t.status in _FINISHED for t in self.tuner.oracle.trials.values())

    # -- hooks called by the tuner
    def before_trial(self) -> None:
        timeout = self.options.timeout_s
        if timeout is not None and time.monotonic() - self._started >= timeout:
            raise _TimeUp()

    def run_trial(self, trial) -> dict[str, float]:
        """One trial: folder, reporter, the objective, the outcome. Returns the metric for the oracle."""
        options, metric = self.options, self.spec.metric
        self._outcome = None
        number = int(trial.trial_id)
        params = kerastuner_space.sample(self.space, trial.hyperparameters)
        budget = hyperband_budget(trial.hyperparameters)
        seed = options.seed + number
        trial_dir = options.study_dir / "trials" / str(number)
        resumed_from = budget.get("extends_trial")  # Hyperband: the trial whose checkpoint this one extends
        if (trial_dir / "run.json").exists():
            self.display.note(f"Trial {number} was stopped before it finished: it runs again from its last checkpoint.")
            resumed_from = number  # KerasTuner runs an interrupted trial again under its own number
        write_json_atomic(trial_dir / "params.json", params)
        info = {"trial": number, "seed": seed, "backend": BACKEND, "algorithm": options.algorithm, **budget,
                "resumed_from": resumed_from,
                "python": platform.python_version(), "keras_tuner": keras_tuner.__version__, **options.run_info}
        write_json_atomic(trial_dir / "run.json", info)
        reporter = KerasTunerReporter(
            direction=self.spec.direction,
            finished_curves=self._completed_curves() if options.prune else None,
            trial_number=number,
            trial_dir=trial_dir,
            metric=metric,
            listener=self.display.epoch_finished,
            seed=seed,
            epoch_budget=budget.get("epoch_budget"),
        )
        if budget.get("extends_trial") is not None:
            self._continue_from(budget["extends_trial"], reporter.checkpoint_dir)
            self.display.note(f"Trial {number} continues trial {budget['extends_trial']} "
                              f"(Hyperband: from epoch {budget['initial_epoch']} to {budget['epoch_budget']}).")
        self.display.trial_started(number, params)
        started = time.monotonic()
        error, value = "", None
        try:
            metrics = dict(self._train(params, reporter))
            value = metrics.get(metric)
            if value is None or not math.isfinite(value):
                raise ValueError(f"the objective returned no finite {metric!r}: {metrics}")
            state = "COMPLETE"
        except TrialPruned:
            state = "PRUNED"
            value = summarise(reporter.history, metric, self.spec.direction).get(metric)
        except KeyboardInterrupt:
            # The oracle keeps it as its ongoing trial: the next run runs it again first.
            self._record(trial_dir, info, "FAIL", time.monotonic() - started, "interrupted by the user; continues when the study is resumed")
            self.write_leaderboard()
            raise
        except UsageError as exc:
            # Bad input stops the search; the trial stays ongoing for the oracle and runs again on resume.
            self._record(trial_dir, info, "FAIL", time.monotonic() - started, str(exc))
            self.display.trial_finished(number, "FAIL", None, time.monotonic() - started, str(exc))
            self.write_leaderboard()
            raise _BadInput(exc) from exc
        except TrialFailed as exc:  # the objective's (or the trial executor's) reason, as it is
            state, value, error = "FAIL", None, str(exc).strip() or "failed"
        except Exception as exc:  # noqa: BLE001 - a failing trial is recorded and the search goes on
            state, value, error = "FAIL", None, _one_line(exc)
        duration = time.monotonic() - started
        self._record(trial_dir, info, state, duration, error)
        self._outcome = (number, state, value, duration, error)
        if state == "FAIL":
            raise keras_tuner.errors.FailedTrialError(error)
        if value is None:
            raise keras_tuner.errors.FailedTrialError("pruned before its first finite value: nothing to score")
        # A pruned trial is COMPLETED for KerasTuner, scored by its best value so far (the leaderboard
        # says PRUNED): KerasTuner has no pruned state, and a failure would teach Bayesian
        # optimisation nothing about a region that is measurably bad. Under Hyperband it competes
        # for promotion with that (low) value.
        return {metric: float(value)}

    def _train(self, params: dict, reporter: Reporter) -> Mapping[str, float]:
        """The one call of the objective for a trial: in its own process unless `in_process`,
        retried at half the batch size on out-of-memory (see search/trial_exec.py)."""
        metrics, trained = self.executor.run(self.objective, params, reporter, on_retry=self.display.note)
        if trained != params:
            write_json_atomic(reporter.trial_dir / "params.json", trained)
        return metrics

    def trial_ended(self, trial) -> None:
        if self._outcome is None:  # it failed outside the objective: KerasTuner kept the traceback
            lines = (trial.message or "").strip().splitlines()
            self._outcome = (int(trial.trial_id), "FAIL", None, 0.0, lines[-1] if lines else "")
        number, state, value, duration, error = self._outcome
        self._refresh_best()
        self.display.trial_finished(number, state, value, duration, error)
        self.write_leaderboard()
        self._failures_in_a_row = self._failures_in_a_row + 1 if state == "FAIL" else 0
        if self._failures_in_a_row >= self.options.max_consecutive_failures:
            raise SearchAborted(
                f"{self._failures_in_a_row} trials failed in a row; the last error is in the leaderboard "
                f"({self.options.study_dir / 'leaderboard.csv'}). Fix the cause and run again to resume."
            )

    # -- helpers
    def _record(self, trial_dir: Path, info: Mapping[str, Any], state: str, duration: float, error: str) -> None:
        write_json_atomic(trial_dir / "run.json", {**info, "state": state, "duration_s": round(duration, 2), "error": error})

    def _continue_from(self, source: int, checkpoint_dir: Path) -> None:
        """Hyperband extends trial `source`: start from a copy of its checkpoints (not over this
        trial's own, when it runs again after an interruption)."""
        if checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()):
            return
        copy_checkpoints(self.options.study_dir / "trials" / str(source), checkpoint_dir.parent)

    def _completed_curves(self) -> list[list[float | None]]:
        folder = self.options.study_dir / "trials"
        return [curve_of(read_json(folder / str(row["trial"]) / "history.json", []) or [], self.spec.metric)
                for row in self.rows() if row["state"] == "COMPLETE"]

    def rows(self) -> list[dict[str, Any]]:
        if self.role == "worker":
            return rows_from_folders(self.space, self.options.study_dir, self.spec.metric, self.spec.direction,
                                     self.options.algorithm)
        return rows_from_oracle(self.tuner.oracle, self.space, self.options.study_dir, self.spec.metric,
                                self.spec.direction, self.options.algorithm)

    def best_trial(self) -> dict[str, Any] | None:
        """The best completed trial as {"trial", "value", "params"}, or None."""
        done = [row for row in self.rows() if row["state"] == "COMPLETE" and row[self.spec.metric] is not None]
        if not done:
            return None
        pick = max if self.spec.direction == "maximize" else min
        best = pick(sorted(done, key=lambda row: row["trial"]), key=lambda row: row[self.spec.metric])  # ties: the first
        return {"trial": best["trial"], "value": best[self.spec.metric], "params": best["params"]}

    def _refresh_best(self) -> None:
        best = self.best_trial()
        if best is not None:
            self.display.set_best(best["value"], best["trial"])

    def write_leaderboard(self) -> None:
        frame = leaderboard.build(self.rows(), self.spec.metric, self.space.names)
        leaderboard.write(frame, self.options.study_dir / "leaderboard.csv")
