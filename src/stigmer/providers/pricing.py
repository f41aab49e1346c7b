"""What a model costs, in USD per million tokens, and what one call with given token counts cost.

The price of a model comes from, first match wins:

1. ``pricing:`` in config.yaml (``Config.pricing``), keyed by ``provider:model`` then by bare model id;
2. its provider's :meth:`~stigmer.providers.base.Provider.price` hook: a cloud provider's table
   (``providers/anthropic.py``, ``providers/openai.py``), or :data:`LOCAL` for a model running on the
   person's own machine (Ollama, llama.cpp, an OpenAI-compatible server on loopback);
3. otherwise it is unknown: ``None``, never a silent 0, so a total that includes such a call says it is
   not a number rather than understating what was spent.

A table key matches a model id that is the key itself, or the key followed by a release date
(``-20250929``, ``-2024-08-06``) or ``-latest``; the longest matching key wins. A bare prefix is not
enough on purpose: ``gpt-5.5`` must not price ``gpt-5.5-pro`` (six times dearer) and ``claude-opus-4`` must
not price a future ``claude-opus-4-9``; an id the table does not know is unknown, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from .spec import ModelSpec

PER = 1_000_000
"""Prices are per million tokens."""

_VERSION_SUFFIX = re.compile(r"(-\d{4}-?\d{2}-?\d{2}|-latest)?")


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model.

    Attributes:
        input: a prompt token that was not read from (or written to) the provider's prompt cache.
        output: a reply token (reasoning tokens included: providers bill them as output).
        cached: a prompt token read from the cache; None: the input price (no discount).
        cache_write: a prompt token written to the cache (Anthropic bills these above ``input``); None: input.
        tier_above: when a call's prompt has more input tokens than this, the whole call is billed at ``tier``
            (OpenAI's and Anthropic's long-context prices).
        tier: the long-context price.
        source: where the price came from: ``table``, ``config.yaml`` or ``local``.
        match: the table or config key that matched (what ``stigmer llm resolve`` shows).
    """

    input: float
    output: float
    cached: float | None = None
    cache_write: float | None = None
    tier_above: int | None = None
    tier: Price | None = None
    source: str = "table"
    match: str = ""

    def for_prompt(self, input_tokens: int) -> Price:
        """The price that applies to a call whose prompt has ``input_tokens`` tokens."""
        if self.tier is not None and self.tier_above is not None and input_tokens > self.tier_above:
            return self.tier
        return self

    def to_dict(self) -> dict[str, Any]:
        """The price as ``stigmer llm resolve --json`` shows it (USD per million tokens)."""
        out: dict[str, Any] = {"source": self.source, "match": self.match, "input": self.input, "output": self.output,
                               "cached": self.input if self.cached is None else self.cached,
                               "cache_write": self.input if self.cache_write is None else self.cache_write}
        if self.tier is not None and self.tier_above is not None:
            out["above_input_tokens"] = {"tokens": self.tier_above, "input": self.tier.input,
                                         "output": self.tier.output, "cached": self.tier.cached}
        return out


LOCAL = Price(0.0, 0.0, 0.0, 0.0, source="local")
"""The price of a model that runs on the person's own machine (or their own server): nothing per token."""


def match(table: Mapping[str, Price], model: str) -> Price | None:
    """The price of the longest key of ``table`` that ``model`` is (up to a release date or ``-latest``)."""
    lowered = model.strip().lower()
    keys = [key for key in table
            if lowered.startswith(key.lower()) and _VERSION_SUFFIX.fullmatch(lowered[len(key):])]
    best = max(keys, key=len, default=None)
    return replace(table[best], match=best) if best is not None else None


def _configured(spec: ModelSpec, cfg: Config | None) -> Price | None:
    if cfg is None or not cfg.pricing:
        return None
    table = {key: Price(input=v["input"], output=v["output"], cached=v.get("cached"),
                        cache_write=v.get("cache_write"), source="config.yaml") for key, v in cfg.pricing.items()}
    qualified = {k: p for k, p in table.items() if k.lower().startswith(f"{spec.provider.lower()}:")}
    found = match({k.split(":", 1)[1]: p for k, p in qualified.items()}, spec.model)
    if found is not None:
        return replace(found, match=f"{spec.provider}:{found.match}")
    return match({k: p for k, p in table.items() if k not in qualified}, spec.model)


def price_of(spec: ModelSpec, cfg: Config | None) -> Price | None:
    """The price of ``spec``'s model: config.yaml's ``pricing:``, else its provider's; None when unknown."""
    configured = _configured(spec, cfg)
    if configured is not None:
        return configured
    from ..errors import StigmerError
    from .registry import get_provider

    try:
        provider = get_provider(spec.provider)
    except StigmerError:  # a plugin this process does not load: its price is not known here
        return None
    return provider.price(spec)


def describe(spec: ModelSpec, cfg: Config | None) -> dict[str, Any]:
    """The price that applies to ``spec`` and where it comes from, for ``stigmer llm resolve``."""
    price = price_of(spec, cfg)
    if price is None:
        example = f'pricing: {{"{spec.provider}:{spec.model}": {{input: ..., output: ...}}}}'
        return {"source": "unknown", "hint": f"costs are null; set USD per million tokens in config.yaml: `{example}`"}
    return price.to_dict()


def cost_of(price: Price, counts: Mapping[str, Any]) -> float:
    """USD for a call with ``counts`` (``input_tokens`` including ``cached_tokens`` and ``cache_write_tokens``)."""
    input_tokens = int(counts.get("input_tokens") or 0)
    cached = int(counts.get("cached_tokens") or 0)
    written = int(counts.get("cache_write_tokens") or 0)
    p = price.for_prompt(input_tokens)
    fresh = max(0, input_tokens - cached - written)
    per_cached = p.input if p.cached is None else p.cached
    per_written = p.input if p.cache_write is None else p.cache_write
    total = (fresh * p.input + cached * per_cached + written * per_written
             + int(counts.get("output_tokens") or 0) * p.output)
    return round(total / PER, 8)


def cost_usd(spec: ModelSpec, counts: Mapping[str, Any], cfg: Config | None) -> float | None:
    """The cost of one call with ``counts`` tokens; None when the model's price is unknown."""
    price = price_of(spec, cfg)
    return None if price is None else cost_of(price, counts)
