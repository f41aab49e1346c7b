"""``stigmer token create|list|revoke``: named API tokens for people and machines, each with a role.

``admin`` may do everything, ``viewer`` may only read (the ``GET`` routes), ``runner`` may only post execution
events. The daemon stores a token's hash, never the token: ``create`` shows it once (or writes it to a 0600
file with ``--out``, so it never reaches the terminal). A request with a revoked or expired token is refused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from ._options import duration_seconds

ROLES = ("admin", "viewer", "runner")


def _when(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (admin, viewer or runner).

    \b
    Examples:
      stigmer token create --name ci --role viewer --expires 30d --out ci.token
      stigmer token list
      stigmer token revoke ci
    """


@token.command()
@click.option("--name", required=True, help="A unique name (letters, digits, . _ -), shown by `token list`.")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="admin: everything; viewer: read only; runner: post execution events only.")
@click.option("--expires", "expires", callback=duration_seconds, default=None, metavar="DURATION",
              help="Refuse the token after DURATION: 12h, 30d, 2w (default: valid until revoked).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the token to this new file (mode 0600) instead of printing it.")
@click.option("--json", "as_json", is_flag=True, help="Print the token's record (and the token, unless --out) as JSON.")
def create(name: str, role: str, expires: float | None, out: Path | None, as_json: bool) -> None:
    """Make a token. It is shown once: the daemon keeps only its hash."""
    if out is not None and out.exists():
        raise UserError(f"--out {out} exists already: nothing was created", hint="name a new file")
    with _client() as client:
        record = client.post("/v1/tokens", {"name": name, "role": role, "expires_in": expires})
    secret = record.pop("token")
    if out is not None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
    if as_json:
        click.echo(json.dumps(record if out is not None else {**record, "token": secret}, indent=2))
        return
    if out is None:
        click.echo(secret)
    where = f"written to {out} (0600)" if out is not None else "shown once above: keep it in a file only you can read"
    click.echo(f"created {role} token {name!r}, {where}; expires {_when(record.get('expires_at'))}", err=True)


@token.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def list_(as_json: bool) -> None:
    """The tokens, active or not (never their secrets)."""
    with _client() as client:
        items: list[dict[str, Any]] = client.get("/v1/tokens")["items"]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("no tokens (make one with `stigmer token create`)", err=True)
        return
    from .resources import table

    table(["NAME", "ROLE", "STATE", "CREATED", "EXPIRES", "LAST USED"],
          [[t["name"], t["role"], t["state"], _when(t["created_at"]), _when(t["expires_at"]), _when(t["last_used_at"])]
           for t in items])


@token.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a token at once (for good: its next request is refused)."""
    with _client() as client:
        record = client.delete(f"/v1/tokens/{name}")
    click.echo(f"revoked {record['role']} token {name!r}")


def _client() -> Any:
    from ._client import Client

    return Client.connect()
