"""``stigmer usage``: the tokens and cost of the executions that ended, summed, optionally grouped."""

from __future__ import annotations

import json
from typing import Any

import click

from ._decide import usage_text
from ._options import duration_seconds
from .resources import table
from .session import cost

GROUPS = ("agent", "model", "session")


def usage_row(by: str, item: dict[str, Any]) -> list[str]:
    key = str(item.get("key") or "-")
    if by == "session" and item.get("name"):
        key = f"{key} ({item['name']})"
    flags = "estimated" if item.get("estimated") else ""
    return [key, str(item.get("executions", 0)), f"{int(item.get('input_tokens') or 0):,}",
            f"{int(item.get('output_tokens') or 0):,}", f"{int(item.get('cached_tokens') or 0):,}", cost(item), flags]


@click.command()
@click.option("--since", "since", callback=duration_seconds, default=None, metavar="DURATION",
              help="Only executions that ended in the last DURATION: 90s, 15m, 12h, 30d, 2w (default: all).")
@click.option("--by", type=click.Choice(GROUPS), default=None, help="One line per agent, model or session.")
@click.option("--json", "as_json", is_flag=True, help="Print the sums as JSON.")
def usage(since: float | None, by: str | None, as_json: bool) -> None:
    """Tokens (in, out, cached) and cost in USD of the executions that ended.

    A cost marked `+` is a lower bound: some model's price is unknown (set it under `pricing:` in
    config.yaml). Local models cost 0.

    \b
    Examples:
      stigmer usage                        # everything, summed
      stigmer usage --since 7d --by agent
      stigmer usage --by model --json
    """
    with _client() as client:
        params: dict[str, Any] = {"since": since, "by": by}
        result = client.get("/v1/usage", **params)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    total = result.get("total") or {}
    if by:
        rows = [usage_row(by, item) for item in result.get("items") or []]
        if rows:
            table([by.upper(), "EXECUTIONS", "IN", "OUT", "CACHED", "COST", ""], rows, right=(1, 2, 3, 4, 5))
            click.echo("")
    count = int(total.get("executions") or 0)
    text = usage_text(total) if count else "nothing used yet"
    click.echo(f"total: {count} execution(s) · {text}")


def _client() -> Any:
    from ._client import Client

    return Client.connect()
