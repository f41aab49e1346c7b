"""The agent snapshot pinned into an execution's workflow input, with its MCP servers inlined.

An execution must not change if someone edits or deletes a resource while it runs, so the
workflow input carries a plain-dict copy of the agent spec and of every MCP server it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from .models import Agent, McpServer


def agent_snapshot(agent: Agent, servers: Mapping[str, McpServer]) -> dict[str, Any]:
    """``agent``'s spec as a plain dict, ``mcpServers`` replaced by the servers' specs (with their names).

    Raises:
        UserError: an MCP server the agent names does not exist.
    """
    spec = agent.spec.dump()
    inlined = []
    for i, name in enumerate(agent.spec.mcp_servers):
        server = servers.get(name)
        if server is None:
            raise UserError(f"agent {agent.name!r}: spec.mcpServers[{i}]: MCP server {name!r} does not exist",
                            hint=f"apply an McpServer named {name!r} first")
        inlined.append({"name": name, **server.spec.dump()})
    spec["mcpServers"] = inlined
    spec["name"] = agent.name
    return spec
