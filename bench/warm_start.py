"""Does `--warm-start` pay? Pairs of CNN studies on the same synthetic leaves: a first study at a
small image size, then a second at a larger one, warm-started from the first and cold (the same
seed, the same target), for several seeds.

For each second study it reports the trial at which it reached its final best (the best complete
trial's number: the earlier, the sooner a study that stopped there would have had it), its best
value and which trial that was (a warm trial, the baseline, or the search's own). Every study is
the real CLI (`python -m leafsearch run spaces/cnn.py ...`, TPE, no pruning) in a subprocess.

Prints one JSON object; progress goes to stderr.

    python bench/warm_start.py [--seeds 0 1 2] [--images 112] [--small 32] [--large 48]
                               [--first-trials 6] [--trials 8] [--max-epochs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli_run import REPO, leafsearch

from search.records import leaderboard
from search.records.files import read_json

SPACE = REPO / "spaces" / "cnn.py"


def log(message: str) -> None:
    print(f"[warm_start] {message}", file=sys.stderr, flush=True)


def study(
    root: Path, data: Path, name: str, size: int, trials: int, seed: int, args: argparse.Namespace, *extra: str
) -> float:
    """One study run to its target; returns its wall time."""
    return leafsearch(
        "run",
        str(SPACE),
        "--data",
        str(data),
        "--study",
        name,
        "--image-size",
        str(size),
        "--trials",
        str(trials),
        "--max-epochs",
        str(args.max_epochs),
        "--seed",
        str(seed),
        "--no-prune",
        "--set",
        "batch_size=16",
        *extra,
        cwd=root,
    )


def outcome(root: Path, name: str, wall: float) -> dict:
    """When the study reached its final best, the value, and where that trial came from."""
    folder = root / "results" / name
    frame = leaderboard.read(folder / "leaderboard.csv")
    best = leaderboard.best_trial(frame, "val_accuracy", "maximize")
    warm = (read_json(folder / "study.json", {}) or {}).get("warm_start") or {}
    queued = len(warm.get("trials", []))
    number = int(best["trial"])
    origin = "warm" if number < queued else "baseline" if number == queued else "search"
    return {
        "best_at_trial": number,
        "best": round(float(best["val_accuracy"]), 4),
        "best_from": origin,
        "warm_trials": queued,
        "complete": int((frame["state"] == "COMPLETE").sum()),
        "wall_s": wall,
        "values": [round(float(v), 4) for v in pd.to_numeric(frame["val_accuracy"], errors="coerce").fillna(0)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=112)
    parser.add_argument("--small", type=int, default=32, help="the first study's image size")
    parser.add_argument("--large", type=int, default=48, help="the second studies' image size")
    parser.add_argument("--first-trials", type=int, default=6)
    parser.add_argument(
        "--trials",
        type=int,
        default=8,
        help="the second studies' target (warm trials: min(5, trials // 4), at least 1)",
    )
    parser.add_argument("--max-epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warm_start-") as tmp:
        root = Path(tmp)
        data = root / "leaves"
        leafsearch(
            "demo-data", str(data), "--images", str(args.images), "--image-size", str(max(64, args.large)), cwd=root
        )
        runs = []
        for seed in args.seeds:
            first = f"small-{seed}"
            log(f"seed {seed}: {first} at {args.small} px")
            first_wall = study(root, data, first, args.small, args.first_trials, seed, args)
            first_best = outcome(root, first, first_wall)
            row = {
                "seed": seed,
                "first": {
                    "best": first_best["best"],
                    "best_at_trial": first_best["best_at_trial"],
                    "wall_s": first_wall,
                },
            }
            for kind, extra in (("cold", ()), ("warm", ("--warm-start", first))):
                name = f"large-{kind}-{seed}"
                log(f"seed {seed}: {name} at {args.large} px")
                row[kind] = outcome(root, name, study(root, data, name, args.large, args.trials, seed, args, *extra))
            runs.append(row)
    summary = {
        kind: {
            "mean_best": round(statistics.mean(r[kind]["best"] for r in runs), 4),
            "mean_best_at_trial": round(statistics.mean(r[kind]["best_at_trial"] for r in runs), 2),
        }
        for kind in ("cold", "warm")
    }
    print(json.dumps({"config": vars(args), "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
