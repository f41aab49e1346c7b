"""What one model call used: tokens (from the provider's own usage data), time, and cost.

``measure(message, spec, cfg, ...)`` turns the merged reply of a model call into a plain dict that
the runner puts on the reply (and so into workflow history, events and the store)::

    {"input_tokens": int, "output_tokens": int, "cached_tokens": int, "estimated": bool,
     "duration_ms": int, "cost_usd": float | None}

Tokens come from LangChain's ``usage_metadata`` (Anthropic's ``usage``, Ollama's
``prompt_eval_count``/``eval_count``, the OpenAI-compatible ``usage`` of OpenAI and llama.cpp), and are
estimated (about four characters a token) only where the provider gave nothing, then marked
``estimated``. Cost is in USD from :mod:`.pricing` (overridable under ``pricing:`` in config.yaml);
local models cost 0; an unknown cloud price is ``None`` (not 0: the total then says it is incomplete).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from .spec import ModelSpec

USAGE_KEYS = ("input_tokens", "output_tokens", "cached_tokens")
CHARS_PER_TOKEN = 4


def _estimate(chars: int) -> int:
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN) if chars else 0


def _reported(message: Any) -> dict[str, int] | None:
    """The provider's own counts from ``usage_metadata``, or None when it sent none."""
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    if input_tokens == 0 and output_tokens == 0:
        return None
    details = usage.get("input_token_details") or {}
    cached = int(details.get("cache_read") or 0)
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cached_tokens": cached}


def measure(message: Any, spec: ModelSpec, cfg: Config | None, *, duration_s: float, prompt_chars: int,
            reply_chars: int) -> dict[str, Any]:
    """The usage of one call: reported tokens (else estimated from the text), its duration and its cost."""
    from .pricing import cost_usd

    counts = _reported(message)
    estimated = counts is None
    if counts is None:
        counts = {"input_tokens": _estimate(prompt_chars), "output_tokens": _estimate(reply_chars),
                  "cached_tokens": 0}
    return {**counts, "estimated": estimated, "duration_ms": round(duration_s * 1000),
            "cost_usd": cost_usd(spec, counts, cfg)}


def empty() -> dict[str, Any]:
    """Zero usage: what an execution starts with."""
    return {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "estimated": False, "duration_ms": 0,
            "cost_usd": 0.0, "model_calls": 0}


def add(total: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """``total`` plus one call's (or another total's) usage; side-effect free, so workflow code sums with it.

    A ``cost_usd`` of None anywhere makes the sum None (a price was unknown: the total is not a number).
    """
    out = dict(total or empty())
    for key in USAGE_KEYS:
        out[key] = int(out.get(key) or 0) + int(call.get(key) or 0)
    out["duration_ms"] = int(out.get("duration_ms") or 0) + int(call.get("duration_ms") or 0)
    out["estimated"] = bool(out.get("estimated")) or bool(call.get("estimated"))
    a, b = out.get("cost_usd", 0.0), call.get("cost_usd", 0.0)
    out["cost_usd"] = None if a is None or b is None else round(float(a) + float(b), 8)
    out["model_calls"] = int(out.get("model_calls") or 0) + int(call.get("model_calls", 1) or 0)
    return out


def total_tokens(usage: dict[str, Any]) -> int:
    """Input plus output tokens (what a token budget counts)."""
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
