"""The shape every provider has, built-in or plugin. The registry knows providers only through this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config
    from .errors import ProviderError
    from .pricing import Price
    from .spec import ModelSpec


T = TypeVar("T")


def by_prefix(table: Mapping[str, T], model: str) -> T | None:
    """The entry of the longest key of ``table`` that starts ``model`` (case-insensitive): model families."""
    matches = [prefix for prefix in table if model.lower().startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, checked before a run starts."""

    tools: bool
    context_length: int | None = None
    source: str = ""
    forced_tools_only: bool = False
    """True when tool calls work only with a forced ``tool_choice`` (llama-cpp-python's server)."""
    constrained: bool = False
    """The server can constrain a reply to a JSON schema (:meth:`Provider.constrain`): tool calls can be emulated."""


class Provider:
    """One LLM provider. Subclass it in one module per provider and register an instance.

    Attributes:
        name: the registry name, also the ``provider:`` prefix of model ids.
        default_model: the model used when none is named (usually ``config.DEFAULT_MODELS[name]``).
    """

    name: str = ""
    default_model: str = ""
    accepts: tuple[str, ...] = ("max_tokens", "temperature", "top_p", "stop")
    """The common parameters this provider takes; resolve_model() rejects any other one by name."""
    tool_models: tuple[str, ...] = ()
    """Models of this provider known to call tools: suggested when a model cannot."""

    def base_url(self, cfg: Config) -> str | None:
        """The base URL for this provider under ``cfg`` (None: the SDK's public default)."""
        return cfg.llm.base_url if cfg.llm.provider == self.name else None

    def normalize_model(self, model: str) -> str:
        """The full model id for a name the person typed (e.g. a GGUF path made absolute)."""
        return model

    def native_params(self, common: dict[str, Any]) -> dict[str, Any]:
        """Translate common parameters (max_tokens, temperature, top_p, stop, num_ctx); raise on unsupported.

        The default keeps the common names, which suits LangChain chat models that take them as-is.
        """
        from ._params import unsupported

        for key in common:
            if key not in self.accepts:
                why = ("its context window is fixed by the model or the server, not per request" if key == "num_ctx"
                       else f"it takes {', '.join(self.accepts)}")
                raise unsupported(self.name, key, why)
        return dict(common)

    def max_output_tokens(self, model: str) -> int | None:
        """The model's own limit on reply tokens, when this provider knows it (the default budget is capped there)."""
        return None

    def default_temperature(self, model: str) -> float | None:
        """The temperature ``model`` runs at when ``llm.temperature`` is unset (None: the server's own default)."""
        return None

    def build(self, spec: ModelSpec, cfg: Config) -> BaseChatModel:
        """Build the LangChain chat model; the key comes from ``cfg``, never from ``spec``."""
        raise NotImplementedError

    def classify(self, exc: BaseException, spec: ModelSpec) -> ProviderError | None:
        """Map an SDK/HTTP exception to a ProviderError (retryable or not), or None if not ours."""
        return None

    def alternatives(self, spec: ModelSpec, cfg: Config) -> list[str]:
        """Models to suggest when ``spec``'s model cannot call tools (default: :attr:`tool_models`)."""
        return list(self.tool_models)

    def capabilities(self, spec: ModelSpec, cfg: Config) -> Capabilities:
        """Tool calling and context length of ``spec``'s model."""
        return Capabilities(tools=True)

    def constrain(self, model: BaseChatModel, schema: dict[str, Any]) -> Any:
        """``model`` with every reply constrained to JSON valid against ``schema``, or None when the server cannot.

        Emulated tool calls (``worker/_toolemu.py``) rest on this: the server's grammar, not the model's judgement,
        guarantees a well-formed call. The default is None (no emulation on this provider).
        """
        return None

    def one_call_per_turn(self, spec: ModelSpec) -> bool:
        """Whether an emulated turn of ``spec``'s model is exactly one tool call, then the answer.

        For models too small to choose by themselves (the bundled ones): offered the choice, they answer in text
        and never use a tool; after a tool's result they repeat the same call until the loop guard stops the run.
        Static per model, so every runner decides alike.
        """
        return False

    def price(self, spec: ModelSpec) -> Price | None:
        """The price per million tokens of ``spec``'s model, or None when this provider does not know it.

        A cloud provider looks the model up in its table; a provider of models that run on the person's
        own machine returns ``pricing.LOCAL``. The default is None: a price is never guessed as 0.
        ``pricing:`` in config.yaml wins over this hook (see :func:`stigmer.providers.pricing.price_of`).
        """
        return None
