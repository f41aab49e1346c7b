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


def register(registry: object) -> None:
    registry.register(OpenAIProvider())  # type: ignore[attr-defined]
