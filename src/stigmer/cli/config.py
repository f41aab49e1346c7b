"""``stigmer config``: show, get, set, unset, path."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ConfigError
from ._options import config_flags, flags_from, load_config


@click.group()
def config() -> None:
    """Show and change settings, and where each value comes from.

    \b
    Precedence: flag > environment > $STIGMER_HOME/config.yaml > smart default.
    Examples:
      stigmer config show
      stigmer config show --llm-model llama3.2 --json
      stigmer config set llm.provider ollama
      stigmer config get llm.model
    """


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a price: input=4.0 output=16.0 (USD per million tokens)
        return " ".join(f"{k}={v:g}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


@config.command()
@config_flags
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: key -> {value, source, origin}.")
def show(as_json: bool, **kwargs: Any) -> None:
    """Every setting, its value and where it came from (secrets masked).

    Takes the same flags as `stigmer local start`, so you can preview what a start would use.

    \b
    Examples:
      stigmer config show
      stigmer config show --llm-provider ollama --llm-model llama3.2
      stigmer config show --json | jq '."llm.provider"'
    """
    cfg = load_config(flags_from(kwargs))
    shown = {**cfg.shown(), **_pricing_rows(cfg)}
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    _print_shown(shown)
    if cfg.provider_error:
        click.echo(f"\nnote: {cfg.provider_error}", err=True)


def _print_shown(shown: dict[str, dict[str, Any]]) -> None:
    """A Rich table at a terminal; otherwise one line per key, no header (``| grep llm.`` finds whole rows)."""
    from ._term import is_terminal, table

    if is_terminal():
        table(["KEY", "VALUE", "SOURCE", "ORIGIN"],
              [[key, _fmt(item["value"]), item["source"], item["origin"]] for key, item in shown.items()],
              styles={0: "bold", 2: "cyan"})
        return
    width = max(len(k) for k in shown)
    vwidth = min(40, max(len(_fmt(v["value"])) for v in shown.values()))
    for key, item in shown.items():
        click.echo(f"{key:<{width}}  {_fmt(item['value']):<{vwidth}}  {item['source']:<8}  {item['origin']}")


def _pricing_rows(cfg: Any) -> dict[str, dict[str, Any]]:
    """``pricing:`` entries as rows of their own (USD per million tokens), after the settings."""
    return {f"pricing.{model}": {"value": dict(price), "source": "file", "origin": str(cfg.config_path)}
            for model, price in sorted(cfg.pricing.items())}


def _check_key(key: str) -> None:
    from ..config import KEYS
    from ..config._suggest import did_you_mean

    if key not in KEYS:
        raise ConfigError(f"unknown setting {key!r}{did_you_mean(key, KEYS)}",
                          hint="`stigmer config show` lists every setting")


@config.command()
@click.argument("key")
def get(key: str) -> None:
    """Print one setting's resolved value (secrets masked).

    \b
    Example:
      stigmer config get llm.model
    """
    _check_key(key)
    cfg = load_config()
    click.echo(_fmt(cfg.shown()[key]["value"]))


@config.command(name="set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value", required=False)
def set_(key: str, value: str | None) -> None:
    """Validate and store a setting in config.yaml (the file is kept mode 0600).

    For a secret (llm.api_key, temporal.api_key) leave VALUE out to be asked for it without echo,
    or pass - to read it from stdin: a value on the command line shows in the process list.

    \b
    Examples:
      stigmer config set llm.provider ollama
      stigmer config set llm.temperature 0.7
      stigmer config set temporal.address my-cluster:7233
      stigmer config set llm.api_key                 # asks, without echo
      pass show anthropic | stigmer config set llm.api_key -
    """
    from ..config import KEYS
    from ..config import file as config_file

    _check_key(key)
    literal = KEYS[key].secret and value not in (None, "-")
    value = _secret_value(key, value) if KEYS[key].secret else value
    if value is None:
        raise ConfigError(f"missing VALUE for {key}", hint=f"stigmer config set {key} VALUE")
    if key == "home":
        raise ConfigError("home cannot be set in the file that lives in it", hint="set STIGMER_HOME instead")
    try:
        typed = KEYS[key].parse(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}", hint=f"see `stigmer config show` for the current {key}") from None
    show = KEYS[key].show
    if literal and (show is None or show(typed) != typed):  # warned once valid, and only when it holds a secret
        click.echo(f"warning: {key} on the command line is visible in the process list and shell history; "
                   f"next time run `stigmer config set {key}` and type it, or pipe it to `... {key} -`", err=True)
    cfg = load_config(quiet=True)
    config_file.set_value(cfg.config_path, key, typed)
    shown = show(typed) if show else "(masked)" if KEYS[key].secret else _fmt(typed)
    click.echo(f"{key} = {shown}  (written to {cfg.config_path})")


def _secret_value(key: str, value: str | None) -> str:
    import sys

    if value == "-":
        value = sys.stdin.readline()
    elif value is None:
        value = click.prompt(f"{key}", hide_input=True, default="", show_default=False)
    value = value.strip()
    if not value:
        raise ConfigError(f"{key}: empty value", hint="give the key itself; `stigmer config unset` removes it")
    return value


@config.command()
@click.argument("key")
def unset(key: str) -> None:
    """Remove a setting from config.yaml, so the next source decides.

    \b
    Example:
      stigmer config unset llm.model
    """
    from ..config import file as config_file

    _check_key(key)
    cfg = load_config(quiet=True)
    removed = config_file.unset_value(cfg.config_path, key)
    click.echo(f"{key} removed from {cfg.config_path}" if removed else f"{key} was not set in {cfg.config_path}")


@config.command()
def path() -> None:
    """Print the path of config.yaml."""
    import os

    from ..config.resolve import default_home

    click.echo(str(default_home(os.environ) / "config.yaml"))
