"""Resident memory of the study process over a 10-trial CNN study, trial by trial.

Prints one JSON object: for each mode (a child process per trial, the default, and
`--in-process`), the study process's resident set size after each trial and its growth from the
first trial to the last. Isolation's goal: the study process stays flat.

    python bench/memory.py [--trials 10] [--image-size 32] [--backend optuna|kerastuner]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pandas as pd
from rich.console import Console

from leafsearch.data import synthetic
from leafsearch.runtime import import_keras_quietly
from search import Choice, Fixed, Float, Space, Study
from search.loop import run_study
from search.options import RunOptions
from search.report.display import Display


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class MeasuringDisplay(Display):
    """The usual progress display, which also samples memory when each trial ends."""

    def __init__(self, metric: str, console: Console):
        super().__init__(metric, console=console)
        self.samples: list[float] = []

    def trial_finished(self, *args, **kwargs):
        super().trial_finished(*args, **kwargs)
        self.samples.append(rss_mb())


def run_mode(root: Path, data: Path, backend: str, in_process: bool, trials: int, image_size: int) -> dict:
    from leafsearch.training.objective import LeafObjective

    space = Space(
        learning_rate=Float(1e-4, 1e-2, log=True),
        dense_units=Choice([128, 256, 512]),
        batch_size=Fixed(16),
        image_size=Fixed(image_size),
        patience=Fixed(3),
    )
    spec = Study(pipeline="cnn", metric="val_accuracy", trials=trials, max_epochs=2)
    name = f"{backend}-{'inprocess' if in_process else 'isolated'}"
    objective = LeafObjective(data, "cnn", max_epochs=2, cache_dir=root / "cache")
    options = RunOptions(
        study_name=name,
        study_dir=root / name,
        trials=trials,
        pruner="none",
        in_process=in_process,
        preload=("leafsearch.training.preload",),
        backend=backend,
        algorithm="random",
    )
    display = MeasuringDisplay(spec.metric, Console(file=open(root / f"{name}.log", "w"), width=200))
    started = time.monotonic()
    run_study(space, spec, objective, options, display)
    wall = time.monotonic() - started
    samples = display.samples
    durations = pd.read_csv(root / name / "leaderboard.csv")["duration_s"].tolist()
    return {
        "rss_mb_after_each_trial": samples,
        "growth_mb_first_to_last": round(samples[-1] - samples[0], 1),
        "trial_duration_s": durations,
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--backend", default="optuna", choices=["optuna", "kerastuner"])
    args = parser.parse_args()
    import_keras_quietly()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthetic.generate(root / "data", total=112, image_size=args.image_size, seed=0, workers=2)
        result = {"benchmark": "memory", "backend": args.backend, "trials": args.trials, "image_size": args.image_size}
        for label, in_process in (("isolated", False), ("in_process", True)):
            result[label] = run_mode(root, root / "data", args.backend, in_process, args.trials, args.image_size)
        result["trial_process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
