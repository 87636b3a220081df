"""Does pruning pay? The same space and trial budget with and without early stopping of trials.

Studies of `spaces/cnn.py` on the same synthetic leaves, each through the real CLI in a
subprocess (`python -m leafsearch run spaces/cnn.py --data DIR --trials N --max-epochs E
--image-size S --set batch_size=B --seed SEED --algorithm A --pruner P`):

* `no_prune`: `--pruner none` (every trial trains until its own early stopping or E epochs: the
  reference);
* `median`: leafsearch's default, Optuna's `MedianPruner(n_startup_trials=3, n_warmup_steps=2)`;
* `asha`: `--pruner asha`, Optuna's `SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)`
  (rungs after 2, 4 and 10 epochs);
* `hyperband`: `--pruner hyperband`, Optuna's `HyperbandPruner` over the same rungs;
* `curve`: `--pruner curve`, leafsearch's learning-curve rule (search/engines/curve_rule.py);
* `kt_hyperband`: `--backend kerastuner --algorithm hyperband` (KerasTuner's own brackets,
  promoted trials continuing from a copy of their parent's checkpoint, plus the median rule).

The Optuna studies sample at random by default (`--algorithm random`): with one seed they then
draw the same configurations in the same order, and train each one the same way, so what differs
between them is only what the pruner stopped. This is also how successive halving and Hyperband
are defined and judged (early stopping of a random search; Li et al. 2018, 2020). `--algorithm
tpe` measures leafsearch's default sampler instead, whose later draws depend on what was pruned.

The batch size is pinned so that an epoch costs the same in every trial, making epochs a fair
unit of budget. Per configuration it reports, from the study's `leaderboard.csv` and its trials'
`run.json`: the sum of the leaderboard's `epochs` column, the epochs actually trained (a Hyperband
trial that continues another counts only the epochs past the checkpoint it starts from; the
leaderboard's `epochs` counts the inherited ones too), the best val_accuracy of a COMPLETE trial,
what became of the reference's best trial, wall time from process start to exit, and the ratios
against `no_prune`. Goal: within 1 accuracy point of the unpruned best with at most a third of
its epochs. Then it replays the unpruned curves through more pruner settings than it ran
(`bench/pruning_replay.py`), and checks that the replay of each pruner it ran matches the real run.

The defaults (1120 images, so 186 for validation: one image is 0.54 points) make one accuracy
point mean something; one seed of all five configurations takes about half an hour on 2 cores.

Prints one JSON object; progress goes to stderr.

    python bench/pruning.py [--trials 24] [--max-epochs 12] [--images 1120] [--image-size 32] [--batch-size 32]
                            [--algorithm random|tpe] [--seeds 0] [--configs no_prune median asha hyperband curve kt_hyperband]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from pruning_replay import replay_study

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "spaces" / "cnn.py"
sys.path.insert(0, str(REPO))

OPTUNA_PRUNERS = {"no_prune": "none", "median": "median", "asha": "asha", "hyperband": "hyperband", "curve": "curve"}
CONFIGS = [*OPTUNA_PRUNERS, "kt_hyperband"]
REFERENCE = "no_prune"


def engine_flags(name: str, algorithm: str) -> list[str]:
    if name == "kt_hyperband":
        return ["--backend", "kerastuner", "--algorithm", "hyperband"]
    return ["--backend", "optuna", "--algorithm", algorithm, "--pruner", OPTUNA_PRUNERS[name]]


def log(message: str) -> None:
    print(f"[pruning] {message}", file=sys.stderr, flush=True)


def run_config(root: Path, data: Path, name: str, args: argparse.Namespace, seed: int, reference: dict | None) -> dict:
    results = root / f"{name}-seed{seed}"
    command = [
        sys.executable,
        "-m",
        "leafsearch",
        "run",
        str(SPACE),
        "--data",
        str(data),
        "--results",
        str(results),
        "--study",
        "cnn",
        "--trials",
        str(args.trials),
        "--max-epochs",
        str(args.max_epochs),
        "--image-size",
        str(args.image_size),
        "--set",
        f"batch_size={args.batch_size}",
        "--seed",
        str(seed),
        *engine_flags(name, args.algorithm),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    log(f"{name} seed {seed}: leafsearch {' '.join(command[3:])}")
    output = root / f"{name}-seed{seed}.log"
    with open(output, "w") as handle:
        started = time.monotonic()
        done = subprocess.run(command, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT)
        wall = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(output.read_text()[-3000:])
        raise SystemExit(f"{name}: leafsearch exited with {done.returncode}; its output is above")
    out = {"wall_s": round(wall, 1), **summarise(results / "cnn", name, reference)}
    log(
        f"{name} seed {seed}: {wall:.0f} s, {out['epochs_trained']} epochs trained, best val_accuracy {out['best_val_accuracy']}"
    )
    return out


def summarise(study: Path, name: str, reference: dict | None) -> dict:
    """One finished study's figures, from its leaderboard and its trials' run.json."""
    board = pd.read_csv(study / "leaderboard.csv")
    inherited = 0
    for trial in board["trial"]:
        run = json.loads((study / "trials" / str(int(trial)) / "run.json").read_text())
        if run.get("extends_trial") is not None:
            inherited += int(run.get("initial_epoch") or 0)
    complete = board[board["state"] == "COMPLETE"]
    # Trial 0 of an Optuna study is the space's defaults (the seed recipe), enqueued before any
    # draw and never pruned by these pruners' first rungs; the best of the other trials shows
    # whether the pruner also keeps what the search itself finds.
    searched = complete[complete["trial"] != 0] if name in OPTUNA_PRUNERS else complete
    epochs_column = int(board["epochs"].fillna(0).sum())
    out = {
        "trials": len(board),
        "states": {state: int(count) for state, count in board["state"].value_counts().items()},
        "epochs_column_sum": epochs_column,
        "epochs_trained": epochs_column - inherited,
        "best_val_accuracy": None if complete.empty else round(float(complete["val_accuracy"].max()), 4),
        "best_trial": None if complete.empty else int(complete.loc[complete["val_accuracy"].idxmax(), "trial"]),
        "best_val_accuracy_without_baseline": None
        if searched.empty
        else round(float(searched["val_accuracy"].max()), 4),
        "best_val_accuracy_any_state": round(float(board["val_accuracy"].max()), 4),
        "epochs_per_trial": [int(e) for e in board["epochs"].fillna(0)],
    }
    if reference is not None and reference["best_trial"] is not None and name != "kt_hyperband":
        # Same seed, same sampler: trial k is the same configuration in both studies (while the
        # sampler does not learn from pruned trials: random search).
        ref = board[board["trial"] == reference["best_trial"]]
        out["reference_best_trial"] = {
            "trial": reference["best_trial"],
            "state": None if ref.empty else str(ref["state"].iloc[0]),
            "epochs": None if ref.empty else int(ref["epochs"].fillna(0).iloc[0]),
        }
    return out


def compare(config: dict, reference: dict) -> dict:
    best, ref_best = config["best_val_accuracy"], reference["best_val_accuracy"]
    delta = None if best is None or ref_best is None else round(100 * (best - ref_best), 2)
    epochs_ratio = round(config["epochs_trained"] / reference["epochs_trained"], 3)
    searched, ref_searched = (
        config["best_val_accuracy_without_baseline"],
        reference["best_val_accuracy_without_baseline"],
    )
    searched_delta = None if searched is None or ref_searched is None else round(100 * (searched - ref_searched), 2)
    return {
        "accuracy_delta_points_without_baseline": searched_delta,
        "goal_met_without_baseline": searched_delta is not None and searched_delta >= -1.0 and epochs_ratio <= 1 / 3,
        "epochs_ratio": epochs_ratio,
        "wall_ratio": round(config["wall_s"] / reference["wall_s"], 3),
        "accuracy_delta_points": delta,
        "goal_met": delta is not None and delta >= -1.0 and epochs_ratio <= 1 / 3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--images", type=int, default=1120, help="synthetic leaves to draw")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--algorithm", default="random", choices=["random", "tpe"], help="the Optuna studies' sampler")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="study seeds (sampler, split, trials)")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    args = parser.parse_args()
    args.configs = [REFERENCE, *(name for name in args.configs if name != REFERENCE)]  # the others compare with it

    from leafsearch.data import synthetic

    result: dict = {
        "benchmark": "pruning",
        "trials": args.trials,
        "max_epochs": args.max_epochs,
        "images": args.images,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "algorithm": args.algorithm,
        "goal": "best val_accuracy within 1 point of the unpruned best with at most 1/3 of its epochs",
    }
    with tempfile.TemporaryDirectory(prefix="leafsearch-pruning-") as tmp:
        root = Path(tmp)
        data = root / "data"
        synthetic.generate(data, total=args.images, image_size=args.image_size, seed=0, workers=2)
        log(f"drew {args.images} synthetic leaves of {args.image_size} px")
        for seed in args.seeds:
            runs: dict = {}
            for name in args.configs:
                runs[name] = run_config(root, data, name, args, seed, runs.get(REFERENCE))
            for name, run in runs.items():
                if name != REFERENCE:
                    run["vs_" + REFERENCE] = compare(run, runs[REFERENCE])
            # The unpruned curves replayed through every pruner (bench/pruning_replay.py): more
            # settings than were run for real; under random search, where the replay of a
            # pruner that did run must match it trial for trial.
            replayed = replay_study(root / f"{REFERENCE}-seed{seed}" / "cnn")["pruners"]
            for name, run in runs.items():
                if name in OPTUNA_PRUNERS and name != REFERENCE:
                    run["replay_matches"] = (
                        replayed[OPTUNA_PRUNERS[name]]["epochs_per_trial"] == run["epochs_per_trial"]
                    )
            result[f"seed_{seed}"] = {**runs, "replay": replayed}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
