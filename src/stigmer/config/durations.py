"""Durations as people type them: ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` (and ``0`` for "never").

One parser for every place that takes one: ``retention.executions``, ``stigmer execution prune
--older-than``, token expiry. Ground floor: no stigmer imports.
"""

from __future__ import annotations

import re
from decimal import Decimal

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(raw: object) -> float:
    """Seconds in ``raw`` (a number of seconds, or a number with a unit s/m/h/d/w); ValueError with a reason."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a duration like 30d, 12h or 15m, got {raw!r}")
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    else:
        match = _PATTERN.match(str(raw))
        if match is None:
            raise ValueError(f"expected a duration like 30d, 12h or 15m, got {raw!r}")
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {raw!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact way to write ``seconds`` with one unit (``2592000`` -> ``30d``); ``0`` stays ``0``."""
    if seconds == 0:
        return "0"
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    # Fixed-point, never an exponent (``1e+06s`` would not parse back); the parser reads what this writes.
    text = format(Decimal(repr(float(seconds))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}s"
