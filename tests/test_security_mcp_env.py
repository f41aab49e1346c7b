"""MCP server children (and the shell tool) get only the environment they are given, not the worker's secrets.

A real stdio MCP server (the official ``mcp`` SDK) reports its whole environment through a tool;
an agent whose model calls that tool runs through the real workflow on a real Temporal dev server
with an in-process runner whose environment holds sentinel secrets: the provider keys, stigmer's
own key variable, the event sink's token. What the server may see is what its resource declares,
plus ``PATH`` and the SDK's harmless basics (HOME, LOGNAME, SHELL, TERM, USER). A declared
``${NAME}`` reference hands one named worker variable to the child at start, and the value itself
stays out of the workflow history (only the reference is pinned there).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.support.agents import EventCollector, execution, runner_env, start, wait_for, worker_in_process
from tests.support.scripted_provider import write_script

pytestmark = pytest.mark.slow

SECRETS = {"ANTHROPIC_API_KEY": "sk-ant-sentinel-mcp-1111", "OPENAI_API_KEY": "sk-sentinel-mcp-2222",
           "STIGMER_LLM_API_KEY": "sentinel-llm-key-3333", "WORKER_PRIVATE": "sentinel-private-4444"}
SINK_TOKEN = "sentinel-sink-token-5555"
HANDED = "ghp_sentinel_handed_6666"
ALLOWED = {"PATH", "HOME", "LOGNAME", "SHELL", "TERM", "USER", "LC_CTYPE", "DECLARED", "SECRET_HANDED"}

SERVER = textwrap.dedent('''
    """An MCP server (official SDK) whose one tool reports the environment it was started with."""
    import hashlib
    import json
    import os

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("env-reporter")


    @server.tool()
    def environment() -> str:
        """Every variable this process has; values of SECRET_* are shown as sha256 digests."""
        return json.dumps({k: (hashlib.sha256(v.encode()).hexdigest() if k.startswith("SECRET_") else v)
                           for k, v in os.environ.items()})


    if __name__ == "__main__":
        server.run()
''')


def history_text(node: Any) -> str:
    """A history as text with every payload decoded (payload ``data`` is base64 in the JSON form)."""
    if isinstance(node, dict):
        own = ""
        if isinstance(node.get("data"), str) and "metadata" in node:
            own = base64.b64decode(node["data"]).decode("utf-8", errors="replace")
        return own + "\n".join(history_text(v) for v in node.values())
    if isinstance(node, list):
        return "\n".join(history_text(v) for v in node)
    return str(node)


def _server(tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "env_server.py"
    script.write_text(SERVER)
    return {"name": "envdump", "stdio": {"command": sys.executable, "args": [str(script)],
                                         "env": {"DECLARED": "yes", "SECRET_HANDED": "${HANDED_TOKEN}"}}}


async def test_an_mcp_child_sees_only_what_its_resource_declares(tmp_path: Path, temporal_server: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [{"name": "environment", "args": {}}]},
                                                {"content": "done"}])
    inp = execution(script, mcp=[_server(tmp_path)])
    queue = f"mcpenv-{uuid.uuid4().hex[:8]}"
    with EventCollector(token=SINK_TOKEN) as collector:
        env = runner_env(temporal_server.address, queue, {**collector.env(), **SECRETS, "HANDED_TOKEN": HANDED})
        async with worker_in_process(env, monkeypatch):
            client = await Client.connect(temporal_server.address)
            handle = await start(client, inp, queue)
            result = await handle.result()
            status = await handle.query("status")
            history = history_text((await handle.fetch_history()).to_json_dict())
        wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed")
        events = json.dumps(collector.of(inp.execution_id))

    assert result.output == "done"
    reply = next(m for m in status["messages"] if m["role"] == "tool")
    assert not reply["is_error"], reply["content"]
    child_env = json.loads(reply["content"])
    assert set(child_env) <= ALLOWED, f"the MCP child got undeclared variables: {sorted(set(child_env) - ALLOWED)}"
    assert child_env["DECLARED"] == "yes" and "PATH" in child_env
    assert child_env["SECRET_HANDED"] == hashlib.sha256(HANDED.encode()).hexdigest()  # the named one reached it
    for secret in [*SECRETS.values(), SINK_TOKEN]:
        assert secret not in reply["content"]
    for secret in [*SECRETS.values(), SINK_TOKEN, HANDED]:
        assert secret not in history, "a worker secret is in the workflow history"
        assert secret not in events, "a worker secret is in an event"
    assert "${HANDED_TOKEN}" in history and '"DECLARED":"yes"' in history  # decoded: only the reference is there


async def test_the_shell_tool_gets_a_minimal_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.worker.tools import workspace

    for name, value in {**SECRETS, "STIGMER_SERVER_TOKEN": SINK_TOKEN}.items():
        monkeypatch.setenv(name, value)
    output = await workspace.call("run_shell", tmp_path, {"command": "env"})
    names = {line.split("=", 1)[0] for line in output.splitlines()[1:] if "=" in line}
    assert output.startswith("exit code 0")
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_", "OLDPWD"}, names
    for secret in [*SECRETS.values(), SINK_TOKEN]:
        assert secret not in output
