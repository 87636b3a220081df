"""The `leafsearch` command line: the arguments, and one handler per command (run.py, report.py,
trained.py); library errors become one-line messages here and nowhere below.

Exit codes: 0 success, 1 the search stopped itself (e.g. failures in a row), 2 bad usage or bad
input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from leafsearch.cli.environment import STORAGE_VARIABLE
from leafsearch.runtime import PRECISIONS
from leafsearch.training.recipe import BACKBONES as BACKBONE_NAMES
from search.engines.choices import BACKENDS, PRUNERS
from search.errors import SearchAborted, UsageError
from search.report.formats import FORMATS
from search.report.summary import STATES

EXIT_OK, EXIT_ABORTED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
RESUME_HINTS = {
    "run": "run the same command again to resume (finished trials are kept)",
    "worker": "run the same command again to rejoin the study (finished trials are kept)",
    "demo-data": "the output folder is incomplete; delete it and run again",
}
ALL_PRUNERS = tuple(dict.fromkeys(p for names in PRUNERS.values() for p in names))
STORAGE_PATIENCE = "10m"
STORAGE_PATIENCE_HELP = (
    "how long to wait out an outage of the storage mid-study (the --storage database restarting or unreachable, "
    "the KerasTuner chief gone): e.g. 30s, 10m or 1h; training trials go on meanwhile. When it runs out, the run "
    "stops with exit code 1 and the same command resumes it (default: 10m)"
)
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds in '2h', '90m', '1h30m', '45s' or plain '3600'."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; use e.g. 2h, 90m, 1h30m or 3600")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r} (e.g. --set batch_size=16)")
    return name.strip(), value.strip()


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


RESULTS_HELP = "results root folder (default: results)"


def _results(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"), help=RESULTS_HELP)


def _storage(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str) -> None:
    """`--storage URL`, defaulting to the environment variable that keeps a password off the command line."""
    parser.add_argument("--storage", default=os.environ.get(STORAGE_VARIABLE), help=help_text)


def _storage_patience(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-patience",
        type=parse_duration,
        default=STORAGE_PATIENCE,
        metavar="DURATION",
        help=STORAGE_PATIENCE_HELP,
    )


def _study_and_trial(parser: argparse.ArgumentParser) -> None:
    """`--study NAME [--trial N]`: which trial's best checkpoint `evaluate` and `export` read."""
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--trial", type=non_negative_int, help="trial number (default: the best complete trial)")


def _add_run(commands) -> None:
    """`run SPACE`: the study of a space file, created or resumed."""
    run = commands.add_parser(
        "run",
        help="run (or resume) a study of a space file",
        description="Run a study; running the same command again resumes it. Without --data, the built-in synthetic leaf dataset is used.",
    )
    run.add_argument("space", help="space file, e.g. spaces/cnn.py")
    run.add_argument(
        "--data", type=Path, help="image folder with one sub-folder per class (default: built-in synthetic leaves)"
    )
    run.add_argument("--backend", default="optuna", choices=BACKENDS, help="search engine (default: optuna)")
    run.add_argument(
        "--algorithm",
        help="optuna: tpe (default), random or nsga2 (NSGA-II, for several objectives); kerastuner: random (default), bayesian or hyperband",
    )
    run.add_argument(
        "--trials",
        type=positive_int,
        help="target number of finished trials in the study, in total (default: the space file's STUDY.trials)",
    )
    run.add_argument(
        "--max-epochs", type=positive_int, help="cap on the epochs of every training phase (default: STUDY.max_epochs)"
    )
    run.add_argument("--image-size", type=positive_int, help="override the image size (pixels, square)")
    run.add_argument("--backbone", help="override the backbone, e.g. efficientnet_b0 (efficientnet pipeline)")
    run.add_argument("--weights", help="override the backbone weights: imagenet, none, or a path to a .weights.h5 file")
    run.add_argument(
        "--backgrounds",
        help="a folder of background photos (no leaves) for aug_background (default: procedural backgrounds)",
    )
    run.add_argument(
        "--set",
        dest="pins",
        action="append",
        type=name_value,
        default=[],
        metavar="NAME=VALUE",
        help="pin one parameter of the space to a value, e.g. --set batch_size=16 (repeatable)",
    )
    run.add_argument(
        "--objective",
        dest="objectives",
        action="append",
        default=[],
        metavar="COST[:DIRECTION]",
        help="optimise this cost column (params, flops, infer_ms) beside the metric, e.g. --objective infer_ms "
        "(direction minimize by default; repeatable; replaces STUDY.objectives): a multi-objective study, "
        "optuna backend",
    )
    run.add_argument(
        "--constraint",
        dest="constraints",
        action="append",
        default=[],
        metavar="COST<=BOUND",
        help="an upper bound on a cost column, e.g. --constraint 'infer_ms<=10' or 'params<=5e6' (repeatable; "
        "adds to STUDY.constraints): a trial whose model breaks it ends before its first epoch",
    )
    run.add_argument("--study", help="study name (default: the space file's name, e.g. cnn)")
    run.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="begin a new study with the best complete trials of an earlier study in --results (or --storage): "
        "its best min(5, --trials // 4) trials, at least 1, projected onto this space (a value outside it "
        "takes this space's default; one note lists what was dropped), run before the baseline; "
        "only when the study is created, never on resume",
    )
    run.add_argument(
        "--test",
        type=Path,
        metavar="DIR",
        help="when the study ends, score its best trial on this test folder (one sub-folder per class, or "
        "subsets of them), as `leafsearch evaluate --data DIR` does, without a second process loading Keras",
    )
    _results(run)
    _storage(
        run,
        f"Optuna storage URL, e.g. postgresql://user@host/db, or set {STORAGE_VARIABLE} to keep a password "
        f"off the command line (default: a journal file in the study folder)",
    )
    run.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the sampler, the split and the trials (default: 0)"
    )
    run.add_argument(
        "--timeout",
        type=parse_duration,
        help="stop starting new trials after this long, e.g. 2h or 90m; run again to continue",
    )
    _storage_patience(run)
    run.add_argument(
        "--pruner",
        choices=ALL_PRUNERS,
        help="how unpromising trials stop early (optuna backend): asha (default: asynchronous successive halving, "
        "after 2, 4, 10... epochs only the best third go on), curve (extrapolates each trial's learning curve "
        "and stops it when it cannot reach the best so far), median (Optuna's median rule), hyperband, or none; "
        "kerastuner backend: curve (its default), median or none",
    )
    run.add_argument("--no-prune", action="store_true", help="never stop a trial early (the same as --pruner none)")
    run.add_argument(
        "--in-process",
        action="store_true",
        help="train every trial in this process (for debugging; default: a fresh child process per trial)",
    )
    run.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes sharing the study on this machine, one GPU each when there are GPUs (default: 1)",
    )
    run.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="dtype policy (default: auto = mixed_float16 on a GPU, float32 on the CPU)",
    )
    _feature_cache(run)


def _feature_cache(parser) -> None:
    parser.add_argument(
        "--feature-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="EfficientNet trials train on the frozen backbone's features, computed once (feature_views augmented "
        "views per image) and shared by the trials (default: on; --no-feature-cache trains every epoch on images; "
        "see the EfficientNet guide)",
    )


def _add_worker(commands) -> None:
    """`worker`: one more process on an existing Optuna study."""
    worker = commands.add_parser(
        "worker",
        help="join a running study (from this machine or another) as one more worker",
        description="Join an existing Optuna study through its storage: the space and settings come from the storage "
        "unless SPACE is given. Run as many as you like, on as many machines; the study's target holds.",
    )
    worker.add_argument("space", nargs="?", help="space file (default: the study's space, read from the storage)")
    worker.add_argument("--study", required=True, help="the study's name")
    _storage(
        worker,
        f"the study's storage URL, e.g. postgresql://user@host/db, or {STORAGE_VARIABLE} (default: the journal file in --results)",
    )
    _results(worker)
    _storage_patience(worker)
    worker.add_argument(
        "--data", type=Path, help="this machine's copy of the study's data (default: built-in synthetic leaves)"
    )
    worker.add_argument("--trials", type=positive_int, help="target number of finished trials (default: the study's)")
    worker.add_argument("--max-epochs", type=positive_int, help=argparse.SUPPRESS)
    worker.add_argument("--precision", default="auto", choices=PRECISIONS, help="dtype policy (default: auto)")
    worker.add_argument("--in-process", action="store_true", help="train every trial in this process (debugging)")
    _feature_cache(worker)
    worker.set_defaults(pins=[], image_size=None, backbone=None, weights=None, backgrounds=None)


def _add_report(commands) -> None:
    """`report`: a study's header and leaderboard."""
    report = commands.add_parser("report", help="print a study's leaderboard, best first")
    report.add_argument("--study", help="study name (default: the most recently updated study in --results)")
    _results(report)
    _storage(
        report,
        f"read the trials from this Optuna storage URL (or {STORAGE_VARIABLE}) instead of the leaderboard file",
    )
    report.add_argument("--top", type=positive_int, help="show only the K first trials (the K best by default)")
    report.add_argument(
        "--sort",
        metavar="COL[:asc|desc]",
        help="order by this column, e.g. duration_s or learning_rate:desc (default: best first; the metric "
        "follows the study's direction, accuracies go high first, other columns low first)",
    )
    report.add_argument("--state", default="all", choices=STATES, help="show only trials in this state (default: all)")
    report.add_argument(
        "--format",
        default="table",
        choices=list(FORMATS),
        help="output format (default: table); csv and json are the rows alone, the others start with the study's header",
    )
    report.add_argument("--output", type=Path, help="write to this file instead of the terminal")
    report.add_argument(
        "--pareto",
        action="store_true",
        help="only the Pareto front of the study's objectives (of the metric and infer_ms for a "
        "single-objective study), sorted by the metric",
    )
    report.add_argument(
        "--plots",
        action="store_true",
        help="also write PNG plots into results/<study>/plots/ (history, importance, parallel coordinates, "
        "slices, learning curves); --format html embeds them",
    )


def _add_studies(commands) -> None:
    """`studies`: every study of a results folder or a storage."""
    studies = commands.add_parser(
        "studies", help="list every study with its trial counts, best value and last activity"
    )
    where = studies.add_mutually_exclusive_group()
    _results(where)
    _storage(
        where,
        f"list the studies of this Optuna storage URL (or {STORAGE_VARIABLE}) instead",
    )


def _add_evaluate(commands) -> None:
    """`evaluate`: a trial's best checkpoint scored on a test folder."""
    evaluate = commands.add_parser(
        "evaluate",
        help="score a trial's best checkpoint on a test folder (accuracy, per class, confusion matrix)",
        description="Mean accuracy, per-class accuracy and a confusion-matrix PNG of a trial's best checkpoint on a test "
        "folder with the study's class sub-folders; stored in results/<study>/evaluations/.",
    )
    _study_and_trial(evaluate)
    evaluate.add_argument("--data", type=Path, required=True, help="test image folder, one sub-folder per class")
    _results(evaluate)


def _add_export(commands) -> None:
    """`export`: a trial's model as a .keras file."""
    export = commands.add_parser(
        "export",
        help="save a trial's model (best checkpoint) as a .keras file",
        description="Save a trial's model with its best weights as a .keras file for inference, "
        "its class names in a .labels.json file beside it.",
    )
    _study_and_trial(export)
    export.add_argument("--output", type=Path, required=True, help="model file to write, e.g. model.keras")
    _results(export)


def _add_predict(commands) -> None:
    """`predict`: classes of images with an exported model."""
    predict = commands.add_parser("predict", help="class and probability of images with an exported model")
    predict.add_argument("model", type=Path, help="a .keras file written by leafsearch export")
    predict.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE|DIR", help="image files, or folders searched for images"
    )
    predict.add_argument(
        "--output", type=Path, help="write the predictions as CSV (path, class, probability) to this file"
    )


def _add_weights(commands) -> None:
    """`weights convert`: foreign backbone weights to a .weights.h5 file."""
    weights = commands.add_parser(
        "weights",
        help="backbone weights: convert Google's original EfficientNet checkpoints",
        description="Backbone weights for --weights FILE.",
    )
    actions = weights.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=OneLineParser)
    convert = actions.add_parser(
        "convert",
        help="an original EfficientNet or EfficientNet-Lite checkpoint (Noisy-Student, AdvProp, AutoAugment, "
        "Lite0-4), or a Lite .pth state dict, to a .weights.h5 file",
        description="Read a checkpoint of the original EfficientNet code (variables efficientnet-bN/... or "
        "efficientnet-liteN/...; its ExponentialMovingAverage copies when present), or an EfficientNet-Lite "
        "PyTorch state dict (.pth, read without torch and without running it), and write the backbone weights "
        "that `leafsearch run --weights FILE` loads, with the input normalisation the checkpoint was trained with.",
    )
    convert.add_argument(
        "checkpoint",
        type=Path,
        help="the unpacked checkpoint's folder (or its prefix, e.g. DIR/model.ckpt), or a .pth file",
    )
    convert.add_argument(
        "--backbone", required=True, choices=[b for b in BACKBONE_NAMES if b != "cnn"], help="the checkpoint's variant"
    )
    convert.add_argument(
        "--output",
        type=Path,
        required=True,
        help="the weights file to write, e.g. efficientnet_b4_noisy_student.weights.h5",
    )
    convert.add_argument(
        "--normalization",
        default="imagenet",
        choices=["imagenet", "advprop"],
        help="the inputs the checkpoint was trained on: imagenet mean/std (default; Noisy-Student, "
        "AutoAugment) or advprop (x*2/255 - 1)",
    )


def _add_demo_data(commands) -> None:
    """`demo-data`: the synthetic leaves as an image folder."""
    demo = commands.add_parser("demo-data", help="write the synthetic leaf dataset as an image folder")
    demo.add_argument("dir", type=Path, help="output folder (one sub-folder per species)")
    demo.add_argument("--images", type=positive_int, default=560, help="total number of images (default: 560)")
    demo.add_argument(
        "--image-size", type=positive_int, default=256, help="image side in pixels (default: 256, as the real data)"
    )
    demo.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--wild", action="store_true", help="cluttered, coloured backgrounds (the real test set's hardest subset)"
    )
    demo.add_argument(
        "--subsets",
        action="store_true",
        help="a test folder in subsets, as the seed's: DIR/clean and DIR/wild, each with the class folders "
        "and --images images (`leafsearch evaluate` scores each)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="leafsearch",
        description="Declarative hyperparameter search for leaf image classification with Keras.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    _add_run(commands)
    _add_worker(commands)
    _add_report(commands)
    _add_studies(commands)
    _add_evaluate(commands)
    _add_export(commands)
    _add_predict(commands)
    _add_weights(commands)
    _add_demo_data(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from leafsearch.cli import report, run, trained  # heavy imports only after the arguments are known to be valid
    from search.execution import lifeline

    lifeline.watch_from_environment()  # a worker started by `--workers N` stops when its parent dies

    handler = {
        "run": run.run,
        "worker": run.worker,
        "report": report.report,
        "studies": report.studies,
        "demo-data": trained.demo_data,
        "weights": trained.weights,
        "evaluate": trained.evaluate,
        "export": trained.export,
        "predict": trained.predict,
    }[args.command]
    try:
        return handler(args)
    except UsageError as exc:
        print(f"leafsearch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C exits at once
        hint = RESUME_HINTS.get(args.command)
        print(f"leafsearch {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except SearchAborted as exc:
        print(f"leafsearch {args.command}: stopped: {exc}", file=sys.stderr)
        return EXIT_ABORTED
    except BrokenPipeError:
        # The reader went away (`leafsearch report | head`): stop quietly, as `cat` would. Python
        # would report the pipe again when it flushes stdout at exit, so point stdout at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def entry_point() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
