"""Precise batch-norm statistics (the `precise_bn` recipe knob, on by default) against Keras' moving
averages: the same trials, trained twice through leafsearch's own loop, once each way.

Training is the same both ways (batch norm trains on batch statistics); only what each epoch's
validation reads differs. Per configuration and seed: every epoch's validation accuracy both
ways, the best, the first epoch's, and the wall time per epoch (the recalibration's cost). Data:
`leafsearch demo-data` leaves (drawn at twice `--image-size`, as bench/time_to_quality.py does).
Prints one JSON object; progress to stderr.

    python bench/precise_bn.py [--images 840] [--image-size 64] [--epochs 10] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cli_run import REPO

sys.path.insert(0, str(REPO))

from search.reporter import Reporter

# (batch size, learning rate): the seed's recipe, the space's corners and a middle
CONFIGS = ((64, 1e-3), (128, 3e-4), (16, 2e-3), (8, 8e-4))


class Collect(Reporter):
    """A reporter that keeps the epochs and never prunes."""

    def _send(self, epoch, value):
        pass

    def should_prune(self):
        return False


def train(
    data: Path, cache: Path, work: Path, batch_size: int, learning_rate: float, precise: bool, args, seed: int
) -> dict:
    from leafsearch.training.objective import LeafObjective

    objective = LeafObjective(data, "cnn", max_epochs=args.epochs, cache_dir=cache, split_seed=0)
    folder = Path(tempfile.mkdtemp(dir=work))
    reporter = Collect(0, folder, "val_accuracy", seed=seed)
    started = time.time()
    objective(
        {
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "image_size": args.image_size,
            "precise_bn": precise,
        },
        reporter,
    )
    ends = [row["ended_at"] for row in reporter.history]
    curve = [round(row["val_accuracy"], 4) for row in reporter.history]
    return {
        "val_accuracy": curve,
        "best": max(curve),
        "first": curve[0],
        "wall_s": round(time.time() - started, 2),
        "steady_epoch_s": round(statistics.median(b - a for a, b in zip(ends, ends[1:])), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=840)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()

    from leafsearch.data import synthetic

    work = Path(tempfile.mkdtemp(prefix="leafsearch-precise-bn-"))
    synthetic.generate(work / "leaves", total=args.images, image_size=2 * args.image_size, seed=100)
    runs = []
    for seed in args.seeds:
        for batch_size, learning_rate in CONFIGS:
            pair = {"seed": seed, "batch_size": batch_size, "learning_rate": learning_rate}
            for precise in (False, True):  # one after the other, on the same data and seed
                print(
                    f"[precise_bn] seed {seed} batch {batch_size} lr {learning_rate} precise_bn={precise}",
                    file=sys.stderr,
                    flush=True,
                )
                pair["precise" if precise else "moving"] = train(
                    work / "leaves", work / "cache", work, batch_size, learning_rate, precise, args, seed
                )
            runs.append(pair)
    gain = [r["precise"]["best"] - r["moving"]["best"] for r in runs]
    cost = [r["precise"]["steady_epoch_s"] / r["moving"]["steady_epoch_s"] for r in runs]
    print(
        json.dumps(
            {
                "benchmark": "precise_bn",
                "images": args.images,
                "image_size": args.image_size,
                "epochs": args.epochs,
                "median_best_gain": round(statistics.median(gain), 4),
                "best_gains": [round(g, 4) for g in gain],
                "median_first_epoch": {
                    k: statistics.median(r[k]["first"] for r in runs) for k in ("moving", "precise")
                },
                "median_epoch_time_ratio": round(statistics.median(cost), 3),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
