"""What one model call used: tokens (from the provider's own usage data), time, and cost.

``measure(message, spec, cfg, ...)`` turns the merged reply of a model call into a plain dict that
the runner puts on the reply (and so into workflow history, events and the store)::

    {"input_tokens": int, "output_tokens": int, "cached_tokens": int, "estimated": bool,
     "duration_ms": int, "cost_usd": float | None}

``input_tokens`` is the whole prompt, ``cached_tokens`` included (the part read from the provider's prompt
cache, billed cheaper). Tokens come from LangChain's ``usage_metadata``, which each chat model fills from
its provider's own usage: Anthropic's ``usage`` (the cumulative one on ``message_delta``; cache reads and
writes added into the input), Ollama's ``prompt_eval_count``/``eval_count`` (final chunk), the
OpenAI-compatible ``usage`` chunk a stream ends with when asked (``stream_options.include_usage``, which
``providers/_openai_compatible`` asks for), with ``prompt_tokens_details.cached_tokens``.

A count the provider did not give is estimated (about four characters a token) and the call marked
``estimated``: llama-cpp-python's server sends no usage in a stream, Ollama may leave out
``prompt_eval_count``, and a count of 0 for a non-empty prompt or reply is a count missing, not a fact.
Cost is in USD from :mod:`.pricing` (overridable under ``pricing:`` in config.yaml); local models cost 0;
an unknown cloud price is ``None`` (not 0: the total then says it is incomplete).

:func:`add`, :func:`empty` and :func:`total_tokens` are pure: workflow code sums usage with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from .spec import ModelSpec

USAGE_KEYS = ("input_tokens", "output_tokens", "cached_tokens")
CHARS_PER_TOKEN = 4
START_USAGE = "stigmer_start_usage"
"""``response_metadata`` key of the prompt's counts a stream reported before the reply (Anthropic's
``message_start``: ``{"input_tokens", "cache_read", "cache_creation"}``); used when the final counts lack them."""


def _estimate(chars: int) -> int:
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN) if chars > 0 else 0


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _detail(details: Mapping[str, Any], name: str, prefixes: tuple[str, ...] = ()) -> int:
    """``name`` in ``input_token_details``, plus LangChain's service-tier variants (``priority_cache_read``)."""
    return sum(_count(v) or 0 for k, v in details.items()
               if k == name or k.endswith("_" + name) or k.startswith(prefixes))


def _reported(message: Any) -> dict[str, int | None]:
    """The provider's own counts; None: not given.

    ``usage_metadata`` first; else Ollama's counts in ``response_metadata``; input counts missing from both
    are taken from :data:`START_USAGE` (see ``providers/_anthropic_chat``).
    """
    usage = getattr(message, "usage_metadata", None) or {}
    details = usage.get("input_token_details") or {}
    meta = getattr(message, "response_metadata", None) or {}
    input_tokens = _count(usage.get("input_tokens")) if usage else _count(meta.get("prompt_eval_count"))
    start = meta.get(START_USAGE)
    if not input_tokens and isinstance(start, Mapping) and _count(start.get("input_tokens")):
        input_tokens, details = _count(start.get("input_tokens")), start
    return {
        "input_tokens": input_tokens,
        "output_tokens": _count(usage.get("output_tokens")) if usage else _count(meta.get("eval_count")),
        "cached_tokens": _detail(details, "cache_read"),
        # Anthropic's cache writes: LangChain puts them under cache_creation, or per TTL (ephemeral_5m_...).
        "cache_write_tokens": _detail(details, "cache_creation", ("ephemeral_",)),
    }


def _settle(reported: int | None, chars: int) -> tuple[int, bool]:
    """(tokens, estimated): the reported count, unless it is missing or 0 for a text that is not empty."""
    if reported is not None and (reported > 0 or chars <= 0):
        return reported, False
    return _estimate(chars), True


def measure(message: Any, spec: ModelSpec, cfg: Config | None, *, duration_s: float, prompt_chars: int,
            reply_chars: int) -> dict[str, Any]:
    """The usage of one call: reported tokens (else estimated from the text), its duration and its cost.

    Args:
        message: the merged reply (an ``AIMessageChunk`` summed chunk by chunk, as the runner streams it).
        spec: the model called (its provider and model id price the call).
        cfg: the runner's configuration (``pricing:`` overrides); None: the provider's prices only.
        duration_s: how long the call took, first byte sent to last chunk received.
        prompt_chars: characters of the prompt sent (messages and tool schemas), for an estimate.
        reply_chars: characters of the reply (text and tool-call arguments), for an estimate.
    """
    from .pricing import cost_usd

    reported = _reported(message)
    input_tokens, input_estimated = _settle(reported["input_tokens"], prompt_chars)
    output_tokens, output_estimated = _settle(reported["output_tokens"], reply_chars)
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens,
              "cached_tokens": min(reported["cached_tokens"] or 0, input_tokens)}
    priced = {**counts, "cache_write_tokens": reported["cache_write_tokens"]}
    return {**counts, "estimated": input_estimated or output_estimated, "duration_ms": round(duration_s * 1000),
            "cost_usd": cost_usd(spec, priced, cfg)}


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
