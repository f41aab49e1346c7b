"""A tiny MCP server built with the official ``mcp`` SDK: the current time, an echo, and a tool that fails.

``get_time`` and ``show_env`` are annotated ``readOnlyHint: true`` (they run without asking under the
default approval policy); ``echo`` is not (it asks), so tests see both sides of the policy.

Run it the way an McpServer resource does (``python examples/mcp/time_server.py``: stdio), or over
streamable HTTP on loopback with ``--http PORT`` (it binds 127.0.0.1 only). ``show_env`` reports
which of the given variable names the server can see, so tests can prove the worker's secrets
never reach an MCP child.
"""

from __future__ import annotations

import argparse
import datetime
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("stigmer-example-time")
# The protocol's own hint: stigmer's default approval policy runs tools annotated read-only unasked.
READ_ONLY = ToolAnnotations(read_only_hint=True)


@server.tool(annotations=READ_ONLY)
def get_time(timezone: str = "UTC") -> str:
    """The current time in UTC as ISO 8601 (only UTC is supported)."""
    if timezone.upper() != "UTC":
        raise ToolError(f"unknown timezone {timezone!r}: only UTC is supported")
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@server.tool()
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


@server.tool(annotations=READ_ONLY)
def show_env(names: list[str]) -> str:
    """Which of ``names`` are set in this server's environment (values are never shown)."""
    return ", ".join(f"{n}={'set' if n in os.environ else 'unset'}" for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
