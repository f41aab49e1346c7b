"""``decoded``: a dataclass of ``params`` from the plain JSON value Temporal carries it as, quickly.

The SDK's converter turns a payload into a dataclass by resolving the class's type hints (``typing.get_type_hints``)
for it and for every nested dataclass, on every payload: about 0.15 ms for a model call's input, paid on every
activity. The hot activities (``call_model``, ``call_tool``) take their input as a plain dict and build it here, from
a plan worked out once per class. The payload is the same JSON either way, so histories are unaffected.

Handles what ``params`` uses: nested dataclasses, ``X | None`` of one, ``list[X]`` of one, and plain JSON values
(kept as they are). A key the class does not have is ignored (a newer workflow's field), a missing one takes its
default, so inputs from other versions still decode.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
_Convert = Callable[[Any], Any]
_PLANS: dict[type, dict[str, _Convert | None]] = {}


def decoded(cls: type[T], value: Any) -> T:
    """``value`` (a dict, as JSON decoded it) as an instance of the dataclass ``cls``; an instance passes through."""
    if isinstance(value, cls):
        return value
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _plan(cls)
    kwargs = {}
    for key, item in value.items():
        if key in plan:
            convert = plan[key]
            kwargs[key] = item if convert is None or item is None else convert(item)
    return cls(**kwargs)


def _plan(cls: type) -> dict[str, _Convert | None]:
    hints = typing.get_type_hints(cls)
    return {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}


def _converter(hint: Any) -> _Convert | None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return partial(decoded, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _converter(inner[0]) if len(inner) == 1 else None
    if origin is list and args:
        item = _converter(args[0])
        return None if item is None else partial(_each, item)
    return None


def _each(item: _Convert, values: list[Any]) -> list[Any]:
    return [item(v) for v in values]
