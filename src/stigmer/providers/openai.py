"""The ``openai`` provider: OpenAI's API, or any OpenAI-compatible server when ``llm.base_url`` is set.

Against OpenAI itself the key comes from ``OPENAI_API_KEY`` (or ``llm.api_key``); against another
server (vLLM, LM Studio, llama.cpp...) no key is needed and ``max_tokens`` goes in the body,
where those servers read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.keys import DEFAULT_MODELS
from . import errors as pe
from ._openai_compatible import build_chat_openai
from .base import Capabilities, Provider, by_prefix
from .pricing import LOCAL, Price, match
from .spec import ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config

# prefix -> (tools, context length). Longest prefix wins; unknown models on OpenAI are assumed to call tools.
MODEL_TABLE: dict[str, tuple[bool, int]] = {
    "gpt-5": (True, 400_000),
    "gpt-4.1": (True, 1_047_576),
    "gpt-4o": (True, 128_000),
    "gpt-4-turbo": (True, 128_000),
    "gpt-4": (True, 8_192),
    "gpt-3.5-turbo": (True, 16_385),
    "o1-mini": (False, 128_000),
    "o1": (True, 200_000),
    "o3": (True, 200_000),
    "o4-mini": (True, 200_000),
    "chatgpt-4o": (False, 128_000),
}


# prefix -> the most tokens one reply may have. Sources: OpenAI's model pages, and the models.dev data that
# langchain-openai 1.8 ships (langchain_openai/data/_profiles.py, `max_output_tokens`); a test checks the two agree.
# Only models whose limit is known: an unknown one keeps the default budget.
OUTPUT_LIMITS: dict[str, int] = {
    "gpt-3.5-turbo": 4096,
    "gpt-4": 8192,
    "gpt-4-turbo": 4096,
    "gpt-4o": 16_384,
    "gpt-4o-2024-05-13": 4096,
    "chatgpt-4o": 16_384,
    "gpt-4.1": 32_768,
    "gpt-5": 128_000,
    "gpt-5-chat": 16_384,  # OpenAI's page for gpt-5-chat-latest (models.dev has no figure)
    "gpt-5-pro": 272_000,
    "gpt-5.3-codex-spark": 32_000,
    "gpt-6": 128_000,
    "o1": 100_000,
    "o1-mini": 65_536,
    "o3": 100_000,
    "o4-mini": 100_000,
}


# Model id -> USD per million tokens: input, output, cached input (OpenAI bills no cache writes). Source: models.dev
# (github.com/anomalyco/models.dev, providers/openai/models/*.toml, `[cost]` and `[[cost.tiers]]`, snapshot of
# 2026-07-02: the project LangChain's model profiles come from; the profiles langchain-openai 1.8 ships carry no
# prices), which follows OpenAI's pricing page. A key also prices its dated ids (gpt-4o-2024-08-06) and -latest
# (gpt-5-chat-latest); a model not listed (gpt-5.6, gpt-6-*) is unknown until `pricing:` in config.yaml names it.
_LONG = 272_000  # above this many input tokens the 5.4 and 5.5 models bill the whole call at their long-context tier
PRICES: dict[str, Price] = {
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-4": Price(30.0, 60.0),
    "gpt-4-turbo": Price(10.0, 30.0),
    "gpt-4o": Price(2.50, 10.0, 1.25),
    "gpt-4o-2024-05-13": Price(5.0, 15.0),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.0, 8.0, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.0, 0.125),
    "gpt-5-chat": Price(1.25, 10.0, 0.125),
    "gpt-5-codex": Price(1.25, 10.0, 0.125),
    "gpt-5-mini": Price(0.25, 2.0, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-5-pro": Price(15.0, 120.0),
    "gpt-5.1": Price(1.25, 10.0, 0.125),
    "gpt-5.1-chat": Price(1.25, 10.0, 0.125),
    "gpt-5.1-codex": Price(1.25, 10.0, 0.125),
    "gpt-5.1-codex-max": Price(1.25, 10.0, 0.125),
    "gpt-5.1-codex-mini": Price(0.25, 2.0, 0.025),
    "gpt-5.2": Price(1.75, 14.0, 0.175),
    "gpt-5.2-chat": Price(1.75, 14.0, 0.175),
    "gpt-5.2-codex": Price(1.75, 14.0, 0.175),
    "gpt-5.2-pro": Price(21.0, 168.0),
    "gpt-5.3-chat": Price(1.75, 14.0, 0.175),
    "gpt-5.3-codex": Price(1.75, 14.0, 0.175),
    "gpt-5.3-codex-spark": Price(1.75, 14.0, 0.175),
    "gpt-5.4": Price(2.50, 15.0, 0.25, tier_above=_LONG, tier=Price(5.0, 22.5, 0.50)),
    "gpt-5.4-mini": Price(0.75, 4.50, 0.075),
    "gpt-5.4-nano": Price(0.20, 1.25, 0.02),
    "gpt-5.4-pro": Price(30.0, 180.0, tier_above=_LONG, tier=Price(60.0, 270.0)),
    "gpt-5.5": Price(5.0, 30.0, 0.50, tier_above=_LONG, tier=Price(10.0, 45.0, 1.0)),
    "gpt-5.5-pro": Price(30.0, 180.0, tier_above=_LONG, tier=Price(60.0, 270.0)),
    "o1": Price(15.0, 60.0, 7.50),
    "o1-pro": Price(150.0, 600.0),
    "o3": Price(2.0, 8.0, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o3-pro": Price(20.0, 80.0),
    "o4-mini": Price(1.10, 4.40, 0.275),
}


def table_lookup(table: dict[str, tuple[bool, int]], model: str) -> tuple[bool, int] | None:
    """The entry of the longest prefix of ``model`` in ``table``."""
    return by_prefix(table, model)


class OpenAIProvider(Provider):
    name = "openai"
    default_model = DEFAULT_MODELS["openai"]
    tool_models = ("gpt-5-mini", "gpt-4.1-mini", "gpt-4o-mini")

    def _key(self, spec: ModelSpec, cfg: Config) -> str | None:
        key = cfg.api_key_for(self.name)
        if not key and not spec.base_url:
            raise pe.key_missing(self.name)
        return key

    def max_output_tokens(self, model: str) -> int | None:
        return by_prefix(OUTPUT_LIMITS, model)

    def build(self, spec: ModelSpec, cfg: Config) -> BaseChatModel:
        return build_chat_openai(spec, self._key(spec, cfg), compatible_server=spec.base_url is not None)

    def capabilities(self, spec: ModelSpec, cfg: Config) -> Capabilities:
        self._key(spec, cfg)
        entry = table_lookup(MODEL_TABLE, spec.model)
        if entry is None:
            where = f"a compatible server at {spec.base_url}" if spec.base_url else "OpenAI"
            return Capabilities(tools=True, source=f"not in stigmer's table; assumed for {where}")
        return Capabilities(tools=entry[0], context_length=entry[1], source="stigmer's OpenAI model table")

    def price(self, spec: ModelSpec) -> Price | None:
        """OpenAI's price for a model in its table, whatever the server; other models: 0 on loopback, else None.

        An OpenAI model id behind another URL is most likely OpenAI's model behind a proxy (LiteLLM on
        localhost, a company gateway), billed at OpenAI's price; any other model on a loopback server (vLLM,
        LM Studio) runs on this machine; elsewhere its price is not known (``pricing:`` in config.yaml names it).
        """
        found = match(PRICES, spec.model)
        if found is not None:
            return found
        host = _host(spec.base_url)
        return LOCAL if host is not None and _is_loopback(host) else None


def _host(base_url: str | None) -> str | None:
    from urllib.parse import urlsplit

    return (urlsplit(base_url).hostname or "").lower() if base_url else None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(registry: object) -> None:
    registry.register(OpenAIProvider())  # type: ignore[attr-defined]
