"""The ``anthropic`` provider: ``ChatAnthropic`` on the Messages API.

The key comes from the worker's own settings (``ANTHROPIC_API_KEY``, ``--anthropic-key-file`` or
``llm.api_key``), never from the spec. ``ChatAnthropic`` constructs fine without a key and fails
only on the first call, so :meth:`AnthropicProvider.build` checks first and says which variable to set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config.keys import DEFAULT_MODELS
from . import errors as pe
from .base import Capabilities, Provider, by_prefix
from .pricing import Price, match
from .spec import ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config

CONTEXT_LENGTH = 200_000
READ_TIMEOUT_S = 300.0
# Claude 2 and Instant predate tool use; every Claude 3+ model calls tools.
_NO_TOOLS = ("claude-2", "claude-instant")
# Model family (id prefix) -> the most tokens one reply may have. Sources: Anthropic's models overview
# (docs.anthropic.com; Claude 3: 4096, 3.5: 8192, 3.7 Sonnet and Sonnet 4: 64000, Opus 4 and 4.1: 32000), and for
# the 4.5 models on the models.dev data langchain-anthropic 1.7 ships (langchain_anthropic/data/_profiles.py,
# `max_output_tokens`); a test checks the two agree. A family not listed keeps the default budget.
OUTPUT_LIMITS: dict[str, int] = {
    "claude-3-": 4096,
    "claude-3-5-": 8192,
    "claude-3-7-sonnet": 64_000,
    "claude-sonnet-4": 64_000,
    "claude-opus-4": 32_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-sonnet-4-6": 128_000,
    "claude-opus-4-6": 128_000,
    "claude-opus-4-7": 128_000,
    "claude-opus-4-8": 128_000,
    "claude-haiku-5-5": 128_000,
    "claude-sonnet-5": 128_000,
    "claude-opus-5": 128_000,
    "claude-fable-5": 128_000,
}


# Model id -> USD per million tokens: input, output, cache read, cache write (5-minute). Source: models.dev
# (github.com/anomalyco/models.dev, providers/anthropic/models/*.toml, `[cost]`: the project LangChain's model
# profiles come from; the profiles langchain-anthropic 1.7 ships carry no prices), which follows Anthropic's
# pricing page; the 5.5 models from their files that cite platform.claude.com's pricing (checked 2026-10-03).
# Only models whose price is published there: claude-haiku-5-5 is not yet, so it is unknown (None) until it is,
# or until `pricing:` in config.yaml names it. A key also prices its dated ids (claude-sonnet-4-5-20250929).
# No long-context tier: stigmer asks for no 1M-context beta, so a prompt never passes 200k tokens.
PRICES: dict[str, Price] = {
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.30),
    "claude-3-opus": Price(15.0, 75.0, 1.50, 18.75),
    "claude-3-5-haiku": Price(0.80, 4.0, 0.08, 1.0),
    "claude-3-5-sonnet": Price(3.0, 15.0, 0.30, 3.75),
    "claude-3-7-sonnet": Price(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4": Price(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-0": Price(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-5": Price(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-6": Price(3.0, 15.0, 0.30, 3.75),
    "claude-opus-4": Price(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-0": Price(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-1": Price(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-5": Price(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-6": Price(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-7": Price(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4-8": Price(5.0, 25.0, 0.50, 6.25),
    "claude-haiku-4-5": Price(1.0, 5.0, 0.10, 1.25),
    "claude-sonnet-5": Price(2.0, 10.0, 0.20, 2.50),
    "claude-opus-5": Price(5.0, 25.0, 0.50, 6.25),
    "claude-fable-5": Price(10.0, 50.0, 1.0, 12.50),
    "claude-sonnet-5-5": Price(2.0, 10.0, 0.10, 2.50),
    "claude-opus-5-5": Price(4.0, 20.0, 0.20, 5.0),
}


class AnthropicProvider(Provider):
    name = "anthropic"
    default_model = DEFAULT_MODELS["anthropic"]
    tool_models = ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5")

    def native_params(self, common: dict[str, Any]) -> dict[str, Any]:
        native = super().native_params(common)
        if "stop" in native:
            native["stop_sequences"] = native.pop("stop")
        return native

    def max_output_tokens(self, model: str) -> int | None:
        return by_prefix(OUTPUT_LIMITS, model)

    def _key(self, cfg: Config) -> str:
        key = cfg.api_key_for(self.name)
        if not key:
            raise pe.key_missing(self.name)
        return key

    def build(self, spec: ModelSpec, cfg: Config) -> BaseChatModel:
        from ._anthropic_chat import StigmerChatAnthropic

        kwargs: dict[str, Any] = {"model": spec.model, "api_key": self._key(cfg), "max_retries": 0,
                                  "timeout": READ_TIMEOUT_S, **spec.params}
        if spec.base_url:
            kwargs["base_url"] = spec.base_url
        return StigmerChatAnthropic(**kwargs)

    def capabilities(self, spec: ModelSpec, cfg: Config) -> Capabilities:
        self._key(cfg)
        tools = not spec.model.lower().startswith(_NO_TOOLS)
        return Capabilities(tools=tools, context_length=CONTEXT_LENGTH, source="stigmer's Anthropic model table")

    def price(self, spec: ModelSpec) -> Price | None:
        return match(PRICES, spec.model)


def register(registry: object) -> None:
    registry.register(AnthropicProvider())  # type: ignore[attr-defined]
