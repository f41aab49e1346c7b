"""The resolved configuration: every value with its source, and typed views of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import envvars as ev
from .keys import KEYS, SECRET_KEYS
from .masking import mask

SOURCES = ("flag", "env", "file", "detected", "default")


@dataclass(frozen=True)
class Resolved:
    """One resolved value and where it came from.

    Attributes:
        value: the typed value (None when unset).
        source: ``flag``, ``env``, ``file``, ``default`` or ``detected``.
        origin: the flag, the variable name, the file path (with line), or the detection reason.
    """

    value: Any
    source: str
    origin: str


@dataclass(frozen=True)
class LlmSettings:
    provider: str | None
    model: str | None
    base_url: str | None
    api_key: str | None
    max_tokens: int | None
    temperature: float | None
    num_ctx: int


@dataclass(frozen=True)
class TlsSettings:
    enabled: bool
    client_cert: str | None
    client_key: str | None
    server_ca: str | None
    server_name: str | None


@dataclass(frozen=True)
class TemporalSettings:
    managed: bool
    address: str
    namespace: str
    api_key: str | None
    port: int
    ui_port: int
    tls: TlsSettings


@dataclass(frozen=True)
class BlobSettings:
    """The claim-check blob store: its URL (empty: ``home/blobs``), the size threshold, an S3 endpoint."""

    url: str
    threshold: int
    s3_endpoint: str | None


@dataclass(frozen=True)
class Config:
    """Everything resolved, once. Frozen: pass it around, never patch it.

    Attributes:
        items: every dotted key to its :class:`Resolved` value.
        aliases: user-defined model aliases from the config file.
        pricing: prices from ``pricing:`` in the config file: model id or ``provider:model`` to USD per million
            tokens (``input``, ``output``, optional ``cached``, ``cache_write``); they override the provider's table.
        warnings: things worth telling the person (unknown keys, a key on the command line).
        provider_error: why no LLM provider could be chosen, when none could.
        provider_keys: API keys found for providers other than the active one (by provider).
    """

    items: Mapping[str, Resolved]
    aliases: Mapping[str, str] = field(default_factory=dict)
    pricing: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    provider_error: str | None = None
    provider_keys: Mapping[str, str] = field(default_factory=dict)

    def value(self, key: str) -> Any:
        return self.items[key].value

    @property
    def home(self) -> Path:
        return Path(self.value("home"))

    @property
    def config_path(self) -> Path:
        return self.home / "config.yaml"

    def path(self, name: str) -> Path:
        """A directory under home: ``run``, ``logs``, ``data``, ``models``, ``workspaces``, ``temporal``."""
        return self.home / name

    @property
    def llm(self) -> LlmSettings:
        v = self.value
        return LlmSettings(v("llm.provider"), v("llm.model"), v("llm.base_url"), v("llm.api_key"),
                           v("llm.max_tokens"), v("llm.temperature"), v("llm.num_ctx"))

    @property
    def temporal(self) -> TemporalSettings:
        v = self.value
        tls = TlsSettings(v("temporal.tls.enabled"), v("temporal.tls.client_cert"), v("temporal.tls.client_key"),
                          v("temporal.tls.server_ca"), v("temporal.tls.server_name"))
        return TemporalSettings(v("temporal.managed"), v("temporal.address"), v("temporal.namespace"),
                                v("temporal.api_key"), v("temporal.port"), v("temporal.ui_port"), tls)

    @property
    def blobs(self) -> BlobSettings:
        v = self.value
        return BlobSettings(v("blobs.url") or "", int(v("blobs.threshold")), v("blobs.s3_endpoint") or None)

    def require_provider(self) -> str:
        """The active provider, or a ConfigError naming every way to get one."""
        provider = self.value("llm.provider")
        if provider is None:
            raise ConfigError(self.provider_error or "no LLM provider is configured")
        return str(provider)

    def api_key_for(self, provider: str) -> str | None:
        """The key for ``provider``: the resolved ``llm.api_key`` for the active one, else its own variable."""
        if provider == self.value("llm.provider") and self.value("llm.api_key"):
            return str(self.value("llm.api_key"))
        return self.provider_keys.get(provider)

    def shown(self) -> dict[str, dict[str, Any]]:
        """Every key as ``{value, source, origin}``, secrets masked: what ``config show`` prints."""
        out: dict[str, dict[str, Any]] = {}
        for key in KEYS:
            item = self.items[key]
            spec = KEYS[key]
            value = spec.show(item.value) if spec.show else mask(item.value) if key in SECRET_KEYS else item.value
            if isinstance(value, tuple):
                value = list(value)
            out[key] = {"value": value, "source": item.source, "origin": item.origin}
        return out

    def to_env(self) -> dict[str, str]:
        """Environment for a child process that makes it resolve exactly this configuration.

        Secrets travel here and only here (never argv). The child's own resolve() reads these.
        """
        env: dict[str, str] = {}
        for key, spec in KEYS.items():
            value = self.items[key].value
            if value is None or not spec.env:
                continue
            if isinstance(value, bool):
                env[spec.env[0]] = "true" if value else "false"
            elif isinstance(value, tuple):
                env[spec.env[0]] = ",".join(value)
            else:
                env[spec.env[0]] = str(value)
        env[ev.HOME] = str(self.home)
        for provider, var in (("anthropic", ev.ANTHROPIC_API_KEY), ("openai", ev.OPENAI_API_KEY)):
            secret = self.api_key_for(provider)
            if secret:
                env[var] = secret
        return env
