"""`leafsearch run` and `leafsearch worker`: the request from the flags, the study from the library."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leafsearch.cli.environment import STORAGE_VARIABLE, WORKER_INDEX
from leafsearch.runtime import import_keras_quietly
from leafsearch.trained.evaluate import check_classes, summary_lines, test_subsets
from leafsearch.training import setup
from leafsearch.training.recipe import fixed_part
from search.errors import SearchAborted, UsageError
from search.execution.executor import TrialProcesses
from search.execution.workers import python_command, without_flags
from search.loop import run_study, run_with_workers
from search.report.display import Display, format_params


def request(args: argparse.Namespace) -> setup.Request:
    return setup.Request(
        space_file=args.space,
        results=args.results,
        data=args.data,
        study=args.study,
        backend=getattr(args, "backend", "optuna"),
        algorithm=getattr(args, "algorithm", None),
        pruner=getattr(args, "pruner", None),
        no_prune=getattr(args, "no_prune", False),
        trials=args.trials,
        max_epochs=args.max_epochs,
        seed=getattr(args, "seed", 0),
        timeout_s=getattr(args, "timeout", None),
        storage=args.storage,
        in_process=args.in_process,
        precision=args.precision,
        feature_cache=getattr(args, "feature_cache", True),
        worker_index=int(os.environ.get(WORKER_INDEX, "0")),
        pins=args.pins,
        warm_start=getattr(args, "warm_start", None),
        overrides={
            "image_size": args.image_size,
            "backbone": args.backbone,
            "weights": args.weights,
            "backgrounds": None if args.backgrounds is None else str(Path(args.backgrounds).expanduser().resolve()),
        },
    )


def run(args: argparse.Namespace) -> int:
    asked = request(args)
    space, spec = setup.load_space(asked.space_file, asked.pins, asked.overrides, args.objectives, args.constraints)
    return _search(args, asked, space, spec)


def worker(args: argparse.Namespace) -> int:
    """Join an existing Optuna study (from this machine or another)."""
    space, spec, asked = setup.joined(request(args))
    return _search(args, asked, space, spec, workers=1)


def _search(args: argparse.Namespace, asked: setup.Request, space, spec, workers: int | None = None) -> int:
    index = os.environ.get(WORKER_INDEX)
    test = getattr(args, "test", None) if index is None else None  # the chief scores, not the workers it starts
    parts = test_folder(test) if test is not None else None  # a bad folder is reported before anything starts
    prepared = setup.prepare(asked, space, spec, note=print)
    # How long a storage outage (the database, the KerasTuner chief) is waited out mid-study.
    prepared.options = dataclasses.replace(prepared.options, storage_patience_s=args.storage_patience)
    if parts is not None:
        check_classes(parts, test, prepared.class_names, flag="--test")  # before the study is touched
    display = Display(spec.metric, prefix=f"worker {index} | " if index else "")
    if index is None:
        display.note(
            f"Data: {prepared.images} images in {len(prepared.class_names)} classes; device: {prepared.device}, "
            f"precision {prepared.precision}"
        )
        # Once per study, what no trial line shows: the defaults (the leaves' flips, rotation, zoom) too.
        fixed = fixed_part(space, spec.pipeline, prepared.options.settings["max_epochs"])
        display.note(f"Fixed recipe (every trial; the space searches the rest): {format_params(fixed)}")
    workers = args.workers if workers is None else workers
    if workers > 1:

        def env(worker_index: int) -> dict[str, str]:
            added = {WORKER_INDEX: str(worker_index)}
            if asked.storage is not None:
                added[STORAGE_VARIABLE] = asked.storage  # not on the command line, where `ps` would show a password
            if prepared.gpus:
                added["CUDA_VISIBLE_DEVICES"] = str(worker_index % prepared.gpus)  # one GPU each
            return added

        if prepared.gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = "0"  # this process's trials run on the first GPU
        command = python_command("leafsearch", without_flags(args.argv, ("--workers", "--storage")))
        best, failed = run_with_workers(
            space, spec, prepared.objective, prepared.options, display, command, workers, env
        )
        if failed:
            print(
                f"{len(failed)} of the other workers exited with codes {sorted(set(failed))}; "
                f"their trials were continued by the others",
                file=sys.stderr,
            )
    else:
        best = run_study(space, spec, prepared.objective, prepared.options, display)
    if index is None:
        print_outcome(best, spec.metric, prepared.options)
        if parts is not None and best is not None:
            print("\n".join(score_on_test(asked, prepared, test, parts)))
    return 0


def test_folder(path: Path) -> Mapping[str, Any]:
    """`--test DIR`, read before anything starts: its class folders, or its subsets'."""
    try:
        return test_subsets(path)
    except UsageError as exc:
        raise UsageError(f"--test: {exc}") from None


def score_on_test(request: setup.Request, prepared: setup.Prepared, test: Path, parts: Mapping[str, Any]) -> list[str]:
    """`run --test DIR`: the best trial scored on the test folder once the study ends, as
    `leafsearch evaluate` does and stores it, in a one-shot child of the trial processes' fork
    server (Keras is loaded there already, where a separate `evaluate` pays ~6 s to import it),
    or in this process with --in-process."""
    where = (request.results, prepared.options.study_name, None, test, parts)
    if request.in_process:
        import_keras_quietly()
        return summary_lines(*where)
    try:
        return TrialProcesses.call(summary_lines, *where).result()
    except RuntimeError as exc:  # the child's error, in one line
        raise SearchAborted(
            f"--test {test}: {exc}; the study itself is done: score it with `leafsearch evaluate "
            f"--study {prepared.options.study_name} --data {test}`"
        ) from None


def print_outcome(best: dict | None, metric: str, options) -> None:
    if best is None:
        print("No trial has completed yet.")
        return
    params = " ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"Best: trial {best['trial']} {metric}={best['value']:.4f} {params}")
    print(f"Leaderboard: {options.study_dir / 'leaderboard.csv'}  (leafsearch report --study {options.study_name})")
