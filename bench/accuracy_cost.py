"""Accuracy and cost together: a two-objective CNN study (val_accuracy against infer_ms) on the
CPU, through the real CLI, three ways on the same synthetic leaves and seed:

* `front`: `--objective infer_ms --pruner none`: every trial trains to its end; its Pareto front
  is the reference;
* `pruned`: the same with the median rule (leafsearch applies it to the accuracy curve, since
  Optuna refuses intermediate values in a multi-objective study): epochs saved, and how much of
  the reference front it still finds;
* `constrained`: the same with `--constraint infer_ms<=BOUND`, BOUND the median `infer_ms` of the
  reference's trials: the seconds spent on trials rejected before their first epoch, against
  what training them cost in the reference (its trials of the same architecture).

The space searches the width of the model (dense units), the image size and the learning rate;
random sampling (`--algorithm random`), so that with one seed the three studies draw the same
configurations in the same order. Prints one JSON object; progress goes to stderr.

    python bench/accuracy_cost.py [--trials 12] [--max-epochs 6] [--images 280] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
from cli_run import leafsearch

SPACE = """from search import Choice, Fixed, Float, Space, Study
SPACE = Space(dense_units=Choice([128, 256, 512, 1024], default=512), image_size=Choice([32, 48, 64], default=48),
              learning_rate=Float(1e-4, 1e-2, log=True, default=1e-3), batch_size=Fixed(32), patience=Fixed(4))
STUDY = Study(pipeline="cnn", metric="val_accuracy", trials=12, max_epochs=6, objectives={"infer_ms": "minimize"})
"""
OBJECTIVES = {"val_accuracy": "maximize", "infer_ms": "minimize"}


def front_of(board: pd.DataFrame) -> list[dict]:
    on = board[board["pareto"].astype(bool)].sort_values("infer_ms")
    return [
        {
            "trial": int(r.trial),
            "val_accuracy": round(float(r.val_accuracy), 4),
            "infer_ms": round(float(r.infer_ms), 3),
            "dense_units": int(r.param_dense_units),
            "image_size": int(r.param_image_size),
        }
        for r in on.itertuples()
    ]


def architecture(board: pd.DataFrame) -> pd.Series:
    return board["param_dense_units"].astype(str) + "x" + board["param_image_size"].astype(str)


def one_seed(root: Path, data: Path, space: Path, seed: int, trials: int, max_epochs: int) -> dict:
    common = [
        "run",
        str(space),
        "--data",
        str(data),
        "--trials",
        str(trials),
        "--max-epochs",
        str(max_epochs),
        "--seed",
        str(seed),
        "--algorithm",
        "random",
    ]
    out: dict = {}
    boards = {}
    for name, extra in (("front", ["--pruner", "none"]), ("pruned", ["--pruner", "median"])):
        print(f"seed {seed}: {name} ...", file=sys.stderr)
        wall = leafsearch(*common, *extra, "--study", name, cwd=root)
        boards[name] = pd.read_csv(root / "results" / name / "leaderboard.csv")
        out[name] = {"wall_s": wall, "epochs": int(boards[name]["epochs"].sum()), "front": front_of(boards[name])}
    reference = boards["front"]
    bound = float(reference["infer_ms"].median())
    print(f"seed {seed}: constrained (infer_ms <= {bound:.3f}) ...", file=sys.stderr)
    wall = leafsearch(
        *common, "--pruner", "none", "--constraint", f"infer_ms<={bound}", "--study", "constrained", cwd=root
    )
    board = pd.read_csv(root / "results" / "constrained" / "leaderboard.csv")
    rejected = board[board["state"] == "INFEASIBLE"]
    cost_by_arch = reference.groupby(architecture(reference))["duration_s"].mean()
    would_have = architecture(rejected).map(cost_by_arch).fillna(reference["duration_s"].mean())
    out["constrained"] = {
        "wall_s": wall,
        "bound_infer_ms": round(bound, 3),
        "rejected": len(rejected),
        "seconds_on_rejected": round(float(rejected["duration_s"].sum()), 1),
        "seconds_training_them_cost": round(float(would_have.sum()), 1),
        "front": front_of(board),
    }
    reference_front = {r["trial"] for r in out["front"]["front"]}
    found = {r["trial"] for r in out["pruned"]["front"]}
    out["pruned"]["epochs_ratio"] = round(out["pruned"]["epochs"] / max(1, out["front"]["epochs"]), 3)
    out["pruned"]["reference_front_found"] = f"{len(reference_front & found)} of {len(reference_front)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=280)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    results = {"trials": args.trials, "max_epochs": args.max_epochs, "images": args.images, "seeds": {}}
    with tempfile.TemporaryDirectory(prefix="accuracy-cost-") as tmp:
        root = Path(tmp)
        data = root / "leaves"
        leafsearch("demo-data", str(data), "--images", str(args.images), "--image-size", "64", cwd=root)
        space = root / "space.py"
        space.write_text(SPACE)
        for seed in args.seeds:
            seed_root = root / f"seed{seed}"
            seed_root.mkdir()
            results["seeds"][seed] = one_seed(seed_root, data, space, seed, args.trials, args.max_epochs)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
