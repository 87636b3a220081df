"""The one place that maps the space DSL onto KerasTuner's `HyperParameters`.

`declare` registers every parameter (active or not) with its conditions, so the oracle knows the
whole space; `sample` reads a trial's values back as the objective's params (active ones only).
KerasTuner holds a choice only when its values share one type among str, int, float and bool;
other choices (None, or mixed types) and such fixed values travel as the `repr` of each value
(distinct: the space checks it) and come back as the values themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search.errors import UsageError
from search.space import Bool, Choice, Fixed, Float, Int, Param, Space

if TYPE_CHECKING:  # only the runner imports KerasTuner (and so Keras); this module takes its objects
    from keras_tuner import HyperParameters

_NATIVE = (str, int, float, bool)


def _options(param: Param) -> tuple[Any, ...] | None:
    if isinstance(param, Choice):
        return param.values
    if isinstance(param, Fixed):
        return (param.value,)
    return None


def _as_labels(param: Param) -> bool:
    """Whether KerasTuner must hold this parameter's values as their `repr` strings."""
    options = _options(param)
    return options is not None and (len({type(v) for v in options}) != 1 or not isinstance(options[0], _NATIVE))


def encode(param: Param, value: Any) -> Any:
    """A parameter value as KerasTuner holds it."""
    return repr(value) if _as_labels(param) else value


def decode(param: Param, value: Any) -> Any:
    """A KerasTuner value as the space defines it (plain Python types, for JSON and the objective)."""
    options = _options(param)
    if options is not None and _as_labels(param):
        for option in options:
            if repr(option) == value:
                return option
        raise ValueError(f"KerasTuner value {value!r} is not one of {list(options)!r}")
    if isinstance(param, Bool):
        return bool(value)
    if isinstance(param, Int):
        return int(value)
    if isinstance(param, Float):
        return float(value)
    return value


def _register(hp: HyperParameters, name: str, param: Param) -> Any:
    """Register one parameter in the scopes already open; returns its value (None when inactive)."""
    if isinstance(param, Float):
        return hp.Float(
            name,
            param.low,
            param.high,
            step=param.step,
            sampling="log" if param.log else "linear",
            default=param.default,
        )
    if isinstance(param, Int):
        return hp.Int(
            name,
            param.low,
            param.high,
            step=None if param.log else param.step,
            sampling="log" if param.log else "linear",
            default=param.default,
        )
    if isinstance(param, Choice):
        default = None if param.default is None else encode(param, param.default)
        return hp.Choice(name, [encode(param, v) for v in param.values], default=default)
    if isinstance(param, Bool):
        return hp.Boolean(name, default=bool(param.default))
    if isinstance(param, Fixed):
        return hp.Fixed(name, encode(param, param.value))
    raise TypeError(f"no KerasTuner mapping for {type(param).__name__} (parameter `{name}`)")


def _scopes(space: Space, name: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The conditional scopes `name` lives in, outermost first: each parent's own scopes, then the
    parent's condition. KerasTuner finds a parent only among the parameters of the scope being
    opened, so a parameter with several parents needs them nested, each inside the one before."""
    chain: list[tuple[str, tuple[Any, ...]]] | None = None
    for parent, values in sorted(space[name].when, key=lambda item: len(_scopes(space, item[0]))):
        if chain is None:
            chain = _scopes(space, parent)
        elif _scopes(space, parent) != chain:
            parents = " and ".join(f"`{p}`" for p, _ in space[name].when)
            raise UsageError(
                f"parameter `{name}`: the kerastuner backend nests conditions (KerasTuner's conditional_scope), "
                f"but {parents} are not nested in one another; condition `{name}` on one of them, or use --backend optuna"
            )
        chain.append((parent, values))
    return chain or []


def declare(space: Space, hp: HyperParameters) -> HyperParameters:
    """Register the whole space on `hp`, parents first, each conditional parameter inside the
    `hp.conditional_scope(parent, values)` of every parent it names. Registering again is a no-op."""
    done: set[str] = set()
    while len(done) < len(space):
        ready = [n for n in space if n not in done and all(parent in done for parent, _ in space[n].when)]
        if not ready:
            raise UsageError(f"conditions form a cycle among {', '.join(n for n in space if n not in done)}")
        for name in ready:
            with contextlib.ExitStack() as scopes:
                for parent, values in _scopes(space, name):
                    scopes.enter_context(hp.conditional_scope(parent, [encode(space[parent], v) for v in values]))
                _register(hp, name, space[name])
            done.add(name)
    return hp


def sample(space: Space, hp: HyperParameters) -> dict[str, Any]:
    """The trial's parameter values: exactly the active ones, in the space's order, decoded.

    Keys KerasTuner adds for itself (Hyperband's `tuner/epochs`...) are not parameters: left out."""
    return space.sample(lambda name, param: decode(param, hp.get(name)))


def encode_values(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """Params (e.g. the space's defaults) as the `values` of a KerasTuner trial, Fixed ones included."""
    return {name: encode(space[name], value) for name, value in params.items()}
