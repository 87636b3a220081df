"""What would each pruner have saved, and lost, on a finished unpruned study? Replayed, not retrained.

A study run with `--pruner none` holds every trial's full curve (`trials/<n>/history.json`). This
script feeds those curves, trial by trial and epoch by epoch, through Optuna's pruners in an
in-memory study, and stops a trial where the pruner says so, exactly as `leafsearch run` would
have (one worker, trials in order). Under `--algorithm random` and a fixed `--seed`, a pruned
study draws the same configurations and trains each one the same way, so the replay gives the
very figures a real run would (bench/pruning.py checks this: its `asha` and `median` studies
match their replays). Under TPE, later draws would have differed: read it as an estimate.

It replays leafsearch's pruners (`median`, `asha`, `hyperband`, `curve`, as `--pruner` builds them)
and a few variants (of the learning-curve rule's constants too), and prints one JSON object: per pruner, the share of the epochs it would have
trained, the best value of a trial it lets finish against the unpruned best, and the same
without trial 0 (the space's defaults, which an Optuna study runs first).

    python bench/pruning_replay.py results/cnn
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.engines.curve_rule import CurveRule
from search.engines.median_rule import curve_of
from search.engines.optuna.adapter import make_pruner
from search.engines.optuna.curve import CurvePruner

GOAL_POINTS, GOAL_EPOCHS = 1.0, 1 / 3


def variants(max_resource: int) -> dict[str, Callable[[], optuna.pruners.BasePruner]]:
    """leafsearch's pruners, then variants worth comparing (Optuna's own defaults among them)."""
    pruners = optuna.pruners
    return {
        "median": lambda: make_pruner("median"),
        "asha": lambda: make_pruner("asha"),
        "hyperband": lambda: make_pruner("hyperband", max_resource),
        "median, Optuna's defaults (5 startup trials, no warm-up)": lambda: pruners.MedianPruner(),
        "median, warm-up of 1 epoch": lambda: pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        "percentile, best 25% go on, warm-up of 1 epoch": lambda: pruners.PercentilePruner(
            25.0, n_startup_trials=3, n_warmup_steps=1
        ),
        "asha, reduction factor 4": lambda: pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4),
        "asha, first rung after 3 epochs": lambda: pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3),
        "curve": lambda: make_pruner("curve", max_resource),
        **{
            f"curve, {label}": (lambda rule=rule: CurvePruner(max_resource, rule))
            for label, rule in CURVE_VARIANTS.items()
        },
    }


# The learning-curve rule's constants varied one at a time from its defaults (search.engines.curve_rule).
CURVE_VARIANTS = {
    "k=1": CurveRule(k=1.0),
    "k=3": CurveRule(k=3.0),
    "least sigma 0.02": CurveRule(min_sigma=0.02),
    "fit the whole curve": CurveRule(window=None),
    "peers within 0.05": CurveRule(peer_band=0.05),
    "lookahead 3 epochs": CurveRule(lookahead=3.0),
    "warm-up 3 epochs": CurveRule(n_warmup_steps=3, min_points=4),
    "3 startup trials": CurveRule(n_startup_trials=3),
    "3 startup trials, warm-up 2 epochs (its first constants)": CurveRule(
        n_startup_trials=3, n_warmup_steps=2, min_points=3
    ),
}


def read_curves(study_dir: Path) -> tuple[list[int], list[list[float | None]], str, str]:
    """(trial numbers, their curves, metric, direction), in the order the trials ran. Only
    complete trials count: a failed one would have failed the same way under any pruner."""
    meta = json.loads((study_dir / "study.json").read_text())
    metric, direction = meta.get("metric", "val_accuracy"), meta.get("direction", "maximize")
    board = pd.read_csv(study_dir / "leaderboard.csv")
    if meta.get("pruner") not in (None, "none") or (board["state"] == "PRUNED").any():
        raise SystemExit(
            f"{study_dir}: a study with pruned trials has no full curves to replay; run one with --pruner none"
        )
    numbers, curves = [], []
    for number in sorted(int(n) for n in board.loc[board["state"] == "COMPLETE", "trial"]):
        history = json.loads((study_dir / "trials" / str(number) / "history.json").read_text())
        numbers.append(number)
        curves.append(curve_of(history, metric))
    if not curves:
        raise SystemExit(f"{study_dir}: no complete trial to replay")
    return numbers, curves, metric, direction


def replay(
    name: str, numbers: list[int], curves: list[list[float | None]], direction: str, pruner: optuna.pruners.BasePruner
) -> dict:
    """Each trial's curve through `pruner`, in order: where it would have stopped, and its best.
    The study keeps its real name: Hyperband assigns a trial's bracket by hashing it."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, direction=direction, pruner=pruner)
    pick = max if direction == "maximize" else min
    stopped: list[tuple[int, int, bool, float | None]] = []  # (trial, epochs trained, pruned, best value)
    for number, curve in zip(numbers, curves):
        trial = study.ask()
        epochs, pruned = len(curve), False
        for step, value in enumerate(curve):
            if value is None:
                continue
            trial.report(value, step)
            if trial.should_prune():
                epochs, pruned = step + 1, True
                break
        values = [v for v in curve[:epochs] if v is not None]
        best = pick(values) if values else None
        if pruned or best is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, best)
        stopped.append((number, epochs, pruned, best))
    return summary(stopped, curves, direction)


def summary(
    stopped: list[tuple[int, int, bool, float | None]], curves: list[list[float | None]], direction: str
) -> dict:
    pick = max if direction == "maximize" else min
    sign = 1 if direction == "maximize" else -1

    def best_of(rows) -> float | None:
        values = [best for _, _, pruned, best in rows if not pruned and best is not None]
        return pick(values) if values else None

    def unpruned_best(skip_first: bool) -> float:
        return pick(v for curve in curves[1 if skip_first else 0 :] for v in curve if v is not None)

    def delta(found: float | None, reference: float) -> float | None:
        return None if found is None else round(100 * sign * (found - reference), 2)

    epochs = sum(e for _, e, _, _ in stopped)
    ratio = round(epochs / sum(len(c) for c in curves), 3)
    points = delta(best_of(stopped), unpruned_best(False))
    points_searched = delta(best_of(stopped[1:]), unpruned_best(True)) if len(stopped) > 1 else None
    return {
        "epochs_ratio": ratio,
        "accuracy_delta_points": points,
        "accuracy_delta_points_without_trial_0": points_searched,
        "goal_met": points is not None and points >= -GOAL_POINTS and ratio <= GOAL_EPOCHS,
        "pruned": sum(1 for _, _, pruned, _ in stopped if pruned),
        "epochs_per_trial": [e for _, e, _, _ in stopped],
    }


def replay_study(study_dir: Path) -> dict:
    numbers, curves, metric, direction = read_curves(study_dir)
    longest = max(len(c) for c in curves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        results = {
            label: replay(study_dir.name, numbers, curves, direction, make())
            for label, make in variants(longest).items()
        }
    return {
        "study": str(study_dir),
        "metric": metric,
        "trials": len(curves),
        "epochs": sum(len(c) for c in curves),
        "pruners": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path, help="a study folder run with --pruner none, e.g. results/cnn")
    args = parser.parse_args()
    print(json.dumps({"benchmark": "pruning_replay", **replay_study(args.study_dir)}))


if __name__ == "__main__":
    main()
