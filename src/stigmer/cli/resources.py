"""``stigmer apply / get / describe / delete``: agents, MCP servers and executions through the daemon.

``apply`` validates every document locally first, so an error names the file, the document and
the field; the daemon validates again and applies all of them in one transaction, or none.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UserError

if TYPE_CHECKING:
    from ..resources import Resource
    from ._client import Client

# what a person may type -> (API collection, kind)
COLLECTIONS = {"agents": "agents", "agent": "agents", "mcpservers": "mcpservers", "mcpserver": "mcpservers",
               "executions": "executions", "execution": "executions"}
YAML_SUFFIXES = (".yaml", ".yml")


def _client() -> Client:
    from ._client import Client

    return Client.connect()


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"-f {path}: no such file or directory", hint="pass a YAML file or a directory of them")
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    if not found:
        raise UserError(f"-f {path}: no .yaml or .yml files in this directory", hint="point -f at your resource files")
    return found


def _parse_file(path: Path) -> list[Resource]:
    """Every document of one file, validated (errors name the file, the document and the field)."""
    import yaml

    from ..resources import parse_document

    try:
        raw = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}",
                        hint="check the path and its permissions") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', None) or exc}",
                        hint="fix the YAML syntax") from None
    if not raw:
        raise UserError(f"{path}: no documents found", hint="see examples/agents/ for the shape")
    return [parse_document(doc, str(path), i) for i, doc in enumerate(raw, start=1)]


def load_paths(paths: tuple[Path, ...]) -> list[tuple[Path, list[Resource]]]:
    """Every document of ``paths``, validated (schema, unique names); references are checked apart."""
    per_file = [(path, _parse_file(path)) for given in paths for path in _files(given)]
    seen: dict[tuple[str, str], Path] = {}
    for path, resources in per_file:
        for res in resources:
            if (res.kind, res.name) in seen:
                raise UserError(f"{path}: {res.kind} {res.name!r} is also defined in {seen[(res.kind, res.name)]}",
                                hint="give each resource a unique metadata.name")
            seen[(res.kind, res.name)] = path
    return per_file


def check_paths(per_file: list[tuple[Path, list[Resource]]], known_servers: list[str]) -> list[dict[str, Any]]:
    """Check every agent's MCP servers against the files and the daemon's; the documents as apply takes them."""
    from ..resources import McpServer, check_references

    everything = [res for _, resources in per_file for res in resources]
    servers = set(known_servers) | {res.name for res in everything if isinstance(res, McpServer)}
    for path, resources in per_file:
        check_references(resources, servers, str(path))
    return [res.dump() for res in everything]


@click.command()
@click.option("-f", "--filename", "paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A YAML file (multi-document) or a directory of them. Repeatable.")
def apply(paths: tuple[Path, ...]) -> None:
    """Create or update agents and MCP servers from YAML: all of them, or none.

    \b
    Examples:
      stigmer apply -f examples/agents/hello.yaml
      stigmer apply -f examples/agents/           # every .yaml/.yml in the directory
    """
    from ..resources.secret_warnings import literal_secret_warnings

    per_file = load_paths(paths)  # before connecting: a bad file is reported even with the daemon down
    warnings = [w for path, resources in per_file for w in literal_secret_warnings(resources, str(path))]
    with _client() as client:
        known = [item["name"] for item in client.get("/v1/mcpservers")["items"]]
        documents = check_paths(per_file, known)
        results = client.post("/v1/apply", {"documents": documents})["results"]
    for item in results:
        color = {"created": "green", "updated": "yellow"}.get(item["outcome"])
        click.secho(f"{item['kind'].lower()}/{item['name']} {item['outcome']}", fg=color)
    for warning in warnings:  # the daemon finds the same ones; these name the file
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def age(ts: float | None) -> str:
    """How long ago, the way ``kubectl get`` says it: 5s, 3m, 2h, 4d."""
    if not ts:
        return "-"
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: list[str], rows: list[list[str]], *, right: tuple[int, ...] = ()) -> None:
    """Print the rows (a Rich table at a terminal, aligned plain text otherwise); when empty, just a note."""
    if not rows:
        click.echo("no resources found", err=True)
        return
    from ._term import table as draw

    draw(headers, rows, right=right, styles={0: "bold"})


def _agent_row(item: dict[str, Any]) -> list[str]:
    spec = item["document"].get("spec", {})
    return [item["name"], spec.get("model") or "(default)", ",".join(spec.get("tools", [])) or "-",
            ",".join(spec.get("mcpServers", [])) or "-", age(item.get("updated_at"))]


def _server_row(item: dict[str, Any]) -> list[str]:
    spec = item["document"].get("spec", {})
    if "stdio" in spec:
        target = " ".join([spec["stdio"]["command"], *spec["stdio"].get("args", [])])
        transport = "stdio"
    else:
        target, transport = spec.get("http", {}).get("url", "?"), "http"
    return [item["name"], transport, short_text(target, 60), age(item.get("updated_at"))]


def execution_row(item: dict[str, Any]) -> list[str]:
    model = item.get("model") or {}
    return [item["id"], item["agent"], item["status"], str(item.get("steps") or "-"),
            f"{model.get('provider', '?')}:{model.get('model', '?')}", age(item.get("created_at"))]


EXECUTION_HEADERS = ["ID", "AGENT", "STATUS", "STEPS", "MODEL", "AGE"]


def short_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@click.command()
@click.argument("what", metavar="agents|mcpservers|executions")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", help="Output format.")
def get(what: str, output: str) -> None:
    """List agents, mcpservers or executions.

    \b
    Examples:
      stigmer get agents
      stigmer get executions -o json
    """
    collection = _collection(what, ("agents", "mcpservers", "executions"))
    with _client() as client:
        items = client.get(f"/v1/{collection}")["items"]
    if output == "json":
        click.echo(json.dumps(items, indent=2, default=str))
    elif collection == "agents":
        table(["NAME", "MODEL", "TOOLS", "MCP SERVERS", "AGE"], [_agent_row(i) for i in items])
    elif collection == "mcpservers":
        table(["NAME", "TRANSPORT", "TARGET", "AGE"], [_server_row(i) for i in items])
    else:
        table(EXECUTION_HEADERS, [execution_row(i) for i in items])


def _collection(what: str, allowed: tuple[str, ...]) -> str:
    from ..config._suggest import did_you_mean

    collection = COLLECTIONS.get(what.lower())
    if collection not in allowed:
        raise UserError(f"unknown resource type {what!r}{did_you_mean(what.lower(), allowed)}",
                        hint=f"use one of: {', '.join(allowed)}")
    return collection


@click.command()
@click.argument("what", metavar="agent")
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text", help="Output format.")
def describe(what: str, name: str, output: str) -> None:
    """Show one agent in detail: its spec and its latest executions.

    \b
    Examples:
      stigmer describe agent hello
      stigmer describe agent hello -o yaml
    """
    _collection(what, ("agents",))
    with _client() as client:
        item = client.get(f"/v1/agents/{name}")
        runs = client.get("/v1/executions", agent=name, limit=5)["items"]
    if output == "json":
        click.echo(json.dumps({**item, "executions": runs}, indent=2, default=str))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(item["document"], sort_keys=False).rstrip())
    else:
        _describe_text(item, runs)


def _describe_text(item: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    spec = item["document"].get("spec", {})
    fields = [("Name", item["name"]), ("Model", spec.get("model") or "(the configured llm.model)"),
              ("Tools", ", ".join(spec.get("tools", [])) or "-"),
              ("MCP servers", ", ".join(spec.get("mcpServers", [])) or "-"),
              ("Max steps", str(spec.get("maxSteps", "-"))), ("Workspace", spec.get("workspace") or "(default)"),
              ("Updated", f"{age(item.get('updated_at'))} ago")]
    for label, value in fields:
        click.echo(f"{label + ':':<13}{value}")
    click.echo("Instructions:")
    for line in str(spec.get("instructions", "")).rstrip().splitlines():
        click.echo(f"  {line}")
    click.echo("Recent executions:")
    if not runs:
        click.echo(f"  none yet; try `stigmer run {item['name']} \"hello\"`")
    for run in runs:
        click.echo(f"  {run['id']}  {run['status']:<10} {age(run.get('created_at'))} ago")


@click.command()
@click.argument("what", metavar="agent|mcpserver")
@click.argument("name")
def delete(what: str, name: str) -> None:
    """Delete an agent or an MCP server.

    \b
    Examples:
      stigmer delete agent hello
      stigmer delete mcpserver time
    """
    collection = _collection(what, ("agents", "mcpservers"))
    with _client() as client:
        gone = client.delete(f"/v1/{collection}/{name}")["deleted"]
    click.echo(f"{gone['kind'].lower()}/{gone['name']} deleted")
