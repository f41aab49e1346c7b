"""The ``params`` dataclasses of the hot path to and from the plain JSON values Temporal carries, quickly.

The SDK's converter turns a payload into a dataclass by resolving the class's type hints (``typing.get_type_hints``)
for it and for every nested dataclass, on every payload (about 0.1 ms for a model call's input), and a dataclass
into JSON through ``dataclasses.asdict``, which deep-copies every message of the conversation it holds (about
0.06 ms). Model and tool calls happen on every step, so their inputs and the tool results go as plain values:
``plain`` (the workflow's side) gives the same JSON as the SDK would, and ``decoded`` builds the dataclass again from
a plan worked out once per class. The payloads are the same either way, so histories are unaffected.

Handles what ``params`` uses: nested dataclasses, ``X | None`` of one, ``list[X]`` of one, and plain JSON values
(kept as they are, not copied). ``decoded`` ignores a key the class does not have (a newer workflow's field) and
gives a missing one its default, so inputs from other versions still decode.
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
    plan = _plan(cls)
    kwargs = {}
    for key, item in value.items():
        if key in plan:
            convert = plan[key]
            kwargs[key] = item if convert is None or item is None else convert(item)
    return cls(**kwargs)


def plain(value: Any) -> dict[str, Any]:
    """The dataclass ``value`` as the dict the SDK's JSON converter would write (field order kept; containers shared,
    not copied: encode it before changing them)."""
    out = dict(value.__dict__)
    for key, convert in _plan(type(value)).items():
        item = out[key]
        if convert is not None and item is not None:
            out[key] = [plain(x) for x in item] if isinstance(item, list) else plain(item)
    return out


def _plan(cls: type) -> dict[str, _Convert | None]:
    """Each field's converter (None: the value is kept as it is), worked out once per class."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = _PLANS[cls] = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}
    return plan


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
