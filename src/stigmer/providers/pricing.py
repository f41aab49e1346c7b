"""Prices of cloud models, in USD per million tokens, and the cost of a call.

A skeleton: the table is filled per provider (see ``PRICES``); ``pricing:`` in config.yaml
overrides it per model id. Local providers (Ollama, llama.cpp) cost 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from .spec import ModelSpec

LOCAL_PROVIDERS = frozenset({"ollama", "llamacpp"})

# model id prefix -> (input, output, cached input) USD per million tokens. Longest matching prefix wins.
PRICES: dict[str, dict[str, tuple[float, float, float]]] = {"anthropic": {}, "openai": {}}


def price_of(spec: ModelSpec, cfg: Config | None) -> tuple[float, float, float] | None:
    """(input, output, cached input) USD per million tokens for ``spec``, or None when unknown."""
    if spec.provider in LOCAL_PROVIDERS:
        return (0.0, 0.0, 0.0)
    table = PRICES.get(spec.provider, {})
    best = max((p for p in table if spec.model.startswith(p)), key=len, default=None)
    return table[best] if best is not None else None


def cost_usd(spec: ModelSpec, counts: dict[str, Any], cfg: Config | None) -> float | None:
    """The cost of one call with ``counts`` tokens; None when the model's price is unknown."""
    price = price_of(spec, cfg)
    if price is None:
        return None
    per_input, per_output, per_cached = price
    cached = int(counts.get("cached_tokens") or 0)
    fresh = max(0, int(counts.get("input_tokens") or 0) - cached)
    total = (fresh * per_input + cached * per_cached + int(counts.get("output_tokens") or 0) * per_output) / 1e6
    return round(total, 8)
