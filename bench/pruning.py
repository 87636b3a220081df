"""Does pruning pay? The same space and trial budget with and without early stopping of trials.

Three studies of `spaces/cnn.py` on the same synthetic leaves, each through the real CLI in a
subprocess (`python -m leafsearch run spaces/cnn.py --data DIR --trials N --max-epochs E
--image-size S --set batch_size=B --seed SEED ...`):

* `tpe_no_prune`: Optuna TPE, `--no-prune` (every trial trains its E epochs: the reference);
* `tpe_median`: Optuna TPE with leafsearch's default median pruner (`MedianPruner(n_startup_trials=3,
  n_warmup_steps=2)`: never in the first 3 trials nor before the third epoch);
* `kt_hyperband`: `--backend kerastuner --algorithm hyperband` (its epoch budgets, promoted
  trials continuing from a copy of their parent's checkpoint, plus leafsearch's median rule).

The batch size is pinned so that an epoch costs the same in every trial, making epochs a fair
unit of budget. Per configuration it reports, from the study's `leaderboard.csv` and its trials'
`run.json`: the sum of the leaderboard's `epochs` column, the epochs actually trained (a Hyperband
trial that continues another counts only the epochs past the checkpoint it starts from; the
leaderboard's `epochs` counts the inherited ones too), the best val_accuracy of a COMPLETE trial,
wall time from process start to exit, and the ratios against `tpe_no_prune`. Goal: within 1
accuracy point of the unpruned best with at most a third of its epochs.

On a few hundred 32 px images one validation image is worth several accuracy points, so run
more than one `--seeds` (each seed changes the sampler, the split and the trials' initial
weights; the images stay the same) before reading much into a difference.

Prints one JSON object; progress goes to stderr.

    python bench/pruning.py [--trials 10] [--max-epochs 6] [--images 224] [--image-size 32] [--batch-size 16] [--seeds 0]
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

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "spaces" / "cnn.py"
sys.path.insert(0, str(REPO))

CONFIGS = {
    "tpe_no_prune": ["--backend", "optuna", "--algorithm", "tpe", "--no-prune"],
    "tpe_median": ["--backend", "optuna", "--algorithm", "tpe"],
    "kt_hyperband": ["--backend", "kerastuner", "--algorithm", "hyperband"],
}
REFERENCE = "tpe_no_prune"


def log(message: str) -> None:
    print(f"[pruning] {message}", file=sys.stderr, flush=True)


def run_config(root: Path, data: Path, name: str, args: argparse.Namespace, seed: int) -> dict:
    results = root / f"{name}-seed{seed}"
    command = [sys.executable, "-m", "leafsearch", "run", str(SPACE), "--data", str(data), "--results", str(results),
               "--study", "cnn", "--trials", str(args.trials), "--max-epochs", str(args.max_epochs),
               "--image-size", str(args.image_size), "--set", f"batch_size={args.batch_size}", "--seed", str(seed),
               *CONFIGS[name]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
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
    study = results / "cnn"
    board = pd.read_csv(study / "leaderboard.csv")
    inherited = 0
    for trial in board["trial"]:
        run = json.loads((study / "trials" / str(int(trial)) / "run.json").read_text())
        if run.get("extends_trial") is not None:
            inherited += int(run.get("initial_epoch") or 0)
    complete = board[board["state"] == "COMPLETE"]
    epochs_column = int(board["epochs"].fillna(0).sum())
    out = {
        "wall_s": round(wall, 1),
        "trials": len(board),
        "states": {state: int(count) for state, count in board["state"].value_counts().items()},
        "epochs_column_sum": epochs_column,
        "epochs_trained": epochs_column - inherited,
        "best_val_accuracy": None if complete.empty else round(float(complete["val_accuracy"].max()), 4),
        "best_trial": None if complete.empty else int(complete.loc[complete["val_accuracy"].idxmax(), "trial"]),
        "best_val_accuracy_any_state": round(float(board["val_accuracy"].max()), 4),
        "epochs_per_trial": [int(e) for e in board["epochs"].fillna(0)],
    }
    log(f"{name} seed {seed}: {wall:.0f} s, {out['epochs_trained']} epochs trained, best val_accuracy {out['best_val_accuracy']}")
    return out


def compare(config: dict, reference: dict) -> dict:
    best, ref_best = config["best_val_accuracy"], reference["best_val_accuracy"]
    delta = None if best is None or ref_best is None else round(100 * (best - ref_best), 2)
    epochs_ratio = round(config["epochs_trained"] / reference["epochs_trained"], 3)
    return {
        "epochs_ratio": epochs_ratio,
        "wall_ratio": round(config["wall_s"] / reference["wall_s"], 3),
        "accuracy_delta_points": delta,
        "goal_met": delta is not None and delta >= -1.0 and epochs_ratio <= 1 / 3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=224, help="synthetic leaves to draw")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="study seeds (sampler, split, trials)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    if REFERENCE not in args.configs:
        args.configs.insert(0, REFERENCE)

    from leafsearch import synthetic

    result: dict = {"benchmark": "pruning", "trials": args.trials, "max_epochs": args.max_epochs, "images": args.images,
                    "image_size": args.image_size, "batch_size": args.batch_size, "seeds": args.seeds,
                    "goal": "best val_accuracy within 1 point of the unpruned best with at most 1/3 of its epochs"}
    with tempfile.TemporaryDirectory(prefix="leafsearch-pruning-") as tmp:
        root = Path(tmp)
        data = root / "data"
        synthetic.generate(data, total=args.images, image_size=args.image_size, seed=0, workers=2)
        log(f"drew {args.images} synthetic leaves of {args.image_size} px")
        for seed in args.seeds:
            runs = {name: run_config(root, data, name, args, seed) for name in args.configs}
            for name, run in runs.items():
                if name != REFERENCE:
                    run["vs_" + REFERENCE] = compare(run, runs[REFERENCE])
            result[f"seed_{seed}"] = runs
    print(json.dumps(result))


if __name__ == "__main__":
    main()
