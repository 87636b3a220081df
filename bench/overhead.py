"""Per-trial overhead: a leafsearch study of N tiny CNN trials vs a plain Optuna + Keras script
that trains exactly the same models on the same data.

What is timed is what a user pays: each side is a fresh Python subprocess, timed from its start
to its exit, so interpreter start, imports and data loading count on both sides.

1. **leafsearch**: the real CLI, `python -m leafsearch run spaces/cnn.py --data DIR --trials N
   --image-size S --max-epochs E --set batch_size=B --no-prune` (TPE, a child process per trial,
   a checkpoint every epoch, the cost measurement, the journal storage and the leaderboard).
2. **plain**: this file run with `--plain SPEC`: `import keras, optuna`, decode the same folder in
   memory with the same 5:1 split, then an in-memory `optuna.create_study()` with each finished
   leafsearch trial's parameters enqueued, and an objective that rebuilds the same model
   (`leafsearch.training.recipe.resolve` + `leafsearch.models.cnn.build_cnn`, the same seed through
   `keras.utils.set_random_seed`) and trains it with plain `model.fit` on NumPy arrays for the
   same epochs and batch size, with Adam, cross-entropy and early stopping as in the trial.
3. **leafsearch --in-process** (unless `--no-in-process`): the same command with `--in-process`,
   to separate what the child process per trial costs from the rest.

Where leafsearch's extra time goes comes from what the run leaves behind: the journal's trial
start and end times (startup before trial 0, gaps between trials, shutdown after the last) and,
inside each trial, the modification times of the trial's files: `params.json` (the parent wrote
it) -> `classes.json` (the child started, opened the data, built the model) -> `costs.json` (the
cost measurement: predict calls and a FLOP count) -> `checkpoints/latest.json` (the epochs,
checkpoints included) -> the trial's end in the journal (child exit, tell, leaderboard). A last
probe subprocess (unless `--no-probe`) times one checkpoint write and one cost measurement in
isolation. The plain side reports its own import, data and per-trial fit times.

Prints one JSON object; progress goes to stderr.

    python bench/overhead.py [--trials 6] [--images 112] [--image-size 32] [--max-epochs 3] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "spaces" / "cnn.py"
GOAL = 1.05


def log(message: str) -> None:
    print(f"[overhead] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def timed(command: list[str], cwd: Path, output: Path) -> float:
    """Run `command` to its exit with stdout and stderr in `output`; seconds from start to exit."""
    with open(output, "w") as handle:
        started = time.monotonic()
        done = subprocess.run(command, cwd=cwd, env=child_env(), stdout=handle, stderr=subprocess.STDOUT)
        wall = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(output.read_text()[-3000:])
        raise SystemExit(f"{command[:4]} exited with {done.returncode}; its output is above")
    return wall


# ---------------------------------------------------------------------------------------------
# The leafsearch side
# ---------------------------------------------------------------------------------------------
def run_leafsearch(root: Path, data: Path, args: argparse.Namespace, mode: str = "isolated") -> dict:
    """mode: "isolated" (the default CLI) or "in_process" (`--in-process`)."""
    name = f"leafsearch-{mode}"
    results = root / name
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
        "--image-size",
        str(args.image_size),
        "--max-epochs",
        str(args.max_epochs),
        "--set",
        f"batch_size={args.batch_size}",
        "--no-prune",
        "--seed",
        str(args.seed),
    ]
    if mode == "in_process":
        command.append("--in-process")
    log(f"{name}: {' '.join(command[1:])}")
    started_at = time.time()
    wall = timed(command, root, root / f"{name}.log")
    log(f"{name}: {wall:.1f} s")
    return {"wall_s": round(wall, 2), **breakdown(results / "cnn", started_at, wall)}


def breakdown(study_dir: Path, started_at: float, wall: float) -> dict:
    """Where the wall time went, from the journal's trial times and the trial files' mtimes."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(study_dir / "study.journal")))
    study = optuna.load_study(study_name="cnn", storage=storage)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    stamp = lambda moment: moment.timestamp() if isinstance(moment, datetime.datetime) else float(moment)  # noqa: E731
    starts = [stamp(t.datetime_start) for t in trials]
    ends = [stamp(t.datetime_complete) for t in trials]
    per_trial, spec = [], []
    for trial, start, end in zip(trials, starts, ends):
        folder = study_dir / "trials" / str(trial.number)
        mtime = lambda name, folder=folder: (folder / name).stat().st_mtime  # noqa: E731
        built, measured, trained = mtime("classes.json"), mtime("costs.json"), mtime("checkpoints/latest.json")
        run = json.loads((folder / "run.json").read_text())
        params = json.loads((folder / "params.json").read_text())
        epochs = len(json.loads((folder / "history.json").read_text()))
        per_trial.append(
            {
                "trial": trial.number,
                "duration_s": round(end - start, 2),
                "epochs": epochs,
                "spawn_data_build_s": round(built - start, 2),
                "cost_measure_s": round(measured - built, 2),
                "epochs_s": round(trained - measured, 2),
                "finish_s": round(end - trained, 2),
                "val_accuracy": trial.value,
            }
        )
        spec.append({"number": trial.number, "seed": run["seed"], "params": params, "epochs": epochs})
    total = lambda key: round(sum(row[key] for row in per_trial), 2)  # noqa: E731
    return {
        "startup_s": round(starts[0] - started_at, 2),  # process start -> trial 0 starts
        "trials_s": round(sum(e - s for s, e in zip(starts, ends)), 2),
        "between_trials_s": round(sum(s - e for s, e in zip(starts[1:], ends[:-1])), 2),
        "shutdown_s": round(started_at + wall - ends[-1], 2),  # last trial ends -> process exit
        "in_trials": {key: total(key) for key in ("spawn_data_build_s", "cost_measure_s", "epochs_s", "finish_s")},
        "per_trial": per_trial,
        "_spec": spec,
    }


# ---------------------------------------------------------------------------------------------
# The plain side: what a user would write with Optuna and Keras alone
# ---------------------------------------------------------------------------------------------
def plain_main(spec_path: Path) -> None:
    """`python bench/overhead.py --plain SPEC`: the plain Optuna + Keras study of SPEC's trials."""
    begun = time.monotonic()
    import keras
    import numpy as np
    import optuna

    from leafsearch import data as leafdata
    from leafsearch.models.cnn import build_cnn
    from leafsearch.training.recipe import resolve

    imported = time.monotonic()
    spec = json.loads(Path(spec_path).read_text())
    size = spec["image_size"]
    data = leafdata.prepare(
        spec["data"], size, cache_dir=None, seed=spec["split_seed"]
    )  # decoded in memory, same split
    images, num_classes = np.asarray(data.images), data.num_classes
    onehot = np.eye(num_classes, dtype="float32")[data.labels]
    x_train, y_train = images[data.train_idx], onehot[data.train_idx]
    x_val, y_val = images[data.val_idx], onehot[data.val_idx]
    loaded = time.monotonic()

    queue = list(spec["trials"])
    trial_s: list[float] = []
    values: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        started = time.monotonic()
        seed = queue[trial.number]["seed"]
        params = {  # spaces/cnn.py's distributions; the enqueued values are what they return
            "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32, 64, 128]),
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "dense_units": trial.suggest_int("dense_units", 128, 1024, step=128),
            "patience": trial.suggest_int("patience", 3, 12),
            "image_size": size,
        }
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        recipe = resolve(params, "cnn")
        model = build_cnn(recipe, num_classes, seed)
        model.compile(
            optimizer=keras.optimizers.Adam(params["learning_rate"]),
            loss=keras.losses.CategoricalCrossentropy(),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        history = model.fit(
            x_train,
            y_train,
            batch_size=params["batch_size"],
            epochs=spec["epochs"],
            validation_data=(x_val, y_val),
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=params["patience"])],
            shuffle=True,
            verbose=0,
        )
        value = max(history.history["val_accuracy"])
        trial_s.append(round(time.monotonic() - started, 2))
        values.append(value)
        print(
            f"[plain] trial {trial.number}: val_accuracy={value:.4f} in {trial_s[-1]:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec["split_seed"]))
    for item in queue:
        study.enqueue_trial(item["params"])
    study.optimize(objective, n_trials=len(queue))
    print(
        json.dumps(
            {
                "import_s": round(imported - begun, 2),
                "data_s": round(loaded - imported, 2),
                "trial_s": trial_s,
                "val_accuracy": values,
            }
        )
    )


def run_plain(root: Path, spec: dict) -> dict:
    spec_path = root / "plain-spec.json"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, str(Path(__file__).resolve()), "--plain", str(spec_path)]
    log(f"plain: {' '.join(command[1:])}")
    wall = timed(command, root, root / "plain.log")
    log(f"plain: {wall:.1f} s")
    reported = json.loads((root / "plain.log").read_text().strip().splitlines()[-1])
    startup = wall - sum(reported["trial_s"])
    return {"wall_s": round(wall, 2), "startup_and_exit_s": round(startup, 2), **reported}


# ---------------------------------------------------------------------------------------------
# The probe: one checkpoint write and one cost measurement, in isolation
# ---------------------------------------------------------------------------------------------
def probe_main(spec_path: Path) -> None:
    """`python bench/overhead.py --probe SPEC`: time leafsearch's per-epoch checkpoint and its
    per-trial cost measurement on trial 0's model (after one epoch, so the optimizer has state)."""
    from leafsearch.runtime import import_keras_quietly

    import_keras_quietly()
    import keras
    import numpy as np

    from leafsearch import data as leafdata
    from leafsearch.models import costs
    from leafsearch.models.cnn import build_cnn
    from leafsearch.training.recipe import resolve
    from leafsearch.training.weights_files import Trainer
    from search.records.checkpoints import CheckpointStore
    from search.records.files import write_json_atomic

    spec = json.loads(Path(spec_path).read_text())
    data = leafdata.prepare(spec["data"], spec["image_size"], cache_dir=None, seed=spec["split_seed"])
    trial = spec["trials"][0]
    recipe = resolve(trial["params"], "cnn")
    onehot = np.eye(data.num_classes, dtype="float32")[data.labels]
    out: dict = {}

    keras.utils.set_random_seed(trial["seed"])
    model = build_cnn(recipe, data.num_classes, trial["seed"])
    started = time.monotonic()
    measured = costs.measure(model, data.images[sorted(data.val_idx[: costs.BATCH])])
    out["cost_measure_s"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    costs.flops_per_image(model)
    out["cost_measure_flops_only_s"] = round(time.monotonic() - started, 3)
    out["params"] = measured["params"]

    model.compile(
        optimizer=keras.optimizers.Adam(recipe["learning_rate"]), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(data.images[data.train_idx], onehot[data.train_idx], batch_size=recipe["batch_size"], epochs=1, verbose=0)
    store = CheckpointStore(Path(spec_path).parent / "probe-checkpoints")
    history = [{"epoch": 0, "loss": 1.0, "val_accuracy": 0.5}]
    times, weights_only, history_writes = [], [], []
    for epoch in range(5):
        started = time.monotonic()
        store.save(epoch, lambda folder: Trainer(model).save(model, folder), {"history": history}, keep={0})
        times.append(time.monotonic() - started)
        started = time.monotonic()
        model.save_weights(str(Path(spec_path).parent / "probe.weights.h5"))
        weights_only.append(time.monotonic() - started)
        started = time.monotonic()
        write_json_atomic(Path(spec_path).parent / "probe-history.json", history)  # the parent's per-epoch history.json
        history_writes.append(time.monotonic() - started)
    out["checkpoint_save_s"] = round(statistics.median(times), 4)
    out["save_weights_only_s"] = round(statistics.median(weights_only), 4)
    out["history_write_s"] = round(statistics.median(history_writes), 4)
    out["checkpoint_mb"] = round(sum(f.stat().st_size for f in store.path(4).iterdir()) / 2**20, 2)
    print(json.dumps(out))


def run_probe(root: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", str(root / "plain-spec.json")]
    log("probe: one checkpoint write and one cost measurement")
    timed(command, root, root / "probe.log")
    return json.loads((root / "probe.log").read_text().strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--images", type=int, default=112, help="synthetic leaves to draw")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="the study's --seed (sampler, split, trials)")
    parser.add_argument("--no-in-process", action="store_true", help="skip the `--in-process` leafsearch run")
    parser.add_argument("--no-probe", action="store_true", help="skip the checkpoint / cost-measurement probe")
    parser.add_argument(
        "--keep", type=Path, help="keep the data, logs and results in this folder (default: a temporary one)"
    )
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        return plain_main(args.plain)
    if args.probe:
        return probe_main(args.probe)

    sys.path.insert(0, str(REPO))
    from leafsearch.data import synthetic

    with tempfile.TemporaryDirectory(prefix="leafsearch-overhead-") as tmp:
        root = Path(tmp)
        data = root / "data"
        synthetic.generate(data, total=args.images, image_size=args.image_size, seed=0, workers=2)
        log(f"drew {args.images} synthetic leaves of {args.image_size} px into {data}")

        leaf = run_leafsearch(root, data, args)
        spec = {
            "data": str(data),
            "image_size": args.image_size,
            "split_seed": args.seed,
            "epochs": args.max_epochs,
            "trials": leaf.pop("_spec"),
        }
        plain = run_plain(root, spec)
        inproc = None
        if not args.no_in_process:
            inproc = run_leafsearch(root, data, args, "in_process")
            inproc.pop("_spec")
        probe = None if args.no_probe else run_probe(root)
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)

    n = args.trials
    result = {
        "benchmark": "overhead",
        "trials": n,
        "images": args.images,
        "image_size": args.image_size,
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "leafsearch_wall_s": leaf["wall_s"],
        "plain_wall_s": plain["wall_s"],
        "ratio": round(leaf["wall_s"] / plain["wall_s"], 3),
        "leafsearch_per_trial_s": round(leaf["wall_s"] / n, 2),
        "plain_per_trial_s": round(plain["wall_s"] / n, 2),
        "leafsearch_mean_trial_duration_s": round(leaf["trials_s"] / n, 2),
        "plain_mean_trial_s": round(statistics.mean(plain["trial_s"]), 2),
        "goal": f"ratio <= {GOAL}",
        "leafsearch": leaf,
        "plain": plain,
    }
    if inproc is not None:
        result["leafsearch_in_process_wall_s"] = inproc["wall_s"]
        result["ratio_in_process"] = round(inproc["wall_s"] / plain["wall_s"], 3)
        result["leafsearch_in_process"] = inproc
    if probe is not None:
        result["probe"] = probe
    print(json.dumps(result))


if __name__ == "__main__":
    main()
