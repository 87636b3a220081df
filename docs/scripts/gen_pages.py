"""Pages written from the code when the site is built (mkdocs-gen-files), so they cannot drift:

- reference/cli.md: every command, argument and help text, from `leafsearch.cli.main.build_parser()`;
- reference/recipe.md: the recipe's parameter names and seed values, from `leafsearch.training.recipe`;
- reference/modules.md: every module of search/, leafsearch/ and spaces/ with its docstring's summary;
- benchmarks.md: bench/README.md as it is, with an index of its entries by the date they were written
  (`git blame`; no dates where git is not available);

and two checks that fail the build: reference/leaderboard.md must name every column the leaderboard
code writes and every trial state; every file and folder architecture.md's layout names must exist.

None of this imports Keras or TensorFlow: the parser and the recipe are plain Python.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

import mkdocs_gen_files
from markdown.extensions.toc import slugify, unique

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# The usage lines wrap at the terminal's width; the storage flags' default reads the environment
# (a password must never reach the site).
os.environ["COLUMNS"] = "100"
os.environ.pop("LEAFSEARCH_STORAGE", None)


def escape(text: str) -> str:
    """Markdown-safe prose, code spans (`...`) left as they are."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("*", r"\*"), ("_", r"\_")):
            parts[i] = parts[i].replace(raw, escaped)
    return "".join(parts)


# --- reference/cli.md ---------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser, help) of every command, depth first, in the order they were declared."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), sub, helps.get(name, "")
                yield from subcommands(sub, path + (name,))


def describe_action(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    if action.option_strings:
        invocation = formatter._format_action_invocation(action)
    else:
        invocation = formatter._metavar_formatter(action, action.dest)(1)[0]
        if action.nargs in ("+", "*"):
            invocation += " ..."
        elif action.nargs == "?":
            invocation = f"[{invocation}]"
    help_text = formatter._expand_help(action) if action.help else ""
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if getattr(action, "nargs", None) == "+" and not action.option_strings:
        notes.append("one or more")
    suffix = f" ({', '.join(notes)})" if notes else ""
    return f"- `{invocation}`{suffix}: {escape(help_text)}"


def cli_page() -> str:
    from leafsearch.cli import main as cli

    parser = cli.build_parser()
    commands = [(path, sub, help_) for path, sub, help_ in subcommands(parser)]
    leaves = [
        (path, sub, help_)
        for path, sub, help_ in commands
        if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
    ]
    out = [
        "# Command line",
        "",
        "<!-- Written by docs/scripts/gen_pages.py from leafsearch.cli.main.build_parser(): "
        "edit the parser, not this page. -->",
        "",
        f"{escape(parser.description or '')} The console script is `{parser.prog}`; "
        f"`{parser.prog} COMMAND --help` prints the same as this page.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for path, _sub, help_ in leaves:
        name = " ".join(path)
        out.append(f"| [`{parser.prog} {name}`](#{slugify(parser.prog + ' ' + name, '-')}) | {escape(help_ or '')} |")
    out += [
        "",
        "## Exit codes",
        "",
        "| code | meaning |",
        "| --- | --- |",
        f"| {cli.EXIT_OK} | success |",
        f"| {cli.EXIT_ABORTED} | the search stopped itself (e.g. 3 failed trials in a row) |",
        f"| {cli.EXIT_USAGE} | bad usage or bad input: one line, no traceback, nothing changed |",
        f"| {cli.EXIT_INTERRUPTED} | interrupted (Ctrl-C); the line printed says how to resume |",
        "",
    ]
    for path, sub, help_ in leaves:
        name = " ".join(path)
        out += [f"## {parser.prog} {name}", ""]
        if sub.description or help_:
            out += [escape(sub.description or help_), ""]
        out += ["```text", sub.format_usage().strip(), "```", ""]
        positionals = [a for a in sub._actions if not a.option_strings and a.help != argparse.SUPPRESS]
        options = [
            a
            for a in sub._actions
            if a.option_strings and a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
        ]
        if positionals:
            out += ["**Arguments**", ""] + [describe_action(sub, a) for a in positionals] + [""]
        if options:
            out += ["**Options**", ""] + [describe_action(sub, a) for a in options] + [""]
    return "\n".join(out)


# --- reference/recipe.md ------------------------------------------------------------------------


def recipe_page() -> str:
    from leafsearch.training import recipe

    choices = {**getattr(recipe, "_CHOICES", {}), **({"aug_flip": recipe.FLIPS} if hasattr(recipe, "FLIPS") else {})}
    out = [
        "# Recipe parameters",
        "",
        "<!-- Written by docs/scripts/gen_pages.py from leafsearch/training/recipe.py: "
        "edit the recipe, not this page. -->",
        "",
        escape(" ".join((recipe.__doc__ or "").split())),
        "",
        "A space file may search or fix any of these names; `--set NAME=VALUE` pins one that the space searches "
        "to one of its values. Which of them only suit leaves, and how to turn them off: "
        "[Your own data](../guides/your-own-data.md).",
        "",
        "| name | seed value | " + " | ".join(f"`{p}` pipeline" for p in recipe.PIPELINE_DEFAULTS) + " | values |",
        "| --- | --- | " + " | ".join("---" for _ in recipe.PIPELINE_DEFAULTS) + " | --- |",
    ]
    for name, value in recipe.DEFAULTS.items():
        per_pipeline = [
            f"`{overrides[name]!r}`" if name in overrides else "" for overrides in recipe.PIPELINE_DEFAULTS.values()
        ]
        allowed = ", ".join(f"`{v}`" for v in choices.get(name, ()))
        out.append(f"| `{name}` | `{value!r}` | " + " | ".join(per_pipeline) + f" | {allowed} |")
    presets = getattr(recipe, "AUGMENT_PRESETS", {})
    if presets:
        knobs = list(recipe.AUGMENT_KNOBS)
        out += [
            "",
            "`augment` levels: each sets the six knobs below at once (`custom`, the default, reads the knobs "
            "themselves); a space names either `augment` or those knobs.",
            "",
            "| `augment` | " + " | ".join(f"`{k}`" for k in knobs) + " |",
            "| --- | " + " | ".join("---" for _ in knobs) + " |",
        ]
        out += [
            f"| `{level}` | " + " | ".join(f"`{values[k]!r}`" for k in knobs) + " |"
            for level, values in presets.items()
        ]
    out += [
        "",
        f"Pipelines (`STUDY.pipeline`): {', '.join(f'`{p}`' for p in recipe.PIPELINES)}. "
        f"Metrics (`STUDY.metric`): {', '.join(f'`{m}`' for m in recipe.METRICS)}.",
        "",
    ]
    return "\n".join(out)


# --- reference/modules.md -----------------------------------------------------------------------


def summary(path: Path) -> str:
    """The first paragraph of a module's docstring (read, not imported)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split())


def modules_page() -> str:
    out = [
        "# Module index",
        "",
        "<!-- Written by docs/scripts/gen_pages.py from the modules' docstrings: "
        "edit the docstrings, not this page. -->",
        "",
        "Every module, with the first paragraph of its docstring; how they fit together: "
        "[Architecture](../architecture.md).",
    ]
    for package in ("search", "leafsearch", "spaces"):
        out += ["", f"## {package}/", "", "| module | what it is |", "| --- | --- |"]
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = path.relative_to(ROOT).as_posix()
            out.append(f"| `{name}` | {escape(summary(path)).replace('|', '&#124;')} |")
    return "\n".join(out) + "\n"


# --- benchmarks.md ------------------------------------------------------------------------------


def blame_dates(path: Path) -> dict[int, str]:
    """Line number (1-based) -> the date its line was last written, from git blame; {} without git."""
    try:
        text = subprocess.run(
            ["git", "blame", "--line-porcelain", "--", str(path.relative_to(ROOT))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    dates, line, stamp, uncommitted = {}, 0, None, False
    for row in text.splitlines():
        header = re.match(r"^([0-9a-f]{40}) \d+ (\d+)", row)
        if header:
            line, uncommitted = int(header.group(2)), set(header.group(1)) == {"0"}
        elif row.startswith("author-time "):
            stamp = int(row.split()[1])
        elif row.startswith("\t"):
            dates[line] = (
                "not committed yet"
                if uncommitted
                else datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d")
            )
    return dates


def benchmarks_page() -> str:
    source = ROOT / "bench" / "README.md"
    lines = source.read_text(encoding="utf-8").splitlines()
    dates = blame_dates(source)
    # The headings as the toc extension will slug them (duplicates get _1, _2, ...), skipping code.
    seen: set[str] = set()
    entries, fenced = [], False
    for number, text in enumerate(lines, start=1):
        if text.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", text)
        if fenced or not heading:
            continue
        title = heading.group(2)
        slug = unique(slugify(re.sub(r"`", "", title), "-"), seen)
        if len(heading.group(1)) >= 3:
            commit = re.search(r"\((?:at )?([0-9a-f]{7,40})\)", title)
            entries.append((dates.get(number, ""), number, title, slug, commit.group(1) if commit else ""))
    # GitHub needs `a\|b` for a pipe in a table's code span; Python-Markdown takes `a|b` there and
    # would print the backslash.
    lines = [
        re.sub(r"`[^`]*`", lambda span: span.group(0).replace("\\|", "|"), t) if t.startswith("|") else t for t in lines
    ]
    first_h1 = next((i for i, t in enumerate(lines) if t.startswith("# ")), -1)
    index = [
        "",
        '!!! note "This page is `bench/README.md`"',
        "    Copied when the site is built (edit `bench/README.md`, not this page). Each script prints one JSON "
        "object; its section below gives the figures and what they showed. The entries by the date their "
        "heading was written (`git blame`), newest first:",
        "",
        "| written | entry | measured at |",
        "| --- | --- | --- |",
    ]
    newest_first = sorted(entries, key=lambda e: (e[0] == "not committed yet", e[0], e[1]), reverse=True)
    for date, _, title, slug, commit in newest_first:
        index.append(f"| {date or '?'} | [{escape(title)}](#{slug}) | {f'`{commit}`' if commit else ''} |")
    index.append("")
    return "\n".join(lines[: first_h1 + 1] + index + lines[first_h1 + 1 :]) + "\n"


# --- the leaderboard page's check ---------------------------------------------------------------


def check_leaderboard_page() -> None:
    from search.records.leaderboard import base_columns
    from search.report.summary import STATES

    page = (ROOT / "docs" / "reference" / "leaderboard.md").read_text(encoding="utf-8")
    wanted = [*base_columns("val_accuracy"), "pareto", "param_<name>"] + [s.upper() for s in STATES if s != "all"]
    missing = [name for name in wanted if f"`{name}`" not in page]
    if missing:
        raise SystemExit(
            f"docs/reference/leaderboard.md does not describe {', '.join(missing)}, which the code writes "
            f"(search/records/leaderboard.py, search/report/summary.py)"
        )


def check_architecture_page() -> None:
    """Every file and folder the layout on architecture.md names exists (the layout is hand-written)."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    layout = page.split("## Layout of the code", 1)[1].split("```", 2)[1]
    missing, top = [], ROOT
    for line in layout.splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent > 8:  # a blank line, or the description's continuation
            continue
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0].split()
        base = ROOT if not line.startswith(" ") else top
        for name in names:
            if not (base / name).exists():
                missing.append((base / name).relative_to(ROOT).as_posix())
        if not line.startswith(" "):
            top = ROOT / names[0]
    if missing:
        raise SystemExit(
            f"docs/architecture.md's layout names {', '.join(missing)}, which the repository does not have"
        )


PAGES = {
    "reference/cli.md": cli_page,
    "reference/recipe.md": recipe_page,
    "reference/modules.md": modules_page,
    "benchmarks.md": benchmarks_page,
}
for name, page in PAGES.items():
    with mkdocs_gen_files.open(name, "w") as handle:
        handle.write(page())
check_leaderboard_page()
check_architecture_page()
