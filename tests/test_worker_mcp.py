"""MCP tools through the official SDK: a real server (examples/mcp/time_server.py) over stdio and HTTP."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from stigmer.config.grants import Grants
from stigmer.worker.tools.mcp import McpFailure, McpPool, filled
from tests.support.agents import REPO, execution, runner_env, start, worker_in_process
from tests.support.ports import free_port, wait_port
from tests.support.scripted_provider import write_script

SERVER = str(REPO / "examples" / "mcp" / "time_server.py")


def _stdio(enabled: list[str] | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    server: dict[str, Any] = {"name": "time", "stdio": {"command": sys.executable, "args": [SERVER], "env": env or {}}}
    if enabled is not None:
        server["enabledTools"] = enabled
    return server


async def test_stdio_server_tools_are_listed_filtered_and_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-worker-secret-0000")
    monkeypatch.setenv("WORKER_TOKEN", "tok")
    pool = McpPool(allow_env=["WORKER_TOKEN"])
    try:
        server = _stdio(["get_time", "show_env", "echo"], env={"DECLARED": "yes", "GIVEN": "${WORKER_TOKEN}"})
        tools = await pool.list_tools(server, taken={"echo"})
        assert sorted(t.name for t in tools) == ["get_time", "show_env", "time_echo"]
        echo = next(t for t in tools if t.remote_name == "echo")
        assert echo.parameters["required"] == ["text"]
        assert await pool.call_tool(server, "echo", {"text": "hello"}) == ("hello", False)
        text, is_error = await pool.call_tool(server, "get_time", {"timezone": "Mars"})
        assert is_error and "only UTC is supported" in text
        text, _ = await pool.call_tool(server, "show_env", {"names": ["DECLARED", "GIVEN", "WORKER_TOKEN",
                                                                      "ANTHROPIC_API_KEY"]})
        assert text == "DECLARED=set, GIVEN=set, WORKER_TOKEN=unset, ANTHROPIC_API_KEY=unset"
    finally:
        await pool.aclose()


async def test_disabled_and_unknown_tools_are_error_results() -> None:
    pool = McpPool()
    try:
        server = _stdio(["get_time"])
        assert [t.name for t in await pool.list_tools(server, set())] == ["get_time"]
        text, is_error = await pool.call_tool(server, "echo", {"text": "x"})
        assert is_error and "not enabled" in text
        text, is_error = await pool.call_tool(_stdio(), "no_such_tool", {})
        assert is_error and "no_such_tool" in text
    finally:
        await pool.aclose()


async def test_a_server_that_cannot_start_is_a_clear_failure(tmp_path: Path) -> None:
    pool = McpPool()
    bad = {"name": "broken", "stdio": {"command": sys.executable, "args": [str(tmp_path / "missing.py")]}}
    with pytest.raises(McpFailure, match="'broken'"):
        await pool.list_tools(bad, set())
    await pool.aclose()


async def test_streamable_http_server() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "--http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pool = McpPool()
    try:
        wait_port(port)
        server = {"name": "time-http", "http": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {}}}
        assert "get_time" in [t.name for t in await pool.list_tools(server, set())]
        assert await pool.call_tool(server, "echo", {"text": "over http"}) == ("over http", False)
    finally:
        await pool.aclose()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
async def test_agent_calls_a_stdio_mcp_tool_end_to_end(tmp_path: Path, temporal_server: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "echo", "args": {"text": "ping"}},
                                       {"name": "get_time", "args": {"timezone": "Mars"}}]},
        {"content": "The server said ping."},
    ])
    queue = f"mcp-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(temporal_server.address)
    inp = execution(script, mcp=[_stdio(["echo", "get_time"])])
    async with worker_in_process(runner_env(temporal_server.address, queue), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        status = await handle.query("status")
    assert result.output == "The server said ping."
    tool_msgs = {m["name"]: m for m in status["messages"] if m["role"] == "tool"}
    assert tool_msgs["echo"]["content"] == "ping" and not tool_msgs["echo"]["is_error"]
    assert tool_msgs["get_time"]["is_error"] and "only UTC" in tool_msgs["get_time"]["content"]


def test_references_are_filled_from_the_secret_store_then_allowed_variables_only() -> None:
    grants = Grants(secrets={"T": "from-store", "S": "stored-only"}, allow_env=("ALLOWED", "T"),
                    environ={"T": "from-env", "ALLOWED": "abc", "OTHER": "never", "PATH": "/bin"})
    server = {"name": "gh", "http": {"url": "http://127.0.0.1:1/mcp", "headers": {
        "A": "Bearer ${T}", "B": "${ALLOWED}-${ALLOWED}", "C": "plain $T", "D": {"valueFrom": {"secret": "S"}},
        "E": "${PATH}:/opt"}}}  # what every child gets anyway needs no grant
    assert filled(server, grants) == {"A": "Bearer from-store", "B": "abc-abc", "C": "plain $T", "D": "stored-only",
                                      "E": "/bin:/opt"}
    with pytest.raises(McpFailure) as refused:
        filled({"name": "gh", "stdio": {"command": "x", "env": {"X": "${OTHER}"}}}, grants)
    message = str(refused.value)  # the server, the field, the variable, and both ways to grant it
    assert "'gh'" in message and "spec.stdio.env.X" in message and "${OTHER}" in message
    assert "stigmer secret set OTHER" in message and "mcp.allow_env OTHER" in message and "never" not in message
    with pytest.raises(McpFailure, match="not in this runner's secret store"):  # valueFrom: the store only
        filled({"name": "gh", "stdio": {"command": "x", "env": {"X": {"valueFrom": {"secret": "ALLOWED"}}}}}, grants)
    with pytest.raises(McpFailure, match=r"granted .* but not set"):
        filled({"name": "gh", "stdio": {"command": "x", "env": {"X": "${ALLOWED}"}}},
               Grants(secrets={}, allow_env=("ALLOWED",), environ={}))
