"""``stigmer execution list|get|cancel|logs``: executions, through the daemon."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .resources import EXECUTION_HEADERS, age, execution_row, table


def _client() -> Any:
    from ._client import Client

    return Client.connect()


@click.group()
def execution() -> None:
    """List, inspect, cancel and read the log of executions.

    \b
    Examples:
      stigmer execution list --status running
      stigmer execution get ID
      stigmer execution logs -f ID
      stigmer execution cancel ID
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
    """Show one execution: status, model, steps, answer or error."""
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

    renderer, code = Renderer(), None
    with _client() as client:
        for event in client.events(execution_id, after=after, follow=follow):
            if as_json:
                click.echo(json.dumps(event, ensure_ascii=False, default=str))
            else:
                renderer.show(event, event.get("ts", 0.0))
            code = outcome(event)
    if follow and code:
        sys.exit(code)
