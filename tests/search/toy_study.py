"""A small finished study written without training: the files a real `leafsearch run` leaves in
results/<study>/ (Optuna journal with the runner's attributes, study.json, leaderboard.csv,
trials/<n>/{params,run,history}.json), for the report's tests. Under the KerasTuner layout there
is no journal: the space is in kerastuner/leafsearch.json, as the KerasTuner runner writes it."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.engines.optuna.space import distributions
from search.engines.optuna.storage import JOURNAL_NAME, make_storage, rows_from_study
from search.records import leaderboard
from search.records.files import write_json_atomic
from search.space import Choice, Fixed, Float, Int, Space

METRIC = "val_accuracy"
SPACE = Space(
    learning_rate=Float(1e-4, 1e-1, log=True, default=1e-3),
    dense_units=Int(64, 512, step=64, default=128),
    loss=Choice(["ce", "<b>x"], default="ce"),  # a value that is markup, to prove the HTML escapes it
    label_smoothing=Float(0.0, 0.3, when={"loss": "<b>x"}),
    batch_size=Fixed(16),
)
# (state, best val_accuracy, epochs run, parameters, error)
TRIALS = [
    (TrialState.COMPLETE, 0.50, 3, {"learning_rate": 1e-3, "dense_units": 128, "loss": "ce"}, ""),
    (
        TrialState.COMPLETE,
        0.70,
        3,
        {"learning_rate": 3e-3, "dense_units": 256, "loss": "<b>x", "label_smoothing": 0.1},
        "",
    ),
    (TrialState.PRUNED, 0.20, 2, {"learning_rate": 5e-2, "dense_units": 64, "loss": "ce"}, ""),
    (TrialState.FAIL, None, 1, {"learning_rate": 9e-2, "dense_units": 512, "loss": "ce"}, "nan loss"),
    (
        TrialState.COMPLETE,
        0.65,
        3,
        {"learning_rate": 2e-4, "dense_units": 448, "loss": "<b>x", "label_smoothing": 0.25},
        "",
    ),
    (TrialState.COMPLETE, 0.40, 3, {"learning_rate": 1e-2, "dense_units": 320, "loss": "ce"}, ""),
]
START = datetime.datetime(2025, 1, 2, 3, 4, 5)


def history(best: float | None, epochs: int) -> list[dict]:
    """Per-epoch metrics whose best epoch has val_accuracy `best` (as reporter.summarise sees it)."""
    top = 0.05 if best is None or math.isnan(best) else best
    return [
        {
            "epoch": e,
            "accuracy": top + 0.1,
            "loss": 2.0 - e * 0.25,
            "val_accuracy": top - 0.1 * (epochs - 1 - e),
            "val_loss": 2.5 - e * 0.25,
        }
        for e in range(epochs)
    ]


def make_study(results: Path, name: str = "toy", backend: str = "optuna", trials: list | None = None) -> Path:
    """results/<name>/ as a finished run leaves it; returns the study folder."""
    study_dir = results / name
    trials = TRIALS if trials is None else trials
    algorithm = "tpe" if backend == "optuna" else "random"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, direction="maximize", storage=optuna.storages.InMemoryStorage())
    for key, value in {
        "metric": METRIC,
        "pipeline": "cnn",
        "space": SPACE.to_dict(),
        "data": "abc123",
        "split_seed": 0,
        "settings": {"trials": len(trials), "max_epochs": 3, "algorithm": algorithm, "prune": True},
    }.items():
        study.set_user_attr(key, value)
    dists = distributions(SPACE)
    for number, (state, best, epochs, searched, error) in enumerate(trials):
        params = {**searched, "batch_size": 16}
        epoch_rows = history(best, epochs)
        summary = (
            {"epochs": epochs}
            if best is None
            else {
                METRIC: epoch_rows[-1][METRIC],
                "val_loss": epoch_rows[-1]["val_loss"],
                "best_epoch": epochs,
                "epochs": epochs,
            }
        )
        attrs = {
            "host": "toyhost",
            "pid": 1000 + number,
            "pid_start": "0",
            "seed": number,
            "algorithm": algorithm,
            "params": params,
            "summary": summary,
            **({"baseline": True} if number == 0 else {}),
            **({"error": error} if error else {}),
        }
        started = START + datetime.timedelta(minutes=number)
        study.add_trial(
            FrozenTrial(
                number=number,
                state=state,
                value=summary[METRIC] if state == TrialState.COMPLETE else None,
                datetime_start=started,
                datetime_complete=started + datetime.timedelta(seconds=10 + 5 * number),
                params=searched,
                distributions={k: dists[k] for k in searched},
                user_attrs=attrs,
                system_attrs={},
                intermediate_values={e: row[METRIC] for e, row in enumerate(epoch_rows)} if best is not None else {},
                trial_id=number,
            )
        )
        trial_dir = study_dir / "trials" / str(number)
        write_json_atomic(trial_dir / "params.json", params)
        write_json_atomic(trial_dir / "history.json", epoch_rows)
        write_json_atomic(
            trial_dir / "run.json", {"trial": number, "seed": number, "backend": backend, "algorithm": algorithm}
        )
    if backend == "optuna":
        optuna.copy_study(from_study_name=name, from_storage=study._storage, to_storage=make_storage(study_dir, None))
        storage = JOURNAL_NAME
    else:
        write_json_atomic(study_dir / "kerastuner" / "leafsearch.json", {"metric": METRIC, "space": SPACE.to_dict()})
        storage = "kerastuner"
    rows = [{**row, "backend": backend} for row in rows_from_study(study, METRIC, algorithm)]
    leaderboard.write(leaderboard.build(rows, METRIC, SPACE.names), study_dir / "leaderboard.csv")
    write_json_atomic(
        study_dir / "study.json",
        {
            "study": name,
            "metric": METRIC,
            "direction": "maximize",
            "pipeline": "cnn",
            "backend": backend,
            "algorithm": algorithm,
            "storage": storage,
            "params": SPACE.names,
        },
    )
    return study_dir
