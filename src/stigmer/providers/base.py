"""The shape every provider has, built-in or plugin. The registry knows providers only through this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config
    from .errors import ProviderError
    from .spec import ModelSpec


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, checked before a run starts."""

    tools: bool
    context_length: int | None = None
    source: str = ""


class Provider:
    """One LLM provider. Subclass it in one module per provider and register an instance.

    Attributes:
        name: the registry name, also the ``provider:`` prefix of model ids.
        default_model: the model used when none is named (usually ``config.DEFAULT_MODELS[name]``).
    """

    name: str = ""
    default_model: str = ""

    def base_url(self, cfg: Config) -> str | None:
        """The base URL for this provider under ``cfg`` (None: the SDK's public default)."""
        return cfg.llm.base_url if cfg.llm.provider == self.name else None

    def native_params(self, common: dict[str, Any]) -> dict[str, Any]:
        """Translate common parameters (max_tokens, temperature, top_p, stop, num_ctx); raise on unsupported."""
        raise NotImplementedError

    def build(self, spec: ModelSpec, cfg: Config) -> BaseChatModel:
        """Build the LangChain chat model; the key comes from ``cfg``, never from ``spec``."""
        raise NotImplementedError

    def classify(self, exc: BaseException, spec: ModelSpec) -> ProviderError | None:
        """Map an SDK/HTTP exception to a ProviderError (retryable or not), or None if not ours."""
        return None

    def capabilities(self, spec: ModelSpec, cfg: Config) -> Capabilities:
        """Tool calling and context length of ``spec``'s model."""
        return Capabilities(tools=True)
