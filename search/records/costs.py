"""A trial's cost record: what its model costs to keep and to run, next to what it scores.

The objective measures the model once and writes `trials/<n>/costs.json`; each runner reads it
back into the trial's leaderboard row (the Optuna runner also keeps it in the storage, so a report
from the storage alone has it). The search layer only reads numbers: how they are measured is the
objective's business.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.records.files import read_json, write_json_atomic

FILE = "costs.json"
# params: the model's parameter count; flops: floating-point operations of one image's forward
# pass (blank where the backend cannot count them); infer_ms: measured milliseconds per image.
COLUMNS = ("params", "flops", "infer_ms")
# How the trial trained, kept in the same record and shown after the costs (not a cost a study may
# bound or optimise): cached_epochs, the epochs that trained on cached features of a frozen part.
TRAINING = ("cached_epochs",)


def clean(costs: Mapping[str, Any] | None) -> dict[str, float | int]:
    """The known, finite numbers of a cost record (anything else is dropped)."""
    out: dict[str, float | int] = {}
    for name in COLUMNS + TRAINING:
        value = (costs or {}).get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = value
    return out


def read(trial_dir: Path) -> dict[str, float | int]:
    """The trial's cost record, or {} when it has none (e.g. it failed before its model was built)."""
    return clean(read_json(Path(trial_dir) / FILE, {}))


def write(trial_dir: Path, costs: Mapping[str, Any]) -> None:
    write_json_atomic(Path(trial_dir) / FILE, clean(costs))
