"""``stigmer session list|get|delete``: conversations (sessions), through the daemon.

A session is an ordered list of turns (executions) of one agent whose model calls see every earlier turn;
``get`` shows each turn's message, tool calls, answer and usage, then the session's totals.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ._decide import usage_text
from .resources import age, short_text, table

SESSION_HEADERS = ["ID", "NAME", "AGENT", "STATUS", "TURNS", "TOKENS", "COST", "AGE"]


def _client() -> Any:
    from ._client import Client

    return Client.connect()


def tokens(usage: dict[str, Any] | None) -> str:
    if not usage or usage.get("input_tokens") is None:
        return "-"
    return f"{int(usage['input_tokens']) + int(usage.get('output_tokens') or 0):,}"


def cost(usage: dict[str, Any] | None) -> str:
    if not usage or usage.get("cost_usd") is None:
        return "-" if not usage else "?"
    return f"${float(usage['cost_usd']):.4f}" + ("+" if usage.get("unpriced") else "")


def session_row(item: dict[str, Any]) -> list[str]:
    turns = item.get("turns")
    count = item.get("turn_count", len(turns) if isinstance(turns, list) else turns)
    return [item["id"], item.get("name") or "-", item.get("agent", "?"), item.get("status", "?"), str(count or 0),
            tokens(item.get("usage")), cost(item.get("usage")), age(item.get("last_turn_at") or item.get("created_at"))]


@click.group()
def session() -> None:
    """List, inspect and delete sessions (conversations with an agent).

    \b
    A session is started by `stigmer chat AGENT` or `stigmer run AGENT MSG --session NAME`.
    Examples:
      stigmer session list
      stigmer session get intro          # by name or id: every turn, its tool calls and usage
      stigmer session delete intro
    """


@session.command("list")
@click.option("--agent", default=None, help="Only the sessions of this agent.")
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the sessions as a JSON list.")
def list_sessions(agent: str | None, limit: int, as_json: bool) -> None:
    """List sessions, newest first: name, agent, turns, tokens and cost so far."""
    with _client() as client:
        items = client.get("/v1/sessions", agent=agent, limit=limit)["items"]
    if as_json:
        click.echo(json.dumps(items, indent=2, default=str))
    elif not items:
        click.echo("no sessions yet: start one with `stigmer chat AGENT` or `stigmer run AGENT MSG --session NAME`",
                   err=True)
    else:
        table(SESSION_HEADERS, [session_row(i) for i in items])


@session.command("get")
@click.argument("ref", metavar="SESSION")
@click.option("--json", "as_json", is_flag=True, help="Print the session and its turns as JSON.")
def get_session(ref: str, as_json: bool) -> None:
    """Show SESSION (an id or a name): each turn's message, tool calls, answer and usage, then the totals."""
    with _client() as client:
        item = client.get(f"/v1/sessions/{ref}")
    if as_json:
        click.echo(json.dumps(item, indent=2, default=str))
        return
    model = item.get("model") or {}
    pinned = f"{model.get('provider')}:{model.get('model')}"
    for label, value in (("ID", item["id"]), ("Name", item.get("name") or "-"), ("Agent", item.get("agent")),
                         ("Status", item.get("status", "?")), ("Model", pinned),
                         ("Started", f"{age(item.get('created_at'))} ago")):
        click.echo(f"{label + ':':<9}{value}")
    for turn in item.get("turns") or []:
        _show_turn(turn)
    click.echo("")
    click.echo(f"Total:   {len(item.get('turns') or [])} turn(s) · {usage_text(item.get('usage')) or 'no usage yet'}")


def _show_turn(turn: dict[str, Any]) -> None:
    click.echo("")
    click.secho(f"Turn {turn.get('turn') or '?'} · {turn['id']} · {turn.get('status')}", bold=True)
    click.echo(f"  > {turn.get('message', '')}")
    for call in turn.get("tool_calls") or []:
        mark = "✗" if call.get("is_error") else "←"
        click.echo(f"  → {call.get('name')}({short_text(json.dumps(call.get('args') or {}), 100)})")
        if call.get("result") is not None:
            click.echo(f"    {mark} {short_text(' '.join(str(call['result']).split()), 100)}")
    for approval in turn.get("approvals") or []:
        reason = f": {approval['reason']}" if approval.get("reason") else ""
        click.echo(f"  ? {approval.get('tool') or approval.get('kind')}: {approval.get('status')}{reason}")
    if turn.get("output"):
        click.echo(f"  {turn['output']}")
    if turn.get("error"):
        click.echo(f"  error: {turn['error']}")
    usage = usage_text(turn.get("usage"))
    if usage:
        click.echo(f"  usage: {usage}")


@session.command("delete")
@click.argument("ref", metavar="SESSION")
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
def delete_session(ref: str, as_json: bool) -> None:
    """Close SESSION (an id or a name) and delete it with its turns, their events and approvals."""
    with _client() as client:
        result = client.delete(f"/v1/sessions/{ref}")
    if as_json:
        click.echo(json.dumps(result, default=str))
        return
    deleted = result.get("deleted") or {}
    name = f" ({deleted['name']})" if deleted.get("name") else ""
    click.echo(f"deleted session {deleted.get('id', ref)}{name} and its {deleted.get('turns', 0)} turn(s)")
