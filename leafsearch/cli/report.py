"""`leafsearch report` and `leafsearch studies`: read the study back (search.report.studies) and
print it. Neither loads Keras."""

from __future__ import annotations

import argparse
import sys

from search.errors import UsageError
from search.records import leaderboard
from search.records.files import write_text_atomic
from search.report import studies as stored
from search.report import summary
from search.report.display import leaderboard_table
from search.urls import mask_url


def report(args: argparse.Namespace) -> int:
    frame, meta = stored.load_study_rows(args.results, args.study, args.storage)
    metric, direction, name = meta["metric"], meta["direction"], meta["study"]
    study_dir = args.results / name
    shown = summary.filter_state(frame, args.state)
    if args.pareto:
        shown = stored.pareto_front(shown, meta)
    if args.sort:
        shown, order = summary.sort_by(shown, args.sort, metric, direction), f"sorted by {args.sort}"
    else:
        shown, order = (
            leaderboard.sort_best_first(shown, metric, direction),
            "the Pareto front, best first" if args.pareto else "best first",
        )
    if args.top:
        shown = shown.head(args.top)
    header = summary.header(frame, meta)
    evaluations = summary.load_evaluations(study_dir / "evaluations")
    drawn = stored.write_plots(frame, meta, study_dir) if args.plots else None
    to_terminal = args.format == "table" and args.output is None
    if to_terminal:
        _print_report(f"Study {name}", header, shown, evaluations, f"{len(shown)} of {len(frame)} trials, {order}")
    else:
        if args.format == "html":
            from search.report import html

            images = (drawn.written if drawn else []) + stored.confusion_images(evaluations, study_dir)
            sections = [
                ("Leaderboard", shown),
                ("Pareto front of " + ", ".join(stored.front_objectives(meta)), stored.pareto_front(frame, meta)),
                ("Test-set evaluations", evaluations[summary.EVALUATION_COLUMNS]),
            ]
            text = html.document(f"Study {name}", header, sections, images)
        else:
            text = summary.compose(args.format, f"Study {name}", shown, header, evaluations)
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


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_report(title: str, header, shown, evaluations, caption: str) -> None:
    from rich.text import Text

    console = _console()
    console.print(Text(title, style="bold"))
    for label, text in header:
        console.print(Text.assemble((f"{label}: ", "bold"), text))
    console.print(leaderboard_table(shown, title=caption))
    if len(evaluations):
        console.print(leaderboard_table(evaluations[summary.EVALUATION_COLUMNS], title="Test-set evaluations"))


def studies(args: argparse.Namespace) -> int:
    """Every study of a results folder (or of an Optuna storage URL), the most recently active first."""
    rows = (
        stored.studies_in_storage(args.results, args.storage)
        if args.storage
        else stored.studies_in_folder(args.results)
    )
    where = mask_url(args.storage) if args.storage else f"{args.results}/"
    if not rows:
        print(
            f"No studies in {where}; start one with `leafsearch run spaces/cnn.py`"
            + ("" if args.storage else " or pass --results DIR")
        )
        return 0
    from rich.table import Table

    table = Table(
        title=f"{len(rows)} {'study' if len(rows) == 1 else 'studies'} in {mask_url(args.storage) if args.storage else args.results}"
    )
    for column in rows[0]:
        table.add_column(column, no_wrap=True)
    for row in sorted(rows, key=lambda r: r["last activity"], reverse=True):
        table.add_row(*(str(value) for value in row.values()))
    _console().print(table)
    return 0
