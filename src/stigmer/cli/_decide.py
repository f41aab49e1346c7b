"""Approvals and usage as the CLI shows them: the question about a tool call, the decision sent back, the cost line.

Shared by ``stigmer run``, ``stigmer chat`` and ``stigmer approval``. A decision always carries the hash of
the arguments the person was shown (docs/SESSIONS.md): if the call waiting is not the one on the screen, the
workflow refuses the decision instead of running something nobody saw.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

import click

from ..errors import StigmerError
from ..worker._approval import args_hash

if TYPE_CHECKING:
    from ._client import Client


def usage_text(usage: dict[str, Any] | None) -> str | None:
    """``1,204 in / 56 out tokens (800 cached) · $0.0031``; None when there is no usage to show."""
    if not usage or usage.get("input_tokens") is None:
        return None
    text = f"{int(usage['input_tokens']):,} in / {int(usage.get('output_tokens') or 0):,} out tokens"
    if usage.get("cached_tokens"):
        text += f" ({int(usage['cached_tokens']):,} cached)"
    if usage.get("estimated"):
        text += " (estimated)"
    cost = usage.get("cost_usd")
    if cost is None or usage.get("unpriced"):
        text += " · cost unknown" if cost is None else f" · at least ${float(cost):.4f} (some prices unknown)"
    else:
        text += f" · ${float(cost):.4f}"
    return text


def what_is_asked(data: dict[str, Any]) -> str:
    """One line naming the call (or the budget) an approval is about, with its arguments."""
    from .run import short

    if data.get("kind") == "budget":
        args = data.get("args") or {}
        return f"go past the budget {args.get('limit')} {args.get('value')} (used {args.get('used')})"
    return f"{data.get('tool', '?')}({short(data.get('args', {}), 400)})"


def how_to_decide(approval_id: str) -> str:
    return (f"decide with `stigmer approval approve {approval_id}` or "
            f"`stigmer approval reject {approval_id} --reason TEXT`")


def announce(data: dict[str, Any], err: IO[str] | None = None) -> None:
    """An approval nobody is prompted for here: what waits, and the commands that decide it."""
    err = err or sys.stderr
    reason = f" ({data['reason']})" if data.get("reason") else ""
    click.secho(f"? approval needed{reason}: {what_is_asked(data)}", file=err, fg="yellow")
    click.secho(f"  waiting; {how_to_decide(str(data.get('approval_id')))}", file=err, fg="yellow")


def decided_line(data: dict[str, Any]) -> str:
    """``✓ approved (always) by admin`` / ``✗ rejected: not now``: an ``approval_decided`` event, in words."""
    decision = str(data.get("decision", "?"))
    mark = "✓" if decision == "approved" else "✗"
    text = f"{mark} {decision.replace('_', ' ')}"
    if data.get("always"):
        text += " (always, for this session)"
    if data.get("by"):
        text += f" by {data['by']}"
    if data.get("reason"):
        text += f": {data['reason']}"
    return text


def decide(client: Client, approval_id: str, *, approve: bool, hash_: str | None, always: bool = False,
           reason: str = "") -> dict[str, Any]:
    """POST the decision; a refusal (409: other arguments, already decided, turn ended) raises with its reason."""
    body: dict[str, Any] = {"by": "cli"}
    if hash_:
        body["args_hash"] = hash_
    if approve:
        body["always"] = always
        result: dict[str, Any] = client.post(f"/v1/approvals/{approval_id}/approve", body)
    else:
        body["reason"] = reason
        result = client.post(f"/v1/approvals/{approval_id}/reject", body)
    return result


def prompt_and_decide(client: Client, data: dict[str, Any], err: IO[str] | None = None) -> None:
    """Ask the person at the terminal: [y] approve, [n] reject with a reason, [a] always allow this tool.

    The hash sent is computed from the arguments shown here. A refused decision (someone decided first,
    the turn ended) is printed and the run goes on streaming: the events say what happened.
    """
    err = err or sys.stderr
    approval_id = str(data.get("approval_id"))
    reason = f" ({data['reason']})" if data.get("reason") else ""
    click.secho(f"? approval needed{reason}: {what_is_asked(data)}", file=err, fg="yellow", bold=True)
    choices = ["y", "n"] if data.get("kind") == "budget" else ["y", "n", "a"]
    labels = "[y] approve, [n] reject" + (", [a] always allow this tool in this session" if "a" in choices else "")
    try:
        answer = click.prompt(f"  {labels}", type=click.Choice(choices), show_choices=False, err=True)
        why = click.prompt("  reason (the model is told)", default="", show_default=False, err=True) \
            if answer == "n" else ""
    except click.exceptions.Abort:
        click.secho(f"  not decided; {how_to_decide(approval_id)}", file=err, fg="yellow")
        raise KeyboardInterrupt from None
    hash_ = args_hash(data.get("tool"), data.get("args"))
    try:
        decide(client, approval_id, approve=answer != "n", hash_=hash_, always=answer == "a", reason=why)
    except StigmerError as exc:
        click.secho(f"  the decision was not taken: {exc.message}", file=err, fg="red")
