"""Loading a space file: run it, take SPACE and STUDY, validate, and say what is wrong in one line."""

from __future__ import annotations

from pathlib import Path

from search.errors import UsageError
from search.space import Space
from search.study import Study


def load_space_file(
    path: str | Path,
    known_names: set[str] | None = None,
    pipelines: set[str] | None = None,
    metrics: set[str] | None = None,
) -> tuple[Space, Study]:
    """Execute the file and return its validated (SPACE, STUDY).

    Every failure is a UsageError naming the file (and line or parameter): the file is user
    input, so a traceback would only hide the message.
    """
    path = Path(path)
    if not path.is_file():
        hint = "" if path.suffix == ".py" else " (a space file is a .py file such as spaces/cnn.py)"
        raise UsageError(f"space file not found: {path}{hint}")
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise UsageError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the space file: {exc}") from None
    namespace: dict = {"__name__": "__leafsearch_space__", "__file__": str(path)}
    try:
        exec(code, namespace)  # noqa: S102 - a space file is the user's own code, like a config.py
    except Exception as exc:  # noqa: BLE001 - any error in user code becomes one line
        raise UsageError(f"{path}:{_line_of(exc, path)}: {type(exc).__name__}: {exc}") from None

    space = namespace.get("SPACE")
    study = namespace.get("STUDY")
    if not isinstance(space, Space):
        found = "defines no SPACE" if space is None else f"SPACE is a {type(space).__name__}, not a search.Space"
        raise UsageError(
            f"{path}: {found}; add `SPACE = Space(name=Float(...), ...)` built with `from search import ...`"
        )
    if not isinstance(study, Study):
        found = "defines no STUDY" if study is None else f"STUDY is a {type(study).__name__}, not a search.Study"
        raise UsageError(f"{path}: {found}; add `STUDY = Study(pipeline='cnn', metric='val_accuracy', trials=20)`")
    problems = space.problems(known_names) + study.problems(pipelines, metrics)
    if problems:
        raise UsageError(f"{path}: invalid space: " + "; ".join(problems))
    return space, study


def _line_of(exc: BaseException, path: Path) -> str:
    """The line of the space file where `exc` was raised (the deepest frame in that file)."""
    line = "?"
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line
