"""``stigmer execution list|get|cancel|logs|delete|prune``: executions, through the daemon."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from ._decide import usage_text
from .resources import EXECUTION_HEADERS, age, execution_row, table


def _client() -> Any:
    from ._client import Client

    return Client.connect()


@click.group()
def execution() -> None:
    """List, inspect, cancel, read the log of and delete executions.

    \b
    Examples:
      stigmer execution list --status running
      stigmer execution get ID
      stigmer execution logs -f ID
      stigmer execution cancel ID
      stigmer execution delete ID
      stigmer execution prune --older-than 7d --dry-run
    """


@execution.command("list")
@click.option("--status", type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]), default=None,
              help="Only executions with this status.")
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="How many, newest first.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", help="Output format.")
def list_executions(status: str | None, limit: int, output: str) -> None:
    """List executions, newest first."""
    with _client() as client:
        items = client.get("/v1/executions", status=status, limit=limit)["items"]
    if output == "json":
        click.echo(json.dumps(items, indent=2, default=str))
    else:
        table(EXECUTION_HEADERS, [execution_row(i) for i in items])


@execution.command("get")
@click.argument("execution_id")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", help="Output format.")
def get_execution(execution_id: str, output: str) -> None:
    """Show one execution: status, model, steps, session, usage (tokens, cost), answer or error."""
    with _client() as client:
        item = client.get(f"/v1/executions/{execution_id}")
    if output == "json":
        click.echo(json.dumps(item, indent=2, default=str))
        return
    model = item.get("model") or {}
    elapsed = f"{item['finished_at'] - item['created_at']:.1f}s" if item.get("finished_at") else "-"
    for label, value in (("ID", item["id"]), ("Agent", item["agent"]), ("Status", item["status"]),
                         ("Model", f"{model.get('provider')}:{model.get('model')}"),
                         ("Steps", item.get("steps") or "-"),
                         ("Started", f"{age(item.get('created_at'))} ago"), ("Elapsed", elapsed),
                         ("Workspace", item.get("workspace") or "-"), ("Message", item["message"])):
        click.echo(f"{label + ':':<11}{value}")
    if item.get("session_id"):
        click.echo(f"{'Session:':<11}{item['session_id']} (turn {item.get('turn') or '?'})")
    usage = usage_text(item.get("usage"))
    if usage:
        click.echo(f"{'Usage:':<11}{usage}")
    if item.get("output"):
        click.echo(f"Answer:\n{item['output']}")
    if item.get("error"):
        click.echo(f"Error:     {item['error']}")


@execution.command("cancel")
@click.argument("execution_id")
def cancel_execution(execution_id: str) -> None:
    """Cancel a pending or running execution."""
    with _client() as client:
        client.post(f"/v1/executions/{execution_id}/cancel")
    click.echo(f"cancel requested for execution {execution_id}")


@execution.command("logs")
@click.argument("execution_id")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the execution ends.")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only events after this sequence number.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines: one event per line.")
def logs(execution_id: str, follow: bool, after: int, as_json: bool) -> None:
    """Print an execution's events (its tokens, tool calls and end), from the start or live with -f."""
    from .run import Renderer, outcome

    renderer, code = Renderer(live=follow), None
    with _client() as client:
        try:
            for event in client.events(execution_id, after=after, follow=follow):
                if as_json:
                    click.echo(json.dumps(event, ensure_ascii=False, default=str))
                else:
                    renderer.show(event, _summary_start(client, execution_id, event))
                code = outcome(event)
        finally:
            renderer.pause()
    if follow and code:
        sys.exit(code)


def _summary_start(client: Any, execution_id: str, event: dict[str, Any]) -> float:
    """The ``time.monotonic()`` reading the summary line counts from, so that it shows the execution's duration.

    ``stigmer run`` times a run it watched from the start; ``logs`` may replay one that ended long ago,
    so the duration is the daemon's record of it: from its start (``created_at``) to its end (``finished_at``).
    """
    if event["type"] != "completed":  # the only line that shows a time
        return time.monotonic()
    record = client.get(f"/v1/executions/{execution_id}")
    end = record.get("finished_at") or event.get("ts") or record["created_at"]
    return time.monotonic() - max(0.0, float(end) - float(record["created_at"]))


def _older_than(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ..config.durations import parse_duration

    try:
        parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@execution.command("delete")
@click.argument("execution_id")
def delete_execution(execution_id: str) -> None:
    """Delete a finished execution and its events (cancel a live one first)."""
    with _client() as client:
        deleted = client.delete(f"/v1/executions/{execution_id}")["deleted"]
    click.echo(f"deleted execution {execution_id} ({deleted['status']}) and its events")


@execution.command("prune")
@click.option("--older-than", required=True, callback=_older_than, metavar="DURATION",
              help="Delete executions that ended more than this long ago: 90s, 15m, 12h, 30d, 2w.")
@click.option("--dry-run", is_flag=True, help="Only say how many would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def prune(older_than: str, dry_run: bool, as_json: bool) -> None:
    """Delete the executions (and their events) that ended more than DURATION ago; live ones are kept.

    The daemon also does this by itself for `retention.executions` (default 30d; 0 keeps everything).
    """
    with _client() as client:
        result = client.post("/v1/executions/prune", {"older_than": older_than, "dry_run": dry_run})
    if as_json:
        click.echo(json.dumps(result))
    elif dry_run:
        click.echo(f"would delete {result['matched']} execution(s) that ended more than {older_than} ago (dry run)")
    else:
        click.echo(f"deleted {result['deleted']} execution(s) that ended more than {older_than} ago, with their events")
