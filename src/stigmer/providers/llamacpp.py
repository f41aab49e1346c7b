"""The ``llamacpp`` provider: the embedded llama.cpp server (OpenAI-compatible) on loopback.

Same transport as :mod:`stigmer.providers.openai` (``ChatOpenAI``), with ``max_tokens`` sent in
the body (the server ignores ``max_completion_tokens``) and no key. The model id is a bundled one
(``smollm2-135m``, the default, or ``gemma3-270m``) or an absolute path to a ``.gguf`` file; see
:mod:`.embedded` for what the bundled models can and cannot do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.keys import DEFAULT_LLAMACPP_URL, DEFAULT_MODELS
from . import _classify
from . import errors as pe
from ._openai_compatible import build_chat_openai
from .base import Capabilities, Provider
from .names import BUNDLED_MODEL, BUNDLED_MODELS, GEMMA_MODEL
from .pricing import LOCAL, Price
from .spec import ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config


BUNDLED_BASE_REPLY_CAP = 1024


class LlamaCppProvider(Provider):
    name = "llamacpp"
    default_model = DEFAULT_MODELS["llamacpp"]
    tool_models = (BUNDLED_MODEL,)

    def base_url(self, cfg: Config) -> str | None:
        if cfg.llm.provider == self.name and cfg.llm.base_url:
            return cfg.llm.base_url
        return DEFAULT_LLAMACPP_URL

    def normalize_model(self, model: str) -> str:
        if model.lower().endswith(".gguf"):
            return str(Path(model).expanduser().resolve())
        return model

    def max_output_tokens(self, model: str) -> int | None:
        # The bundled *base* model never emits an end-of-turn by itself: without a cap a reply runs to the
        # budget (8192 tokens, ~90 s here). 1024 keeps a babbling reply short; any other GGUF is not capped.
        return BUNDLED_BASE_REPLY_CAP if model == GEMMA_MODEL else None

    def default_temperature(self, model: str) -> float | None:
        """The bundled models decode greedily: sampling (the server's default is 0.8) makes a 135M model wander, and
        picks a different tool on every run (measured: ``list_files`` 3 times in 4 for "Write a haiku to haiku.txt",
        ``write_file`` at 0)."""
        return 0.0 if model in BUNDLED_MODELS else None

    def build(self, spec: ModelSpec, cfg: Config) -> BaseChatModel:
        return build_chat_openai(spec, None, compatible_server=True)

    def capabilities(self, spec: ModelSpec, cfg: Config) -> Capabilities:
        from .embedded import served_models

        base_url = spec.base_url or DEFAULT_LLAMACPP_URL
        served = served_models(base_url)
        if served is None:
            raise pe.server_unreachable(self.name, base_url)
        if spec.model not in served:
            raise pe.ProviderError(
                f"the embedded server at {base_url} serves {', '.join(served) or 'nothing'}, not {spec.model!r}",
                retryable=False, kind="model_not_found",
                hint=f"restart the stack with that model: stigmer local start --llm-model {spec.model}")
        # llama-cpp-python's server turns a reply into a tool call only when tool_choice names the function, for any
        # model: with "auto" the model answers in text. Its JSON-schema grammar makes emulated calls reliable instead.
        what = "bundled model" if spec.model in BUNDLED_MODELS else "GGUF model"
        return Capabilities(tools=True, context_length=cfg.llm.num_ctx, forced_tools_only=True, constrained=True,
                            source=f"llama.cpp server ({what})")

    def one_call_per_turn(self, spec: ModelSpec) -> bool:
        """The bundled models (135M/270M parameters) never pick a tool when they may answer, then repeat it."""
        return spec.model in BUNDLED_MODELS

    def constrain(self, model: BaseChatModel, schema: dict[str, Any]) -> Any:
        """llama-cpp-python's ``response_format`` with a schema: a grammar, so the reply is JSON valid against it.

        Sent in ``extra_body`` (merged with the ``max_tokens`` already there): a ``response_format`` argument would
        make LangChain stream through the OpenAI SDK's parsing helper, which wants OpenAI's own schema format.
        """
        extra = dict(getattr(model, "extra_body", None) or {})
        extra["response_format"] = {"type": "json_object", "schema": schema}
        return model.bind(extra_body=extra)

    def price(self, spec: ModelSpec) -> Price:
        """The embedded server runs on this machine: no price per token."""
        return LOCAL

    def classify(self, exc: BaseException, spec: ModelSpec) -> pe.ProviderError | None:
        return _classify.generic(exc, spec, pe.server_unreachable(self.name, spec.base_url or DEFAULT_LLAMACPP_URL))


def register(registry: object) -> None:
    registry.register(LlamaCppProvider())  # type: ignore[attr-defined]
