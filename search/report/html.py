"""The report as one self-contained HTML file: header, leaderboard, evaluations and plots, with
the plots embedded as data: URIs and no external CSS or JavaScript, so it can be mailed or
archived alone. Every value written into it goes through html.escape: parameter values and error
messages are user data."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

import pandas as pd

from search.report.display import format_value

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
tr.COMPLETE td:nth-child(2) { color: #176317; } tr.PRUNED td:nth-child(2) { color: #8a6d00; }
tr.FAIL td:nth-child(2) { color: #a31515; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 100%; }
"""


def document(
    title: str,
    header: Sequence[tuple[str, str]],
    sections: Iterable[tuple[str, pd.DataFrame]],
    images: Iterable[Path] = (),
) -> str:
    """The whole page: `header` as a definition list, each (heading, frame) section as a table
    (skipped when empty), then every PNG of `images` inline."""
    body = [f"<h1>{escape(title)}</h1>"]
    if header:
        body.append(
            "<dl>" + "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in header) + "</dl>"
        )
    for heading, frame in sections:
        if len(frame):
            body += [f"<h2>{escape(heading)}</h2>", table(frame)]
    figures = [figure(path) for path in images if Path(path).is_file()]
    if figures:
        body += ["<h2>Plots</h2>", *figures]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def table(frame: pd.DataFrame) -> str:
    """A frame as an HTML table; a row's `state` (when it has one) is its CSS class."""
    head = "".join(f"<th>{escape(str(column).removeprefix('param_'))}</th>" for column in frame.columns)
    rows = []
    states = frame["state"] if "state" in frame else pd.Series([""] * len(frame))
    for state, values in zip(states, frame.itertuples(index=False)):
        cells = "".join(f"<td>{escape(cell(value))}</td>" for value in values)
        rows.append(f'<tr class="{escape(str(state))}">{cells}</tr>')
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def cell(value) -> str:
    return "" if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else format_value(value)


def figure(path: Path) -> str:
    """A PNG inline as a data: URI, captioned with its file name."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = escape(Path(path).stem.replace("_", " "))
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'
