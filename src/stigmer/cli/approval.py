"""``stigmer approval list|get|approve|reject``: decide tool calls that wait for a person, from anywhere.

A decision is bound to the arguments shown: ``approve``/``reject`` fetch the approval, show the call and
send the hash of exactly those arguments. The workflow refuses (409, printed as an error, exit 2) a second
decision, one for a turn that ended, and one whose arguments are not the ones waiting.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ._decide import args_hash, decide, what_is_asked
from .resources import age, short_text, table

APPROVAL_HEADERS = ["ID", "STATUS", "EXECUTION", "SESSION", "CALL", "AGE"]


def _client() -> Any:
    from ._client import Client

    return Client.connect()


def approval_row(item: dict[str, Any]) -> list[str]:
    return [item["id"], item.get("status", "?"), item.get("execution_id", "-"), item.get("session_id") or "-",
            short_text(what_is_asked(item), 60), age(item.get("requested_at"))]


@click.group()
def approval() -> None:
    """List and decide tool calls that wait for a person's approval.

    \b
    Examples:
      stigmer approval list                       # the pending ones
      stigmer approval approve ID                 # run the call, once
      stigmer approval approve ID --always        # ...and this tool unasked for the rest of the session
      stigmer approval reject ID --reason "not in prod"   # the model is told the reason
    """


@approval.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every approval, decided ones too (default: pending only).")
@click.option("--session", default=None, metavar="SESSION", help="Only the approvals of this session (id or name).")
@click.option("--execution", default=None, metavar="ID", help="Only the approvals of this execution.")
@click.option("--json", "as_json", is_flag=True, help="Print the approvals as a JSON list.")
def list_approvals(show_all: bool, session: str | None, execution: str | None, as_json: bool) -> None:
    """List the approvals waiting for a decision (with --all: decided ones too), newest first."""
    with _client() as client:
        items = client.get("/v1/approvals", status=None if show_all else "pending", session=session,
                           execution=execution)["items"]
    if as_json:
        click.echo(json.dumps(items, indent=2, default=str))
    elif not items:
        click.echo("no approvals" if show_all else "no approvals are waiting", err=True)
    else:
        table(APPROVAL_HEADERS, [approval_row(i) for i in items])


@approval.command("get")
@click.argument("approval_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the approval as JSON.")
def get_approval(approval_id: str, as_json: bool) -> None:
    """Show one approval: the call, its arguments and hash, and its decision if it has one."""
    with _client() as client:
        item = client.get(f"/v1/approvals/{approval_id}")
    if as_json:
        click.echo(json.dumps(item, indent=2, default=str))
        return
    for label, value in (("ID", item["id"]), ("Status", item.get("status")), ("Execution", item.get("execution_id")),
                         ("Session", item.get("session_id") or "-"), ("Call", what_is_asked(item)),
                         ("Args hash", item.get("args_hash")), ("Asked", f"{age(item.get('requested_at'))} ago")):
        click.echo(f"{label + ':':<11}{value}")
    if item.get("decided_at"):
        always = " (always)" if item.get("always") else ""
        click.echo(f"{'Decided:':<11}{item.get('status')}{always} by {item.get('decided_by') or '?'}, "
                   f"{age(item['decided_at'])} ago")
    if item.get("reason"):
        click.echo(f"{'Reason:':<11}{item['reason']}")


def _shown(client: Any, approval_id: str) -> str:
    """Fetch the approval, show the call being decided, return the hash of the arguments shown."""
    item = client.get(f"/v1/approvals/{approval_id}")
    click.echo(f"{approval_id}: {what_is_asked(item)}", err=True)
    return args_hash(item.get("tool"), item.get("args"))


@approval.command("approve")
@click.argument("approval_id", metavar="ID")
@click.option("--always", is_flag=True, help="Also allow this tool unasked for the rest of the session (or run).")
def approve(approval_id: str, always: bool) -> None:
    """Approve the call ID waits for: it runs, once."""
    with _client() as client:
        decide(client, approval_id, approve=True, hash_=_shown(client, approval_id), always=always)
    click.echo(f"approved {approval_id}" + (" (always, for this session)" if always else ""))


@approval.command("reject")
@click.argument("approval_id", metavar="ID")
@click.option("--reason", default="", metavar="TEXT", help="Why: the model is told, and it is recorded.")
def reject(approval_id: str, reason: str) -> None:
    """Reject the call ID waits for: it never runs; the model is told it was rejected (and why)."""
    with _client() as client:
        decide(client, approval_id, approve=False, hash_=_shown(client, approval_id), reason=reason)
    click.echo(f"rejected {approval_id}" + (f": {reason}" if reason else ""))
