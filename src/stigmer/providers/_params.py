"""The common parameter set every provider translates from, and its parsing from ``key=value`` strings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import UserError


def _stop(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [part for part in raw.split(",") if part]
    if isinstance(raw, (list, tuple)) and all(isinstance(p, str) for p in raw):
        return list(raw)
    raise ValueError("expected a string or a list of strings")


def _int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected an integer")
    value = int(raw)
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _unit(high: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        value = float(raw)
        if not 0.0 <= value <= high:
            raise ValueError(f"expected a number between 0 and {high:g}")
        return value

    return parse


COMMON: dict[str, Callable[[Any], Any]] = {
    "max_tokens": _int,
    "temperature": _unit(2.0),
    "top_p": _unit(1.0),
    "stop": _stop,
    "num_ctx": _int,
}


def parse_common(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and type common parameters; an unknown name or a bad value is a UserError naming it."""
    from ..config._suggest import did_you_mean

    out: dict[str, Any] = {}
    for key, raw in params.items():
        parser = COMMON.get(key)
        if parser is None:
            raise UserError(f"unknown model parameter {key!r}{did_you_mean(key, COMMON)}",
                            hint=f"the parameters are: {', '.join(COMMON)}")
        try:
            out[key] = parser(raw)
        except (TypeError, ValueError) as exc:
            raise UserError(f"model parameter {key}={raw!r}: {exc}", hint=f"fix --param {key}=...") from None
    return out


def parse_pairs(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["temperature=0.5", "stop=a,b"]`` -> dict; a pair without ``=`` is a UserError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {pair!r} is not key=value", hint="write e.g. --param temperature=0.5")
        out[key.strip()] = value.strip()
    return out


def unsupported(provider: str, key: str, why: str) -> UserError:
    return UserError(f"the {provider} provider does not take the parameter {key!r}: {why}",
                     hint=f"drop {key} for this model")
