"""The declarative search-space DSL: frozen value objects that know nothing of any engine.

A space is an ordered set of named parameters. Engines sample it through a `suggest(name,
param)` callback (one adapter module per engine), so the conditional logic lives here once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from search.errors import UsageError

_PRIMITIVES = (str, int, float, bool, type(None))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A NumPy scalar (as a leaderboard read by pandas holds it) as the Python value it stands for."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _match(options: tuple[Any, ...], value: Any) -> Any:
    """The option `value` stands for, read back from a CSV (16.0 for 16, "True" for True), or a
    ValueError: numbers match numbers, booleans booleans, text its own spelling."""
    value = _plain(value)
    for option in options:
        if value == option and type(value) is type(option):
            return option
    for option in options:
        if isinstance(option, bool):
            if isinstance(value, str) and value.strip().lower() == str(option).lower():
                return option
        elif _is_number(option):
            if _is_number(value) and float(value) == float(option):
                return option
        elif isinstance(option, str) and not isinstance(value, bool) and str(value) == option:
            return option
    raise ValueError(value)


When = tuple[tuple[str, tuple[Any, ...]], ...]  # a parameter's `when`, as it keeps it: ((parent, values), ...)


def _is_kept_when(when: Any) -> bool:
    return isinstance(when, tuple) and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], tuple) for item in when
    )


def _normalise_when(when: Mapping[str, Any] | When | None) -> When:
    """`when` as a parameter keeps it. It comes as a dict ({parent: value or [values]}), or already
    kept (a parameter rebuilt from another's fields: `dataclasses.replace`, `Space.pin`)."""
    if not when:
        return ()
    if _is_kept_when(when):
        when = dict(when)
    if not isinstance(when, Mapping):
        raise TypeError(f"`when` must be a dict like {{'loss': 'ce_smooth'}}. Received: when={when!r}")
    items = []
    for parent, values in when.items():
        if not isinstance(values, (list, tuple, set, frozenset)):
            values = (values,)
        items.append((parent, tuple(values)))
    return tuple(items)


@dataclasses.dataclass(frozen=True)
class Param:
    """Base of every parameter. `when` = {parent: value or [values]}: active only then."""

    when: When = dataclasses.field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _normalise_when(self.when))

    kind = "param"

    def problems(self) -> list[str]:
        """What is wrong with this parameter's own definition (empty when it is valid)."""
        return []

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value a command-line string stands for (for `--set NAME=VALUE`)."""
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        """`value` (another study's, as its leaderboard holds it) as a value of this parameter, or a
        ValueError when it is not one (outside the range, off the step, not a member)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "when":
                value = {parent: list(values) for parent, values in value}
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        return data


@dataclasses.dataclass(frozen=True)
class Float(Param):
    """A real number in [low, high]; `log=True` samples its logarithm uniformly."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    default: float | None = None
    kind = "float"

    def problems(self) -> list[str]:
        if not (_is_number(self.low) and _is_number(self.high)):
            return [f"low and high must be numbers. Received: low={self.low!r}, high={self.high!r}"]
        out = []
        if self.low >= self.high:
            out.append(f"low must be < high. Received: low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            out.append(f"log=True needs low > 0. Received: low={self.low}")
        if self.log and self.step is not None:
            out.append("step cannot be combined with log=True")
        if self.step is not None and (not _is_number(self.step) or self.step <= 0):
            out.append(f"step must be > 0. Received: step={self.step!r}")
        if self.default is not None and not self.contains(self.default):
            out.append(f"default {self.default!r} is outside [{self.low}, {self.high}]")
        return out

    def contains(self, value: Any) -> bool:
        if not (_is_number(value) and math.isfinite(value) and self.low <= value <= self.high):
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-9

    def parse(self, text: str) -> float:
        return float(text)

    def coerce(self, value: Any) -> float:
        value = _plain(value)
        if not _is_number(value) or not self.contains(float(value)):
            raise ValueError(value)
        return float(value)

    def describe(self) -> str:
        return f"a number in [{self.low}, {self.high}]"


@dataclasses.dataclass(frozen=True)
class Int(Param):
    """An integer in [low, high] (both included), on a `step` grid or a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    default: int | None = None
    kind = "int"

    def problems(self) -> list[str]:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step))
        if not ints:
            return [
                f"low, high and step must be integers. Received: low={self.low!r}, high={self.high!r}, step={self.step!r}"
            ]
        out = []
        if self.low >= self.high:
            out.append(f"low must be < high. Received: low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            out.append(f"log=True needs low > 0. Received: low={self.low}")
        if self.step <= 0:
            out.append(f"step must be > 0. Received: step={self.step}")
        if self.log and self.step != 1:
            out.append("step cannot be combined with log=True")
        if self.default is not None and not self.contains(self.default):
            out.append(f"default {self.default!r} is not in range({self.low}, {self.high} + 1, {self.step})")
        return out

    def contains(self, value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def parse(self, text: str) -> int:
        return int(text)

    def coerce(self, value: Any) -> int:
        value = _plain(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not self.contains(value):
            raise ValueError(value)
        return value

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"an integer in [{self.low}, {self.high}]{step}"


@dataclasses.dataclass(frozen=True)
class Choice(Param):
    """One of a fixed list of plain values (str, int, float, bool or None)."""

    values: tuple[Any, ...]
    default: Any = None
    kind = "choice"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.values, (list, set, frozenset)):
            object.__setattr__(self, "values", tuple(self.values))

    def problems(self) -> list[str]:
        if not isinstance(self.values, tuple) or not self.values:
            return [f"choices must be a non-empty list. Received: {self.values!r}"]
        out = []
        bad = [v for v in self.values if not isinstance(v, _PRIMITIVES)]
        if bad:
            out.append(f"choices must be str, int, float, bool or None. Received: {bad[0]!r}")
        if len(set(map(repr, self.values))) != len(self.values):
            out.append(f"choices must be distinct. Received: {list(self.values)!r}")
        if self.default is not None and self.default not in self.values:
            out.append(f"default {self.default!r} is not one of {list(self.values)!r}")
        return out

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def parse(self, text: str) -> Any:
        for value in self.values:
            if str(value) == text or (isinstance(value, bool) and text.lower() == str(value).lower()):
                return value
        for value in self.values:  # "1e-3" for 0.001, "64.0" for 64
            if _is_number(value):
                try:
                    if float(text) == value:
                        return value
                except ValueError:
                    pass
        raise ValueError(text)

    def coerce(self, value: Any) -> Any:
        return _match(self.values, value)

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.values))


@dataclasses.dataclass(frozen=True)
class Bool(Param):
    """True or False (an on/off switch such as an augmentation)."""

    default: bool | None = None
    kind = "bool"

    def contains(self, value: Any) -> bool:
        return isinstance(value, bool)

    def parse(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)

    def coerce(self, value: Any) -> bool:
        return _match((False, True), value)

    def describe(self) -> str:
        return "true or false"


@dataclasses.dataclass(frozen=True)
class Fixed(Param):
    """A value that is not searched but is recorded with every trial."""

    value: Any
    kind = "fixed"

    def problems(self) -> list[str]:
        if not isinstance(self.value, _PRIMITIVES):
            return [f"a fixed value must be str, int, float, bool or None. Received: {self.value!r}"]
        return []

    @property
    def default(self) -> Any:
        return self.value

    def contains(self, value: Any) -> bool:
        return value == self.value

    def parse(self, text: str) -> Any:
        if str(self.value) == text:
            return self.value
        raise ValueError(text)

    def coerce(self, value: Any) -> Any:
        if self.value is None:
            if value is None:
                return None
            raise ValueError(value)
        return _match((self.value,), value)

    def describe(self) -> str:
        return f"fixed at {self.value!r}"


class Space:
    """An ordered, immutable mapping of parameter names to parameters.

    Building one never raises for a bad range: `problems()` lists every mistake at once, so a
    space file's loader can report them all with the file's name.
    """

    def __init__(self, params: Mapping[str, Param] | None = None, **kwargs: Param):
        merged = dict(params or {})
        merged.update(kwargs)
        self._params: dict[str, Param] = merged

    # -- mapping protocol
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def items(self):
        return self._params.items()

    @property
    def names(self) -> list[str]:
        return list(self._params)

    def __repr__(self) -> str:
        return f"Space({', '.join(self._params)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    # -- validation
    def problems(self, known_names: set[str] | None = None) -> list[str]:
        """Every problem as 'parameter `name`: what is wrong', in definition order."""
        out: list[str] = []
        for name, param in self._params.items():
            if not isinstance(param, Param):
                out.append(f"parameter `{name}`: expected Float, Int, Choice, Bool or Fixed. Received: {param!r}")
                continue
            if known_names is not None and name not in known_names:
                out.append(f"parameter `{name}`: unknown name; known parameters are {', '.join(sorted(known_names))}")
            out.extend(f"parameter `{name}`: {p}" for p in param.problems())
            for parent, values in param.when:
                if parent not in self._params:
                    out.append(f"parameter `{name}`: condition on unknown parameter `{parent}`")
                    continue
                parent_param = self._params[parent]
                if not isinstance(parent_param, Param):
                    continue
                for value in values:
                    if not parent_param.contains(value):
                        out.append(
                            f"parameter `{name}`: condition `{parent}` == {value!r} can never hold "
                            f"(`{parent}` is {parent_param.describe()})"
                        )
        if not out:
            try:
                self._sampling_order()
            except ValueError as exc:
                out.append(str(exc))
        return out

    def validate(self, source: str = "space", known_names: set[str] | None = None) -> Space:
        problems = self.problems(known_names)
        if problems:
            raise UsageError(f"{source}: invalid space: " + "; ".join(problems))
        return self

    def _sampling_order(self) -> list[str]:
        """Parents before children (definition order otherwise); a cycle is a ValueError."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise ValueError(f"conditions form a cycle: {' -> '.join(path + (name,))}")
            state[name] = 1
            for parent, _ in self._params[name].when:
                visit(parent, path + (name,))
            state[name] = 2
            order.append(name)

        for name in self._params:
            visit(name, ())
        return order

    # -- sampling
    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        """Whether `name` takes part given its parents' values (inactive parents disable it)."""
        return all(parent in values and values[parent] in allowed for parent, allowed in self._params[name].when)

    def sample(self, suggest: Callable[[str, Param], Any]) -> dict[str, Any]:
        """Ask `suggest` for every active parameter; Fixed values are filled in directly."""
        values: dict[str, Any] = {}
        for name in self._sampling_order():
            if not self.is_active(name, values):
                continue
            param = self._params[name]
            values[name] = param.value if isinstance(param, Fixed) else suggest(name, param)
        return {name: values[name] for name in self._params if name in values}

    def defaults(self) -> dict[str, Any]:
        """The active parameters' default values (None where a parameter gives none)."""
        return self.sample(lambda name, param: getattr(param, "default", None))

    def project(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Another space's trial carried onto this one (a warm start): each active parameter keeps
        the trial's value where it is one of its values, else takes its default (left out when it
        has none: the engine draws it). Returns (the projected values, the trial's values that
        did not carry: named but outside the parameter, inactive here, or not in this space)."""
        projected: dict[str, Any] = {}
        dropped = {name: value for name, value in values.items() if name not in self._params}
        for name in self._sampling_order():
            param = self._params[name]
            if not self.is_active(name, projected):
                if name in values:
                    dropped[name] = values[name]
                continue
            if name in values:
                try:
                    projected[name] = param.coerce(values[name])
                    continue
                except ValueError:
                    dropped[name] = values[name]
            default = getattr(param, "default", None)  # Fixed's is its value; every other kind has the field
            if default is not None:
                projected[name] = default
        return {name: projected[name] for name in self._params if name in projected}, dropped

    # -- changes
    def pin(self, name: str, text: str) -> Space:
        """A copy with `name` fixed to the value `text` stands for (the `--set` flag)."""
        if name not in self._params:
            raise UsageError(
                f"--set {name}={text}: unknown parameter `{name}`; this space has {', '.join(self._params)}"
            )
        param = self._params[name]
        try:
            value = param.parse(text)
        except ValueError:
            value = None
        if value is None or not param.contains(value):
            raise UsageError(f"--set {name}={text}: outside the space; `{name}` is {param.describe()}")
        changed = dict(self._params)
        changed[name] = Fixed(value, when=param.when)
        return Space(changed)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A JSON-able description, used to tell whether a study's space has changed."""
        return {name: param.to_dict() for name, param in self._params.items()}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> Space:
        """The inverse of `to_dict`: a worker joining a study takes its space from the storage."""
        kinds = {kind.kind: kind for kind in (Float, Int, Choice, Bool, Fixed)}
        params = {}
        for name, fields in data.items():
            fields = dict(fields)
            kind = kinds[fields.pop("kind")]
            if "values" in fields:
                fields["values"] = tuple(fields["values"])
            params[name] = kind(**fields)
        return cls(params)
