"""The leaderboard as text: the formats `leafsearch report` writes (the header is summary.py's)."""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

FORMATS = ("table", "csv", "markdown", "json", "html")


def render(frame: pd.DataFrame, fmt: str) -> str:
    """The leaderboard as text in one of FORMATS ("table" is plain fixed-width text, "html" a
    self-contained page; `leafsearch report` adds the study's header to both)."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return json.dumps([_jsonable(row) for row in frame.to_dict(orient="records")], indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(frame)
    if fmt == "table":
        buffer = io.StringIO()
        buffer.write(frame.to_string(index=False, na_rep="", float_format=_short_float))
        return buffer.getvalue() + "\n"
    if fmt == "html":
        from search.report import html as report_html

        return report_html.document("Leaderboard", [], [("Leaderboard", frame)])
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif hasattr(value, "item"):  # numpy scalar
            value = value.item()
        out[key] = value
    return out


def _short_float(value: float) -> str:
    return f"{value:.4g}"


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = _short_float(value) if isinstance(value, float) else str(value)
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")  # a value is never markup


def _markdown(frame: pd.DataFrame) -> str:
    lines = [
        "| " + " | ".join(frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines) + "\n"
