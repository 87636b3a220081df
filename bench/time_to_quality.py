"""Time to quality: leafsearch against the KerasTuner and Optuna scripts a user writes by hand.

Three contenders on the same data, the same CNN (the seed's of `spaces/cnn.py`), the same search
space, the same budget of trials and maximum epochs, the same 5:1 split:

* `leafsearch`: `leafsearch run spaces/cnn.py --data TRAIN --trials N --max-epochs E --image-size S
  --seed SEED --test TEST` with its defaults (`--test` scores the trial it picks, as `leafsearch
  evaluate --data TEST` does, when the study ends);
* `kerastuner`: `bench/peers/plain_kerastuner.py`, RandomSearch, early stopping (patience 5,
  best weights restored), `image_dataset_from_directory` + cache + prefetch;
* `optuna`: `bench/peers/plain_optuna.py`, TPE + MedianPruner with a per-epoch pruning callback,
  the same early stopping and data, the best model saved and scored.

The peers read the validation images leafsearch holds out (its stratified split, seeded as the
study), through two folders of links, so every validation accuracy is on the same images. Each
contender runs alone, in a subprocess timed from start to exit.
Per seed and contender: the best validation accuracy, the test accuracy of the picked trial, the
wall time, the epochs trained, and the time-to-target: the wall time and epochs at which it
first reached the best peer's final best validation accuracy (from every epoch's end time).

Goal (issue 15): leafsearch's median test accuracy >= the best peer's - 0.5 points, in <= 0.5x
the best peer's median wall time and <= 0.5x its epochs. Prints one JSON object; progress to stderr.

    python bench/time_to_quality.py [--images 840] [--test-images 420] [--image-size 64] [--trials 12]
                                    [--max-epochs 10] [--seeds 0 1 2] [--contenders leafsearch kerastuner optuna]
                                    [--leafsearch-flags "--pruner asha"] [--peers EARLIER.json ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from cli_run import REPO

sys.path.insert(0, str(REPO))

SPACE = REPO / "spaces" / "cnn.py"
PEERS = REPO / "bench" / "peers"
CONTENDERS = ("leafsearch", "kerastuner", "optuna")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}


def log(message: str) -> None:
    print(f"[time_to_quality] {message}", file=sys.stderr, flush=True)


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run a command; (start time, wall seconds, stdout). A failure ends the benchmark."""
    started = time.time()
    done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return started, time.time() - started, done.stdout


def draw_data(root: Path, args: argparse.Namespace, seed: int) -> tuple[Path, Path]:
    train, test = root / "train", root / "test"
    source = str(2 * args.image_size)
    for folder, images, data_seed in ((train, args.images, 100 + seed), (test, args.test_images, 200 + seed)):
        timed(
            [
                sys.executable,
                "-m",
                "leafsearch",
                "demo-data",
                str(folder),
                "--images",
                str(images),
                "--image-size",
                source,
                "--seed",
                str(data_seed),
            ],
            root,
        )
    return train, test


def peer_split(train: Path, root: Path, seed: int) -> tuple[Path, Path]:
    """leafsearch's split of `train` (the study's seed) as two folders of links the peers read."""
    from leafsearch.data import scan_folder, stratified_split

    folder = scan_folder(train)
    train_idx, val_idx = stratified_split(folder.labels, seed=seed)
    out = {}
    for name, indices in (("peer_train", train_idx), ("peer_val", val_idx)):
        for i in indices:
            path = Path(folder.paths[i])
            link = root / name / path.parent.name / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
        out[name] = root / name
    for name in ("peer_train", "peer_val"):  # a class with no image still needs its folder
        for cls in folder.class_names:
            (out[name] / cls).mkdir(parents=True, exist_ok=True)
    return out["peer_train"], out["peer_val"]


def run_leafsearch(root: Path, train: Path, test: Path, args: argparse.Namespace, seed: int) -> dict:
    results = root / "leafsearch"
    run = [
        sys.executable,
        "-m",
        "leafsearch",
        "run",
        str(SPACE),
        "--data",
        str(train),
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
        "--seed",
        str(seed),
        "--test",
        str(test),
        *shlex.split(args.leafsearch_flags),
    ]
    started, wall, _ = timed(run, root)
    study = results / "cnn"
    board = pd.read_csv(study / "leaderboard.csv")
    epochs = []
    for history in sorted((study / "trials").glob("*/history.json")):
        epochs += [
            {"ended_at": row["ended_at"], "val_accuracy": row.get("val_accuracy", float("nan"))}
            for row in json.loads(history.read_text())
        ]
    evaluation = json.loads(next((study / "evaluations").glob("*.json")).read_text())
    complete = board[board["state"] == "COMPLETE"]
    return {
        "best_val_accuracy": float(complete["val_accuracy"].max()),
        "test_accuracy": float(evaluation["accuracy"]),
        "wall_s": wall,
        "epochs_trained": len(epochs),
        "states": board["state"].value_counts().to_dict(),
        "started_at": started,
        "epochs": epochs,
    }


def run_peer(name: str, root: Path, train: Path, val: Path, test: Path, args: argparse.Namespace, seed: int) -> dict:
    script = PEERS / f"plain_{name}.py"
    command = [
        sys.executable,
        str(script),
        str(train),
        str(val),
        str(test),
        "--trials",
        str(args.trials),
        "--max-epochs",
        str(args.max_epochs),
        "--image-size",
        str(args.image_size),
        "--seed",
        str(seed),
        "--dir",
        str(root / name),
    ]
    started, wall, stdout = timed(command, root)
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures["started_at"] = started  # the clock of the subprocess's start, as for leafsearch
    return {**figures, "wall_s": wall}


def reached(figures: dict, target: float) -> dict:
    """When a contender first reached `target` (val_accuracy), over all its epochs in time order."""
    for count, epoch in enumerate(sorted(figures["epochs"], key=lambda e: e["ended_at"]), start=1):
        if epoch["val_accuracy"] >= target - 1e-9:
            return {"time_to_target_s": round(epoch["ended_at"] - figures["started_at"], 1), "epochs_to_target": count}
    return {"time_to_target_s": None, "epochs_to_target": None}


def earlier_peers(paths: list[Path], args: argparse.Namespace) -> dict[str, dict]:
    """The peers' figures per seed from earlier runs of this script with the same data and budget
    (the peers do not change with leafsearch's flags, so they need not run again)."""
    same = ("images", "test_images", "image_size", "trials", "max_epochs")
    out: dict[str, dict] = {}
    for path in paths:
        earlier = json.loads(Path(path).read_text())
        if any(earlier["config"][k] != getattr(args, k) for k in same):
            raise SystemExit(f"{path}: run with other data or budget ({', '.join(same)} must match)")
        for seed, figures in earlier["per_seed"].items():
            out.setdefault(seed, {}).update({n: f for n, f in figures.items() if n in CONTENDERS[1:]})
    return out


def one_seed(args: argparse.Namespace, seed: int, known: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"ttq-{seed}-") as tmp:
        root = Path(tmp)
        train, test = draw_data(root, args, seed)
        peer_train, peer_val = peer_split(train, root, seed)
        out = {}
        for name in args.contenders:
            log(f"seed {seed}: {name}")
            out[name] = (
                run_leafsearch(root, train, test, args, seed)
                if name == "leafsearch"
                else run_peer(name, root, peer_train, peer_val, test, args, seed)
            )
            log(
                f"seed {seed}: {name}: val {out[name]['best_val_accuracy']:.3f} test {out[name]['test_accuracy']:.3f} "
                f"wall {out[name]['wall_s']:.0f} s, {out[name]['epochs_trained']} epochs"
            )
    peers = [n for n in out if n != "leafsearch"] + [n for n in known if n not in out]
    target = max(((out.get(n) or known[n])["best_val_accuracy"] for n in peers), default=None)
    for figures in out.values():
        if target is not None:
            figures.update(reached(figures, target))
        figures.pop("epochs")
        figures.pop("started_at")
        figures["wall_s"] = round(figures["wall_s"], 1)
    return {"target_val_accuracy": target, **{n: f for n, f in known.items() if n not in out}, **out}


def medians(per_seed: dict) -> dict:
    names = {n for seed in per_seed.values() for n in seed if n != "target_val_accuracy"}
    keys = ("best_val_accuracy", "test_accuracy", "wall_s", "epochs_trained", "time_to_target_s", "epochs_to_target")
    out = {}
    for name in sorted(names):
        rows = [seed[name] for seed in per_seed.values() if name in seed]
        out[name] = {
            k: statistics.median(r[k] for r in rows if r.get(k) is not None)
            if any(r.get(k) is not None for r in rows)
            else None
            for k in keys
        }
    return out


def goal(summary: dict) -> dict | None:
    if "leafsearch" not in summary or len(summary) < 2:
        return None
    peers = {n: s for n, s in summary.items() if n != "leafsearch"}
    best = max(peers, key=lambda n: peers[n]["test_accuracy"])
    ours, theirs = summary["leafsearch"], peers[best]
    checks = {
        "test_accuracy_delta_points": round(100 * (ours["test_accuracy"] - theirs["test_accuracy"]), 1),
        "wall_ratio": round(ours["wall_s"] / theirs["wall_s"], 2),
        "epochs_ratio": round(ours["epochs_trained"] / theirs["epochs_trained"], 2),
    }
    met = checks["test_accuracy_delta_points"] >= -0.5 and checks["wall_ratio"] <= 0.5 and checks["epochs_ratio"] <= 0.5
    return {"best_peer": best, **checks, "met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=840)
    parser.add_argument("--test-images", type=int, default=420)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--leafsearch-flags", default="", help="extra flags for `leafsearch run` (default: none)")
    parser.add_argument(
        "--peers",
        nargs="*",
        type=Path,
        default=[],
        help="earlier outputs of this script whose peers' figures to reuse (same data and budget)",
    )
    args = parser.parse_args()
    known = earlier_peers(args.peers, args)
    per_seed = {str(seed): one_seed(args, seed, known.get(str(seed), {})) for seed in args.seeds}
    summary = medians(per_seed)
    print(
        json.dumps(
            {"config": vars(args), "per_seed": per_seed, "median": summary, "goal": goal(summary)},
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
