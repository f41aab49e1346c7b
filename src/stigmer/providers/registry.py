"""The provider registry: names to :class:`ModelSpec`, specs to chat models, exceptions to ProviderErrors.

Built-in providers register through :func:`register`, exactly as a plugin does (a module with a
``register(registry)`` function, named in ``STIGMER_PLUGINS="name=module,..."``), so nothing
outside a provider's own module branches on its name.

Resolution of a name, first match wins:

1. an alias: the user's (``aliases:`` in config.yaml), then the built-in ones (``sonnet``, ``llama3.2``...);
2. ``provider:model``, split on the first colon, so ``ollama:qwen2.5-coder:7b`` works;
3. inference from the bare name (``claude*``, ``gpt-*``, ``name:tag``, a local family, ``*.gguf``);
4. otherwise a UserError with a did-you-mean and the ``provider:model`` form.

With no name, the configured ``llm.model`` on the configured ``llm.provider`` is used as-is
(aliases still expand), because the configuration layer already chose that provider.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..config.keys import DEFAULT_MAX_TOKENS, LOCAL_MAX_TOKENS
from ..config.resolve import plugin_providers
from ..errors import ConfigError, UserError
from . import _classify
from . import errors as pe
from ._params import parse_common
from .base import Capabilities, Provider
from .names import BUILTIN_ALIASES, infer_provider, why_inferred
from .spec import ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from ..config import Config
    from .toolmode import ToolMode

BUILTIN_MODULES = ("stigmer.providers.anthropic", "stigmer.providers.ollama", "stigmer.providers.openai",
                   "stigmer.providers.llamacpp")

_providers: dict[str, Provider] = {}
_loaded_plugins: set[str] = set()
_builtins_loaded = False


def register(provider: Provider) -> None:
    """Add (or replace) a provider under ``provider.name``. Plugins call this from their ``register(registry)``."""
    if not provider.name:
        raise ValueError("a provider needs a name")
    _providers[provider.name.lower()] = provider


def _load_module(module_name: str, origin: str) -> None:
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{origin}: cannot import provider module {module_name!r}: {exc}",
                          hint="fix STIGMER_PLUGINS (name=module,...) or install the plugin's package") from None
    hook = getattr(module, "register", None)
    if not callable(hook):
        raise ConfigError(f"{origin}: provider module {module_name!r} has no register(registry) function",
                          hint="add `def register(registry): registry.register(MyProvider())` to it")
    hook(sys.modules[__name__])


def _ensure_loaded(env: Mapping[str, str] | None = None) -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module_name in BUILTIN_MODULES:
            _load_module(module_name, "built-in providers")
    for name, module_name in plugin_providers(os.environ if env is None else env).items():
        if name not in _loaded_plugins:
            _load_module(module_name, f"STIGMER_PLUGINS ({name}={module_name})")
            _loaded_plugins.add(name)


def provider_names() -> list[str]:
    """Every registered provider name, built-in first."""
    _ensure_loaded()
    return list(_providers)


def get_provider(name: str) -> Provider:
    """The provider registered as ``name``; an unknown name is a UserError with a suggestion."""
    _ensure_loaded()
    provider = _providers.get(name.strip().lower())
    if provider is None:
        from ..config._suggest import did_you_mean

        raise UserError(f"unknown LLM provider {name!r}{did_you_mean(name.lower(), _providers)}",
                        hint=f"use one of {', '.join(_providers)} (plugins: STIGMER_PLUGINS=name=module)")
    return provider


def _aliases(cfg: Config | None) -> dict[str, str]:
    merged = dict(BUILTIN_ALIASES)
    if cfg is not None:
        merged.update({k.lower(): v for k, v in cfg.aliases.items()})
    return merged


def _split(name: str) -> tuple[str | None, str]:
    prefix, sep, rest = name.partition(":")
    if sep and prefix.strip().lower() in _providers:
        return prefix.strip().lower(), rest.strip()
    return None, name


def _parse(name: str, cfg: Config | None, configured: str | None) -> tuple[str, str, str]:
    """(provider, model, reason) for a name, following aliases (bounded, so a cycle cannot hang)."""
    aliases = _aliases(cfg)
    user = {k.lower() for k in cfg.aliases} if cfg is not None else set()
    reasons: list[str] = []
    current = name.strip()
    for _ in range(8):
        provider, model = _split(current)
        key = model.lower()
        bound = provider or configured
        if key in aliases and aliases[key] != current and (bound is None or _alias_fits(aliases[key], bound)):
            kind = "user alias (config.yaml)" if key in user else "built-in alias"
            reasons.append(f"{kind} {model!r} -> {aliases[key]!r}")
            current = aliases[key]
            continue
        if provider is not None:
            return provider, model, "; ".join(reasons or [f"provider prefix {provider!r}"])
        if configured is not None:
            return configured, model, "; ".join([*reasons, f"configured provider {configured!r}"])
        inferred = infer_provider(model)
        if inferred is not None:
            return inferred, model, "; ".join([*reasons, why_inferred(model)])
        raise _unknown(name, aliases)
    raise UserError(f"model alias {name!r} loops", hint="fix `aliases:` in config.yaml")


def _alias_fits(target: str, provider: str) -> bool:
    prefix, sep, _ = target.partition(":")
    return not sep or prefix.lower() == provider or prefix.lower() not in _providers


def _unknown(name: str, aliases: Mapping[str, str]) -> UserError:
    from ..config._suggest import did_you_mean

    known = [*aliases, *(f"{p}:" for p in _providers)]
    return UserError(f"unknown model {name!r}: cannot tell which provider serves it{did_you_mean(name.lower(), known)}",
                     hint=f"write it as provider:model, e.g. ollama:{name} or openai:{name} "
                          f"(providers: {', '.join(_providers)})")


def _default_params(provider: Provider, model: str, cfg: Config | None) -> dict[str, Any]:
    if cfg is None:
        return {}
    max_tokens = cfg.llm.max_tokens or DEFAULT_MAX_TOKENS.get(provider.name, LOCAL_MAX_TOKENS)
    limit = provider.max_output_tokens(model)
    if limit is not None:
        max_tokens = min(max_tokens, limit)
    temperature = cfg.llm.temperature if cfg.llm.temperature is not None else provider.default_temperature(model)
    defaults = {"max_tokens": max_tokens, "temperature": temperature, "num_ctx": cfg.llm.num_ctx}
    return {k: v for k, v in defaults.items() if k in provider.accepts and v is not None}


def resolve_model(cfg: Config, name: str | None = None, params: Mapping[str, Any] | None = None) -> ModelSpec:
    """What ``name`` (default: the configured model) resolves to, with provider-native parameters.

    Args:
        cfg: the resolved configuration (aliases, base URLs, default parameters).
        name: a model name, alias, ``provider:model`` id or ``.gguf`` path; None for ``llm.model``.
        params: common parameters (``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``num_ctx``)
            overriding the configured ones; strings are parsed (``--param temperature=0.5``).
    """
    _ensure_loaded()
    if name is None or not name.strip():
        configured = cfg.require_provider()
        model_name = cfg.llm.model or get_provider(configured).default_model
        item = cfg.items.get("llm.model")
        provider_name, model, reason = _parse(model_name, cfg, configured)
        origin = f"llm.model from {item.origin}" if item is not None else "llm.model"
        reason = f"{origin}; {reason}"
    else:
        provider_name, model, reason = _parse(name, cfg, None)
    provider = get_provider(provider_name)
    model = provider.normalize_model(model or provider.default_model)
    common = {**_default_params(provider, model, cfg), **parse_common(params or {})}
    native = provider.native_params(common)
    return ModelSpec(provider=provider.name, model=model, base_url=provider.base_url(cfg), params=native,
                     reason=reason)


def get_chat_model(spec: ModelSpec, cfg: Config) -> BaseChatModel:
    """The LangChain chat model for ``spec``; the API key comes from ``cfg`` (the worker's own settings)."""
    return get_provider(spec.provider).build(spec, cfg)


def classify_error(exc: BaseException, spec: ModelSpec | None = None) -> pe.ProviderError:
    """Turn anything a chat model raised into a ProviderError that says what to do and whether to retry.

    Pass the spec whenever it is known: the provider's own rules (Ollama's "does not support
    tools", the server it could not reach) and the model's name make the message actionable.
    """
    if isinstance(exc, pe.ProviderError):
        return exc
    if spec is None:
        spec = ModelSpec(provider="llm", model="?")
        return _classify.generic(exc, spec, pe.server_unreachable("LLM", "its configured address"))
    provider = get_provider(spec.provider)
    mapped = provider.classify(exc, spec)
    if mapped is not None:
        return mapped
    return _classify.generic(exc, spec, pe.server_unreachable(spec.provider, spec.base_url or "its public API"))


def preflight(spec: ModelSpec, cfg: Config, needs_tools: bool, tool_calls: str = "auto") -> Capabilities:
    """Check, before a run starts, that ``spec`` can serve it: reachable, pulled, keyed, tools if needed.

    Tools are there when the model calls them natively or they can be emulated (:func:`tool_mode`, with the
    agent's ``tool_calls`` setting); a mode forced to ``none`` is the person's choice, not an error.
    """
    provider = get_provider(spec.provider)
    try:
        caps = provider.capabilities(spec, cfg)
    except pe.ProviderError:
        raise
    except Exception as exc:
        raise classify_error(exc, spec) from None
    if needs_tools:
        mode = tool_mode(spec, cfg, caps, tool_calls)
        if mode.mode == "none" and not mode.forced:
            raise pe.no_tools(spec.provider, spec.model, provider.alternatives(spec, cfg))
    return caps


def tool_mode(spec: ModelSpec, cfg: Config, caps: Capabilities, agent: str = "auto") -> ToolMode:
    """How ``spec``'s model calls tools under ``cfg`` (``llm.tool_calls``) and the agent's setting; see ``toolmode``."""
    from .toolmode import decide

    item = cfg.items.get("llm.tool_calls")
    configured = str(item.value) if item is not None and item.value else "auto"
    origin = f"{item.source}: {item.origin}" if item is not None else ""
    mode = decide(caps, agent=agent or "auto", configured=configured, configured_origin=origin)
    if mode.mode == "emulated" and one_call_per_turn(spec):
        return dataclasses.replace(mode, why=f"{mode.why}; for this model a turn is one tool call, then the answer "
                                             "(it never picks a tool when it may answer, and repeats its call)")
    return mode


def with_tool_mode(spec: ModelSpec, mode: ToolMode) -> ModelSpec:
    """``spec`` with its tool-call mode pinned (what the runner's model calls then use)."""
    return dataclasses.replace(spec, tool_calls=mode.mode)


def one_call_per_turn(spec: ModelSpec) -> bool:
    """Whether an emulated turn of ``spec``'s model is one tool call, then the answer (see ``Provider``)."""
    return get_provider(spec.provider).one_call_per_turn(spec)


def constrain(spec: ModelSpec, model: BaseChatModel, schema: dict[str, Any]) -> Any:
    """``model`` (built for ``spec``) with its replies constrained to ``schema``, or None when its provider cannot."""
    return get_provider(spec.provider).constrain(model, schema)


async def apreflight(spec: ModelSpec, cfg: Config, needs_tools: bool, tool_calls: str = "auto") -> Capabilities:
    """:func:`preflight` from async code (a runner activity), off the event loop: it does blocking HTTP."""
    import asyncio

    return await asyncio.to_thread(preflight, spec, cfg, needs_tools, tool_calls)
