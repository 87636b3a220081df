"""What a running study prints: one line per event, readable in a terminal and in a log file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def duration_text(seconds: float) -> str:
    """'45.0s', '2m 10s', '1h 05m'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in params.items())


class Display:
    """Progress lines: trial number, epoch, metric, and the best value so far."""

    def __init__(self, metric: str, console: Console | None = None, prefix: str = ""):
        self.metric = metric
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.prefix = prefix  # e.g. "worker 2 | ", when several workers share a terminal
        self.best: tuple[float, int] | None = None  # (value, trial)
        self.budget: tuple[int, int, float, int] | None = None  # (finished, target, compute seconds, timed trials)

    def _print(self, text: str) -> None:
        self.console.print(self.prefix + text, markup=True)

    def note(self, text: str) -> None:
        self.console.print(self.prefix + text, markup=False)

    def study_started(self, name: str, finished: int, target: int, engine: str, storage: str) -> None:
        todo = max(target - finished, 0)
        what = f"running {todo} more" if todo else "nothing left to run"
        spent = f"; {self._budget_text(self.budget, todo)}" if finished and self.budget is not None else ""
        self._print(
            f"[bold]Study {name}[/]: {finished} of {target} trials finished, {what} ({engine}; storage {storage}){spent}"
        )

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        self._print(f"[bold cyan]Trial {number}[/] {format_params(params)}")

    def epoch_finished(self, number: int, epoch: int, row: Mapping[str, float]) -> None:
        metrics = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch")
        self._print(f"  trial {number} epoch {epoch + 1}: {metrics}{self._best_text()}")

    def trial_finished(self, number: int, state: str, value: float | None, duration_s: float, error: str = "") -> None:
        shown = f"{self.metric}={value:.4f}" if value is not None else error
        colour = {"COMPLETE": "green", "PRUNED": "yellow"}.get(state, "red")
        progress = ""
        if self.budget is not None:
            finished, target = self.budget[:2]
            progress = f" | {finished}/{target} trials, {self._budget_text(self.budget, max(target - finished, 0))}"
        self._print(f"[{colour}]Trial {number} {state}[/] {shown} in {duration_s:.1f}s{self._best_text()}{progress}")

    def set_best(self, value: float, trial: int) -> None:
        self.best = (value, trial)

    def set_budget(self, finished: int, target: int, compute_s: float, timed: int) -> None:
        """Where the study's budget went: its finished trials and the compute time of all its
        trials so far, across resumed runs (`timed` of them have a duration)."""
        self.budget = (finished, target, compute_s, timed)

    @staticmethod
    def _budget_text(budget: tuple[int, int, float, int], todo: int) -> str:
        """'2m 10s of compute so far, about 5m 00s to the target' (the mean trial so far, times the
        trials left; `budget` as `set_budget` keeps it)."""
        _, _, compute_s, timed = budget
        text = f"{duration_text(compute_s)} of compute so far"
        if todo and timed:
            text += f", about {duration_text(compute_s / timed * todo)} to the target"
        return text

    def _best_text(self) -> str:
        if self.best is None:
            return ""
        return f" | best {self.metric}={self.best[0]:.4f} (trial {self.best[1]})"


def leaderboard_table(frame: pd.DataFrame, title: str | None = None) -> Table:
    """A compact rich table: columns that are blank or equal in every row go to the caption."""
    shown, constant = [], {}
    for column in frame.columns:
        values = frame[column].dropna()
        if column in ("trial", "state") or (len(frame) > 1 and frame[column].astype(str).nunique(dropna=False) > 1):
            shown.append(column)
        elif len(values) and str(values.iloc[0]) != "":
            if len(frame) > 1:
                constant[column] = values.iloc[0]
            else:
                shown.append(column)
    # Cells are text, not rich markup: a value like "[bold]x" must show as typed.
    caption = " ".join(escape(f"{k.removeprefix('param_')}={format_value(v)}") for k, v in constant.items())
    table = Table(title=title, caption=f"same in every row: {caption}" if caption else None, caption_justify="left")
    for column in shown:
        table.add_column(escape(column.removeprefix("param_")), no_wrap=column != "error", overflow="fold")
    for row in frame[shown].itertuples(index=False):
        table.add_row(*("" if pd.isna(value) else escape(format_value(value)) for value in row))
    return table
