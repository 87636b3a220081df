"""What each CLI command does, once its arguments are parsed. Errors are raised as UsageError."""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from leafsearch import runtime
from leafsearch.cli import STORAGE_VARIABLE
from leafsearch.runtime import import_keras_quietly
from leafsearch.training.objective import LeafObjective
from search import engines, leaderboard
from search.display import Display, leaderboard_table
from search.errors import UsageError
from search.files import read_json, write_text_atomic
from search.optuna_runner import (
    JOURNAL_NAME,
    OptunaRunner,
    RunOptions,
    SearchAborted,
    make_storage,
    mask_url,
    open_study,
    rows_from_study,
)
from search.space import Fixed, Space
from search.study import Study
from search.trial_exec import TrialProcesses
from search.spacefile import load_space_file

RESUME_HINTS = {
    "run": "run the same command again to resume (finished trials are kept)",
    "worker": "run the same command again to rejoin the study (finished trials are kept)",
    "demo-data": "the output folder is incomplete; delete it and run again",
}
SYNTHETIC_IMAGES = 560
SYNTHETIC_SIZE = 256

__all__ = ["RESUME_HINTS", "SearchAborted", "demo_data", "report", "run", "studies", "worker"]


# -- run ---------------------------------------------------------------------------------------
def load_space(args: argparse.Namespace):
    """The space file's SPACE (with --set and --image-size pinned) and STUDY."""
    from leafsearch.training import recipe

    space, spec = load_space_file(
        args.space, known_names=set(recipe.KNOWN_NAMES), pipelines=set(recipe.PIPELINES), metrics=set(recipe.METRICS)
    )
    for name, value in args.pins:
        space = space.pin(name, value)
    # Explicit overrides, allowed outside the space's own values (a smaller image, offline weights).
    overrides = {"image_size": args.image_size, "backbone": args.backbone, "weights": args.weights}
    for name, value in overrides.items():
        if value is not None:
            space = Space({**dict(space.items()), name: Fixed(value)})
    problems = recipe.space_problems(space, spec.pipeline)
    if problems:
        raise UsageError(f"{args.space}: invalid space: " + "; ".join(problems))
    return space, spec


def recipe_values(space: Space, name: str, pipeline: str) -> tuple:
    """Every value the space can give `name` in a trial (the recipe's default where not searched)."""
    from leafsearch.training import recipe

    param = space[name] if name in space else Fixed(recipe.resolve({}, pipeline)[name])
    if isinstance(param, Fixed):
        return (param.value,)
    if hasattr(param, "values"):
        return tuple(param.values)
    raise UsageError(f"parameter `{name}` must be a Choice or Fixed, not a range")


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--results: cannot write to {folder} ({exc.strerror}); pass --results DIR with a writable folder") from None


def synthetic_data(results: Path, out=None) -> Path:
    """The built-in dataset, drawn once into the results folder and reused afterwards."""
    from leafsearch.data import synthetic

    folder = results / ".synthetic" / f"leaves-{SYNTHETIC_IMAGES}-{SYNTHETIC_SIZE}px-seed0"
    done = folder / ".complete"
    if not done.exists():
        print(f"Drawing the built-in synthetic leaf dataset into {folder} ...", file=out or sys.stdout)
        synthetic.generate(folder, total=SYNTHETIC_IMAGES, image_size=SYNTHETIC_SIZE, seed=0, workers=2)
        done.write_text("ok\n")
    return folder


def run(args: argparse.Namespace) -> int:
    space, spec = load_space(args)
    return _run(args, space, spec)


def worker(args: argparse.Namespace) -> int:
    """Join an existing Optuna study (from this machine or another): its space and settings come
    from the storage unless a space file is given."""
    import optuna

    if not args.study or "/" in args.study or args.study.startswith("."):
        raise UsageError(f"--study {args.study!r}: a study name is a plain folder name such as cnn")
    journal = args.results / args.study / JOURNAL_NAME
    if args.storage is None and not journal.is_file():
        raise UsageError(f"--study {args.study}: no study at {journal}; start it first with leafsearch run SPACE --study {args.study}, "
                         f"or pass the study's --storage URL")
    storage = make_storage(args.results / args.study, args.storage)
    try:
        study = optuna.load_study(study_name=args.study, storage=storage)
    except KeyError:
        where = mask_url(args.storage) or str(args.results / args.study)
        raise UsageError(f"--study {args.study}: no such study in {where}; start it first with "
                         f"leafsearch run SPACE --study {args.study}" + (" --storage URL" if args.storage else "")) from None
    attrs = study.user_attrs
    settings = attrs.get("settings", {})
    if args.space is not None:
        space, spec = load_space(args)
    else:
        space = Space.from_dict(attrs["space"])
        spec = Study(pipeline=attrs["pipeline"], metric=attrs["metric"], direction=study.direction.name.lower(),
                     trials=settings.get("trials", 1), max_epochs=settings.get("max_epochs", 1))
    args.backend = "optuna"
    args.algorithm = settings.get("algorithm")
    args.seed = attrs.get("split_seed", 0)
    args.pruner = settings.get("pruner") or ("median" if settings.get("prune", True) else "none")
    args.no_prune = False
    args.max_epochs = args.max_epochs or settings.get("max_epochs")
    args.trials = args.trials or settings.get("trials")
    args.timeout = None
    args.workers = 1
    return _run(args, space, spec)


def _run(args: argparse.Namespace, space: Space, spec: Study) -> int:
    from leafsearch import data as leafdata

    algorithms = engines.ALGORITHMS[args.backend]
    args.algorithm = args.algorithm or engines.default_algorithm(args.backend)
    if args.algorithm not in algorithms:
        raise UsageError(f"--algorithm {args.algorithm}: unknown for the {args.backend} backend; use one of {', '.join(algorithms)}")
    pruner = chosen_pruner(args)
    if args.backend == "kerastuner" and args.storage is not None:
        raise UsageError("--storage is for the optuna backend; a kerastuner study is stored in its project folder under --results")
    study_name = args.study or Path(args.space).stem
    if not study_name or "/" in study_name or study_name.startswith("."):
        raise UsageError(f"--study {study_name!r}: a study name is a plain folder name such as cnn")
    check_writable(args.results)
    if args.data is None:
        data_root = synthetic_data(args.results)
        print(f"No --data given: using the built-in synthetic leaf dataset ({data_root}); pass --data DIR for your own images.")
    else:
        data_root = args.data
    folder = leafdata.scan_folder(data_root)  # a bad folder is reported before the study is touched
    if args.storage is not None:
        make_storage(args.results / study_name, args.storage)  # an unreachable server is reported now, not after decoding
    if spec.pipeline == "efficientnet":  # unusable weights are reported before anything starts
        import_keras_quietly()  # bad input above is reported without waiting for Keras to load
        from leafsearch.models import efficientnet

        for backbone in recipe_values(space, "backbone", spec.pipeline):
            for weights in recipe_values(space, "weights", spec.pipeline):
                efficientnet.check_weights_available(backbone, weights)
    preload = ("leafsearch.training.preload",)
    device_report = None
    if not args.in_process:
        # Trials train in children of a fork server that imports Keras once. Started now, its
        # imports overlap this process's work; and where this process needs no Keras of its own
        # (the KerasTuner engine does), it asks a child for the device instead of importing
        # Keras a second time (~5 s of CPU per run).
        TrialProcesses.start_server(preload)
        device_report = TrialProcesses.call(runtime.report, args.precision)
    if device_report is None or args.backend == "kerastuner":
        import_keras_quietly()

    max_epochs = args.max_epochs or spec.max_epochs
    objective = LeafObjective(
        data_root=data_root,
        pipeline=spec.pipeline,
        max_epochs=max_epochs,
        cache_dir=args.results / ".cache",
        metric=spec.metric,
        direction=spec.direction,
        split_seed=args.seed,
        precision=args.precision,
    )
    for size in recipe_values(space, "image_size", spec.pipeline):  # decode once, and find bad data now
        objective.data(size)
    found = device_report.result() if device_report is not None else runtime.report(args.precision)
    policy = found["policy"]
    options = RunOptions(
        study_name=study_name,
        study_dir=args.results / study_name,
        trials=args.trials or spec.trials,
        storage=args.storage,
        algorithm=args.algorithm,
        pruner=pruner,
        max_resource=most_epochs_a_trial(space, spec.pipeline, max_epochs),
        seed=args.seed,
        timeout_s=args.timeout,
        identity={"data": leafdata.content_id(folder), "split_seed": args.seed},
        settings={"trials": args.trials or spec.trials, "max_epochs": max_epochs, "algorithm": args.algorithm,
                  "pruner": pruner},
        run_info={**found["versions"], "precision": policy, "data": str(data_root), "classes": len(folder.class_names)},
        in_process=args.in_process,
        preload=preload,
        worker=int(os.environ.get(WORKER_INDEX, "0")) if args.command == "run" else os.getpid(),
    )
    index = os.environ.get(WORKER_INDEX)
    display = Display(spec.metric, prefix=f"worker {index} | " if index else "")
    if index is None:
        display.note(f"Data: {len(folder.paths)} images in {len(folder.class_names)} classes; device: {found['device']}, precision {policy}")
    if args.workers > 1:
        return _run_workers(args, space, spec, options, objective, display, gpus=found["gpus"])
    if args.backend == "kerastuner":
        from search.kerastuner_runner import KerasTunerRunner

        runner = KerasTunerRunner(space, spec, objective, options, display, max_epochs=most_epochs_a_trial(space, spec.pipeline, max_epochs))
        runner.run()
        best = runner.best_trial()
    else:
        study = OptunaRunner(space, spec, objective, options, display).run()
        best = _best_of(study)
    if index is None:
        _print_outcome(best, spec.metric, options)
    return 0


WORKER_INDEX = "LEAFSEARCH_WORKER"


def chosen_pruner(args: argparse.Namespace) -> str:
    """`--pruner NAME`, or `--no-prune` (its older spelling of `none`), checked against the engine."""
    pruner = getattr(args, "pruner", None)
    if args.no_prune:
        if pruner not in (None, "none"):
            raise UsageError(f"--no-prune contradicts --pruner {pruner}; pass one of them")
        pruner = "none"
    pruner = pruner or engines.PRUNERS[args.backend][0]
    if pruner not in engines.PRUNERS[args.backend]:
        hint = "; KerasTuner's own successive halving is --algorithm hyperband" if args.backend == "kerastuner" else ""
        raise UsageError(f"--pruner {pruner}: not for the {args.backend} backend; use one of "
                         f"{', '.join(engines.PRUNERS[args.backend])}{hint}, or --backend optuna")
    return pruner


def _run_workers(args, space: Space, spec: Study, options: RunOptions, objective, display: Display, gpus: int) -> int:
    """`--workers N`: N workers on this machine sharing one study, the target total holding across
    them; with GPUs, each gets its own. Optuna: this process and N-1 more, through the study's
    storage. KerasTuner: this process as the chief, and N workers."""
    argv = [sys.executable, "-m", "leafsearch", *_without_workers(args.argv)]
    if args.backend == "kerastuner":
        # KerasTuner's own distributed mode: this process is the chief (it serves the oracle and
        # trains nothing); N workers ask it for trials over gRPC on the loopback interface.
        from search.kerastuner_runner import ORACLE_IP, ORACLE_PORT, TUNER_ID, KerasTunerRunner

        os.environ.update({ORACLE_IP: "127.0.0.1", ORACLE_PORT: str(_free_port()), TUNER_ID: "chief"})
        first, extra = 1, args.workers
        max_epochs = most_epochs_a_trial(space, spec.pipeline, args.max_epochs or spec.max_epochs)
        runner = KerasTunerRunner(space, spec, objective, options, display, max_epochs=max_epochs)
    else:
        open_study(space, spec, options)  # created (or checked) once, before any worker starts
        first, extra = 1, args.workers - 1
        runner = OptunaRunner(space, spec, objective, options, display)
        display.prefix = "worker 0 | "

    def start(index: int) -> subprocess.Popen:
        env = {**os.environ, WORKER_INDEX: str(index)}
        if args.storage is not None:
            env[STORAGE_VARIABLE] = args.storage  # not on the command line, where `ps` would show a password
        if args.backend == "kerastuner":
            env[TUNER_ID] = f"tuner{index}"
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        return subprocess.Popen(argv, env=env)

    workers = {index: start(index) for index in range(first, first + extra)}
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"  # this process's trials run on the first GPU
    try:
        if args.backend == "kerastuner":
            _serve_as_chief(runner, workers, start, display)
        else:
            runner.run()
    except BaseException:
        # On Ctrl-C the terminal interrupts every worker; give them time to leave their trials
        # resumable, then interrupt any that did not hear it (e.g. `kill -INT` of this process).
        for child in workers.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGINT)
                child.wait()
        raise
    codes = [child.wait() for child in workers.values()]
    _print_outcome(runner.best_trial() if args.backend == "kerastuner" else _best_of(runner.study), spec.metric, options)
    failed = [code for code in codes if code != 0]
    if failed:
        print(f"{len(failed)} of {len(workers)} other workers exited with codes {sorted(set(failed))}; "
              f"their trials were continued by the others", file=sys.stderr)
    return 0


RESTARTS = 2  # times a KerasTuner worker that failed is started again


def _serve_as_chief(runner, workers: dict, start, display: Display) -> None:
    """Serve KerasTuner's oracle until the target is met. The chief waits for every worker it
    has seen, so a worker that dies (a crash, kill -9, the OOM killer) would keep it waiting for
    ever: such a worker is started again under the same tuner id, and KerasTuner gives it back
    its unfinished trial, which continues from its checkpoint."""
    done, failure = threading.Event(), []

    def serve() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=serve, name="kerastuner-chief", daemon=True).start()
    restarts = dict.fromkeys(workers, 0)
    while not done.wait(1.0):
        for index, child in list(workers.items()):
            code = child.poll()
            if code in (None, 0):
                continue
            if restarts[index] >= RESTARTS:
                raise SearchAborted(f"worker {index} failed {RESTARTS + 1} times (last exit code {code}); "
                                    f"fix the cause (see its lines above) and run again to resume")
            restarts[index] += 1
            display.note(f"Worker {index} exited with code {code}: starting it again.")
            workers[index] = start(index)
    if failure:
        raise failure[0]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _without_workers(argv: list[str]) -> list[str]:
    """The command line of this run, for one more worker: everything but --workers (and
    --storage, which travels in the environment)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in ("--workers", "--storage"):
            skip = True
        elif not item.startswith(("--workers=", "--storage=")):
            out.append(item)
    return out


def most_epochs_a_trial(space: Space, pipeline: str, cap: int) -> int:
    """The most epochs one trial can train, across its phases, each capped at `cap` (Hyperband's
    max_epochs)."""
    names = ("transfer_epochs", "finetune_epochs") if pipeline == "efficientnet" else ("epochs",)
    total = 0
    for name in names:
        param = space[name] if name in space else None
        if param is not None and hasattr(param, "high"):
            most = param.high
        else:
            most = max(recipe_values(space, name, pipeline))
        total += min(int(most), cap)
    return total


def _best_of(study) -> dict | None:
    try:
        best = study.best_trial
    except ValueError:
        return None
    return {"trial": best.number, "value": best.value, "params": best.user_attrs.get("params", best.params)}


def _print_outcome(best: dict | None, metric: str, options: RunOptions) -> None:
    if best is None:
        print("No trial has completed yet.")
        return
    params = " ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"Best: trial {best['trial']} {metric}={best['value']:.4f} {params}")
    print(f"Leaderboard: {options.study_dir / 'leaderboard.csv'}  (leafsearch report --study {options.study_name})")


# -- report ------------------------------------------------------------------------------------
KERASTUNER_IDENTITY = "leafsearch.json"  # search.kerastuner_runner.IDENTITY_NAME (importing it would load Keras)


def latest_study(results: Path) -> str:
    boards = sorted(results.glob("*/leaderboard.csv"), key=lambda p: p.stat().st_mtime) if results.is_dir() else []
    if not boards:
        raise UsageError(f"no study found in {results}/; run `leafsearch run spaces/cnn.py` first or pass --results DIR")
    return boards[-1].parent.name


def load_leaderboard(args: argparse.Namespace):
    """(frame, metric, direction, study name) from the leaderboard file or an Optuna storage."""
    frame, meta = load_study_rows(args)
    return frame, meta["metric"], meta["direction"], meta["study"]


def load_study_rows(args: argparse.Namespace):
    """(frame, meta): the leaderboard (from its file, or rebuilt from an Optuna storage URL) and
    what the report's header says about the study: study, metric, direction, backend,
    algorithm, storage (password masked) and, when the storage was read, its space."""
    if args.storage:
        import optuna

        storage = make_storage(args.results, args.storage)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        name = args.study or (names[0] if len(names) == 1 else None)
        if name not in names:
            raise UsageError(f"--study: pass one of the storage's studies: {', '.join(names) or '(none)'}")
        study = optuna.load_study(study_name=name, storage=storage)
        metric = study.user_attrs.get("metric", "value")
        settings = study.user_attrs.get("settings", {})
        algorithm = settings.get("algorithm", "tpe")
        space = study.user_attrs.get("space", {})
        frame = leaderboard.build(rows_from_study(study, metric, algorithm), metric, list(space))
        return frame, {"study": name, "metric": metric, "direction": study.direction.name.lower(), "backend": "optuna",
                       "algorithm": algorithm, "pruner": settings.get("pruner"), "storage": mask_url(args.storage),
                       "space": space or None}
    name = args.study or latest_study(args.results)
    study_dir = args.results / name
    board = study_dir / "leaderboard.csv"
    if not board.is_file():
        raise UsageError(f"--study {name}: no leaderboard at {board}; run the study first (leafsearch run SPACE --study {name})")
    meta = read_json(study_dir / "study.json", {}) or {}
    frame = leaderboard.read(board)
    stored = meta.get("storage") or JOURNAL_NAME
    first = frame.iloc[0] if len(frame) else {}
    return frame, {"study": name, "metric": meta.get("metric", "val_accuracy"), "direction": meta.get("direction", "maximize"),
                   "backend": meta.get("backend") or first.get("backend"), "algorithm": meta.get("algorithm") or first.get("algorithm"),
                   "pruner": meta.get("pruner"), "storage": stored if "://" in stored else str(study_dir / stored), "space": None}


def study_space(study_dir: Path, meta: dict) -> Space | None:
    """The study's space, for plots that need the parameters' ranges: from the storage that
    recorded it (Optuna's study, KerasTuner's project); None when it cannot be read here."""
    data = meta.get("space")
    storage = Path(meta.get("storage") or "")
    if data is None and (storage / KERASTUNER_IDENTITY).is_file():
        data = read_json(storage / KERASTUNER_IDENTITY, {}).get("space")
    elif data is None and storage.name == JOURNAL_NAME and storage.is_file():
        import optuna

        try:
            data = optuna.load_study(study_name=meta["study"], storage=make_storage(study_dir, None)).user_attrs.get("space")
        except KeyError:  # the journal holds no study of that name
            data = None
    return Space.from_dict(data) if data else None


def write_report_plots(frame, meta: dict, study_dir: Path):
    """The plots of `frame` into results/<study>/plots/, with the space's ranges when it can be read."""
    from search import optuna_space, plots

    space = study_space(study_dir, meta)
    histories = {}
    for number in frame["trial"].dropna():
        history = read_json(study_dir / "trials" / str(int(number)) / "history.json")
        if history:
            histories[int(number)] = history
    distributions = optuna_space.distributions(space) if space is not None else None
    try:
        return plots.write_plots(frame, meta["metric"], meta["direction"], distributions, histories, study_dir / "plots")
    except OSError as exc:
        raise UsageError(f"--plots: cannot write to {study_dir / 'plots'} ({exc.strerror})") from None


def report(args: argparse.Namespace) -> int:
    from search import report as study_report

    frame, meta = load_study_rows(args)
    metric, direction, name = meta["metric"], meta["direction"], meta["study"]
    study_dir = args.results / name
    shown = study_report.filter_state(frame, args.state)
    if args.sort:
        shown = study_report.sort_by(shown, args.sort, metric, direction)
        order = f"sorted by {args.sort}"
    else:
        shown = leaderboard.sort_best_first(shown, metric, direction)
        order = "best first"
    if args.top:
        shown = shown.head(args.top)
    header = study_report.header(frame, meta)
    evaluations = study_report.load_evaluations(study_dir / "evaluations")
    drawn = write_report_plots(frame, meta, study_dir) if args.plots else None
    to_terminal = args.format == "table" and args.output is None
    if to_terminal:
        _print_report(f"Study {name}", header, shown, evaluations, f"{len(shown)} of {len(frame)} trials, {order}")
    else:
        if args.format == "html":
            from search import report_html

            images = (drawn.written if drawn else []) + _confusion_images(evaluations, study_dir)
            sections = [("Leaderboard", shown), ("Test-set evaluations", evaluations[study_report.EVALUATION_COLUMNS])]
            text = report_html.document(f"Study {name}", header, sections, images)
        else:
            text = study_report.compose(args.format, f"Study {name}", shown, header, evaluations)
        if args.output is None:
            sys.stdout.write(text)
        else:
            try:
                write_text_atomic(args.output, text)
            except OSError as exc:
                raise UsageError(f"--output: cannot write {args.output} ({exc.strerror})") from None
            print(f"Wrote {len(shown)} rows to {args.output}")
    if drawn is not None:  # beside the report on the terminal, out of the way of data sent to stdout
        notes = sys.stdout if to_terminal or args.output is not None else sys.stderr
        for path in drawn.written:
            print(f"Plot: {path}", file=notes)
        for why in drawn.skipped:
            print(f"Plot skipped: {why}", file=notes)
    return 0


def _print_report(title: str, header, shown, evaluations, caption: str) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(Text(title, style="bold"))
    for label, text in header:
        console.print(Text.assemble((f"{label}: ", "bold"), text))
    console.print(leaderboard_table(shown, title=caption))
    if len(evaluations):
        from search.report import EVALUATION_COLUMNS

        console.print(leaderboard_table(evaluations[EVALUATION_COLUMNS], title="Test-set evaluations"))


def _confusion_images(evaluations, study_dir: Path) -> list[Path]:
    """The evaluations' confusion-matrix PNGs that exist (paths relative to the study folder or
    to its evaluations folder)."""
    found = []
    for relative in evaluations["confusion_png"].dropna():
        for base in (study_dir, study_dir / "evaluations"):
            if (base / str(relative)).is_file():
                found.append(base / str(relative))
                break
    return found


# -- studies -----------------------------------------------------------------------------------
def studies(args: argparse.Namespace) -> int:
    """Every study of a results folder (or of an Optuna storage URL), one row each, the most
    recently active first."""
    rows = _studies_in_storage(args) if args.storage else _studies_in_folder(args.results)
    if not rows:
        where = mask_url(args.storage) if args.storage else f"{args.results}/"
        print(f"No studies in {where}; start one with `leafsearch run spaces/cnn.py`" + ("" if args.storage else " or pass --results DIR"))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} {'study' if len(rows) == 1 else 'studies'} in {mask_url(args.storage) if args.storage else args.results}")
    columns = list(rows[0])
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in sorted(rows, key=lambda r: r["last activity"], reverse=True):
        table.add_row(*(str(row[column]) for column in columns))
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def _studies_in_folder(results: Path) -> list[dict]:
    from search import report as study_report

    rows = []
    for study_dir in sorted(results.iterdir()) if results.is_dir() else []:
        board = study_dir / "leaderboard.csv"
        if study_dir.name.startswith(".") or not (board.is_file() or (study_dir / "study.json").is_file()):
            continue
        meta = read_json(study_dir / "study.json", {}) or {}
        frame = leaderboard.read(board) if board.is_file() else leaderboard.build([], meta.get("metric", "val_accuracy"), [])
        last = max(p.stat().st_mtime for p in (board, study_dir / "study.json") if p.is_file())
        rows.append(study_report.study_summary(study_dir.name, frame, meta, datetime.datetime.fromtimestamp(last)))
    return rows


def _studies_in_storage(args: argparse.Namespace) -> list[dict]:
    import optuna

    from search import report as study_report

    storage = make_storage(args.results, args.storage)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        meta = {"metric": study.user_attrs.get("metric", "value"), "direction": study.direction.name.lower(), "backend": "optuna",
                "algorithm": study.user_attrs.get("settings", {}).get("algorithm", "tpe")}
        frame = leaderboard.build(rows_from_study(study, meta["metric"], meta["algorithm"]), meta["metric"], [])
        times = [t.datetime_complete or t.datetime_start for t in study.get_trials(deepcopy=False)]
        last = max((t for t in times if t is not None), default=summary.datetime_start)
        rows.append(study_report.study_summary(summary.study_name, frame, meta, last))
    return rows


# -- demo-data ---------------------------------------------------------------------------------
def demo_data(args: argparse.Namespace) -> int:
    from leafsearch.data import synthetic

    if args.dir.exists() and any(args.dir.iterdir()):
        raise UsageError(f"{args.dir}: folder exists and is not empty; pass a new folder")
    try:
        counts = synthetic.generate(args.dir, total=args.images, image_size=args.image_size, seed=args.seed, wild=args.wild, workers=2)
    except ValueError as exc:
        raise UsageError(f"demo-data: {exc}") from None
    print(f"Wrote {sum(counts.values())} images of {len(counts)} species to {args.dir}")
    return 0
