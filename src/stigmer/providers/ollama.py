"""The ``ollama`` provider: ``ChatOllama`` on Ollama's native API.

Three choices that matter: the base URL is always passed explicitly (an environment-only URL has
been ignored by async calls); ``num_ctx`` is fixed from ``llm.num_ctx`` (Ollama's own default
silently truncates long prompts, and a different value per request reloads the model); and
``keep_alive`` keeps the model loaded between an agent's steps.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..config import envvars as ev
from ..config.detect import normalize_ollama_host
from ..config.keys import DEFAULT_MODELS, DEFAULT_OLLAMA_URL
from . import _classify, ollama_api
from . import errors as pe
from .base import Capabilities, Provider
from .pricing import LOCAL, Price
from .spec import ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config

KEEP_ALIVE = "30m"
_CACHE_SIZE = 16
_MAX_PROBED = 10
_BUILT: OrderedDict[tuple[Any, ...], BaseChatModel] = OrderedDict()
TOOL_MODELS = ("qwen2.5-coder:7b", "llama3.2:3b", "qwen3:8b", "mistral-nemo")


class OllamaProvider(Provider):
    name = "ollama"
    default_model = DEFAULT_MODELS["ollama"]
    accepts = ("max_tokens", "temperature", "top_p", "stop", "num_ctx")
    tool_models = TOOL_MODELS

    def base_url(self, cfg: Config) -> str | None:
        """The configured URL when Ollama is the active provider, else Ollama's own variables, else its default."""
        if cfg.llm.provider == self.name and cfg.llm.base_url:
            return cfg.llm.base_url
        for name in (ev.OLLAMA_BASE_URL, ev.OLLAMA_HOST):
            if os.environ.get(name):
                return normalize_ollama_host(os.environ[name])
        return DEFAULT_OLLAMA_URL

    def native_params(self, common: dict[str, Any]) -> dict[str, Any]:
        native = super().native_params(common)
        if "max_tokens" in native:
            native["num_predict"] = native.pop("max_tokens")
        return native

    def build(self, spec: ModelSpec, cfg: Config) -> BaseChatModel:
        """Build ``ChatOllama``, reusing one per (spec, event loop): each costs ~50 ms of HTTP client setup.

        The event loop is part of the key because the async client's pooled connections belong to the
        loop that opened them; no key is involved (Ollama has none), so sharing leaks nothing.
        """
        from langchain_ollama import ChatOllama

        params = {"num_ctx": cfg.llm.num_ctx, **spec.params}
        key = (spec.model, spec.base_url, json.dumps(params, sort_keys=True, default=str), _loop_id())
        model = _BUILT.get(key)
        if model is None:
            model = ChatOllama(model=spec.model, base_url=spec.base_url or DEFAULT_OLLAMA_URL, keep_alive=KEEP_ALIVE,
                               **params)
            _BUILT[key] = model
            while len(_BUILT) > _CACHE_SIZE:
                _BUILT.popitem(last=False)
        return model

    def capabilities(self, spec: ModelSpec, cfg: Config) -> Capabilities:
        info = ollama_api.show(spec.base_url or DEFAULT_OLLAMA_URL, spec.model)
        return Capabilities(tools=ollama_api.supports_tools(info), context_length=ollama_api.context_length(info),
                            source="Ollama /api/show", constrained=True)

    def constrain(self, model: BaseChatModel, schema: dict[str, Any]) -> Any:
        """Ollama's ``format`` with a JSON schema (structured outputs): the reply is JSON valid against it."""
        return model.bind(format=schema)

    def price(self, spec: ModelSpec) -> Price:
        """Models Ollama serves run on hardware the person runs (here or on their own server): no price per token."""
        return LOCAL

    def alternatives(self, spec: ModelSpec, cfg: Config) -> list[str]:
        """Pulled models that call tools first (they work right now), then well-known ones to pull."""
        base_url = spec.base_url or DEFAULT_OLLAMA_URL
        local: list[str] = []
        try:
            for model in ollama_api.tags(base_url)[:_MAX_PROBED]:
                if model.name != spec.model and ollama_api.supports_tools(ollama_api.show(base_url, model.name)):
                    local.append(model.name)
        except pe.ProviderError:
            pass
        return local + [m for m in self.tool_models if m not in local]

    def classify(self, exc: BaseException, spec: ModelSpec) -> pe.ProviderError | None:
        for item in _classify.chain(exc):
            text = str(getattr(item, "error", "") or item).lower()
            if "does not support tools" in text:
                return pe.no_tools(self.name, spec.model, list(self.tool_models))
            if "not found" in text and "model" in text:
                return pe.model_not_pulled(spec.model)
        return _classify.generic(exc, spec, pe.ollama_unreachable(spec.base_url or DEFAULT_OLLAMA_URL))


def _loop_id() -> int | None:
    try:
        return id(asyncio.get_running_loop())
    except RuntimeError:
        return None


def register(registry: object) -> None:
    registry.register(OllamaProvider())  # type: ignore[attr-defined]
