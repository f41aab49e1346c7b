"""``stigmer secret set|list|delete``: the values MCP servers may be given, in ``$STIGMER_HOME/secrets.json``.

An McpServer's ``env``/``headers`` reference an entry as ``${NAME}`` or ``{valueFrom: {secret: NAME}}``;
the runner fills it in when it starts the server, so the value never enters the database, the
workflow history, events or logs. Values are read from a hidden prompt or from stdin (``-``), never
from the command line, where ``ps`` and the shell history would keep them. Stigmer's own keys are
not stored here: they are configured with ``stigmer config`` and are never handed to MCP servers.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import UserError


def _store() -> Any:
    from ..config.secret_store import SecretStore
    from ._client import home_dir

    return SecretStore(home_dir())


def _read_stdin(name: str) -> str:
    value = sys.stdin.read()
    if value.endswith("\n"):  # what `echo` and a file's last line add; anything else is kept as given
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    if not value:
        raise UserError(f"nothing was read from stdin for {name}: nothing was stored",
                        hint=f"pipe the value in: `stigmer secret set {name} - < token.txt`")
    return value


def _prompt(name: str) -> str:
    if not sys.stdin.isatty():
        raise UserError(f"no terminal to prompt on for {name}'s value: nothing was stored",
                        hint=f"pipe the value in and say so with `-`: `stigmer secret set {name} - < token.txt`")
    value = click.prompt(f"Value for {name} (hidden)", hide_input=True, default="", show_default=False)
    if not value:
        raise UserError(f"no value typed for {name}: nothing was stored", hint="run the command again")
    return str(value)


@click.group()
def secret() -> None:
    """Store values that MCP servers may reference (never stigmer's own keys).

    \b
    An McpServer refers to a stored value as ${NAME} (in a string) or as {valueFrom: {secret: NAME}}:
      env:
        GITHUB_TOKEN: {valueFrom: {secret: GITHUB_TOKEN}}
    The store is $STIGMER_HOME/secrets.json (mode 0600), read by the runners of this home.
    Examples:
      stigmer secret set GITHUB_TOKEN               # prompts, nothing echoed
      stigmer secret set GITHUB_TOKEN - < token.txt # or from stdin
      stigmer secret list
      stigmer secret delete GITHUB_TOKEN
    """


@secret.command("set")
@click.argument("name")
@click.argument("source", required=False, metavar="[-]")
def set_secret(name: str, source: str | None) -> None:
    """Store NAME's value, typed at a hidden prompt, or read from stdin with `-`."""
    from ..config.secret_store import check_name

    if source not in (None, "-"):
        raise UserError("a value on the command line is visible to every user in `ps` and stays in your shell "
                        "history: nothing was stored",
                        hint=f"run `stigmer secret set {name}` and paste the value at the hidden prompt, or pipe it: "
                             f"`stigmer secret set {name} - < token.txt`")
    check_name(name)  # before asking for a value that could not be stored
    value = _read_stdin(name) if source == "-" else _prompt(name)
    store = _store()
    created = store.set(name, value)
    click.echo(f"secret {name} {'stored' if created else 'replaced'} ({store.path}, mode 0600)")


@secret.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {name, set_at}.")
def list_secrets(as_json: bool) -> None:
    """The stored names and when each was set (values are never shown)."""
    from .resources import age, table

    store = _store()
    names = store.names()
    if as_json:
        click.echo(json.dumps([{"name": name, "set_at": when} for name, when in names.items()], indent=2))
    elif not names:
        click.echo(f"no secrets stored (in {store.path}); add one with `stigmer secret set NAME`", err=True)
    else:
        table(["NAME", "SET"], [[name, f"{age(when)} ago"] for name, when in names.items()])


@secret.command("delete")
@click.argument("name")
def delete_secret(name: str) -> None:
    """Remove NAME from the store (MCP servers referencing it will then fail to start, saying so)."""
    from ..config._suggest import did_you_mean

    store = _store()
    if not store.delete(name):
        raise UserError(f"no secret named {name!r}{did_you_mean(name, list(store.names()))}",
                        hint="list them with `stigmer secret list`")
    click.echo(f"secret {name} deleted")
