"""Options shared by several commands: the configuration flags (``config show``, ``local start``, ``runner``) and
the DURATION parameter (``usage --since``, ``token create --expires``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

# (flag, dotted key, help). --anthropic-key* are handled apart: they carry a secret.
CONFIG_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--llm-provider", "llm.provider", "LLM provider: anthropic, ollama, openai or llamacpp."),
    ("--llm-model", "llm.model", "Model name, alias, provider:model id or path to a .gguf file."),
    ("--llm-base-url", "llm.base_url", "Base URL of the provider's API (e.g. an OpenAI-compatible server)."),
    ("--llm-tool-calls", "llm.tool_calls", "How models call tools: auto, native, emulated (schema-constrained "
     "JSON, for models without native tool calling) or none."),
    ("--temporal-address", "temporal.address", "host:port of an external Temporal server (none is started)."),
    ("--temporal-namespace", "temporal.namespace", "Temporal namespace."),
)


def duration_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A click callback: a DURATION (90s, 15m, 12h, 30d, 2w) as seconds; None when not given."""
    from ..config.durations import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def config_flags(func: F) -> F:
    """Add the configuration flags to a command; read them back with :func:`flags_from`."""
    for flag, _key, help_text in reversed(CONFIG_FLAGS):
        func = click.option(flag, help=help_text, default=None)(func)
    func = click.option("--anthropic-key-file", type=str, default=None,
                        help="Read the Anthropic API key from this file ('-' for stdin).")(func)
    func = click.option("--anthropic-key", default=None, metavar="KEY",
                        help="Anthropic API key. Visible in the process list: prefer ANTHROPIC_API_KEY "
                             "or --anthropic-key-file.")(func)
    return func


def read_key_file(path: str, flag: str = "--anthropic-key-file") -> str:
    """The key in the file ``path`` names (``-``: stdin's first line) for ``flag``; a ConfigError naming both."""
    if path == "-":
        key = sys.stdin.readline().strip()
    else:
        try:
            key = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror or exc}",
                              hint="pass a readable file holding only the key, or '-' to read it from stdin") from None
    if not key:
        raise ConfigError(f"{flag}: {path} is empty", hint="put the key in the file, alone on a line")
    return key


def flags_from(kwargs: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Pop the configuration flags out of a command's kwargs into resolve()'s ``flags`` mapping."""
    flags: dict[str, tuple[Any, str]] = {}
    for flag, key, _help in CONFIG_FLAGS:
        value = kwargs.pop(flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            flags[key] = (value, flag)
    key_value = kwargs.pop("anthropic_key", None)
    key_file = kwargs.pop("anthropic_key_file", None)
    if key_value is not None and key_file is not None:
        raise ConfigError("--anthropic-key and --anthropic-key-file were both given", hint="pass only one")
    if key_value is not None:
        flags["anthropic.api_key"] = (key_value, "--anthropic-key")
    elif key_file is not None:
        flags["anthropic.api_key"] = (read_key_file(key_file), f"--anthropic-key-file {key_file}")
    return flags


def load_config(flags: dict[str, tuple[Any, str]] | None = None, *, quiet: bool = False) -> Any:
    """Resolve the configuration for a command and print its warnings to stderr."""
    from ..config import resolve
    from ..providers.names import infer_provider

    cfg = resolve(flags or {}, infer_provider=infer_provider)
    if not quiet:
        for warning in cfg.warnings:
            click.echo(f"warning: {warning}", err=True)
    return cfg
