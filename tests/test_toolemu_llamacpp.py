"""Emulated tool calls end to end on llama.cpp's real server with the default bundled model (SmolLM2-135M-Instruct).

The example agents, zero configuration: the runner resolves the model itself (nothing pinned), finds that the
server cannot call tools natively, pins ``emulated``, and the schema-constrained reply becomes an ordinary tool
call that the workflow runs. The tiny model's judgement is poor; the tests check the mechanics it cannot break:
a real call of an offered tool with valid arguments, its effect, and the execution ending with an answer (a bundled
model's turn is one tool call, then the answer).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from stigmer.config import DEFAULT_MODELS
from stigmer.resources import Agent, agent_snapshot, load_documents
from tests.support.agents import REPO, EventCollector, execution, runner_env, start, until, worker_in_process
from tests.support.codec import codec_client

pytestmark = pytest.mark.slow


def _example(file: str, name: str) -> Agent:
    docs = load_documents((REPO / "examples" / "agents" / file).read_text(), file)
    (found,) = [d for d in docs if isinstance(d, Agent) and d.name == name]
    return found


def _time_server() -> dict[str, Any]:
    return {"name": "time", "stdio": {"command": sys.executable, "args": [str(REPO / "examples/mcp/time_server.py")],
                                      "env": {}}, "enabledTools": ["get_time", "echo"]}


async def _run(temporal_server: Any, llamacpp_server: str, monkeypatch: pytest.MonkeyPatch, agent: dict[str, Any],
               message: str, workspace: Path | None = None) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    env = {"STIGMER_LLM_PROVIDER": "llamacpp", "STIGMER_LLM_BASE_URL": llamacpp_server,
           "STIGMER_LLM_MODEL": DEFAULT_MODELS["llamacpp"], "STIGMER_LLM_MAX_TOKENS": "256"}
    queue = f"emu-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    inp = execution("unused", message, workspace=workspace)
    inp.model, inp.model_name = None, None  # the runner resolves its own model, as with `stigmer run`
    inp.agent = {**agent, "approvals": {"mode": "never"}}
    inp.max_steps = 4
    with EventCollector() as collector:
        async with worker_in_process(runner_env(temporal_server.address, queue, {**env, **collector.env()}),
                                     monkeypatch):
            handle = await start(client, inp, queue)
            result = await handle.result()
            status = await handle.query("status")
            await until(lambda: any(e["type"] in ("completed", "failed") for e in collector.of(inp.execution_id)),
                        what="the last event")
    return result, status, collector.of(inp.execution_id)


def _calls(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for m in status["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]


async def test_files_agent_writes_a_file_with_an_emulated_call(tmp_path: Path, temporal_server: Any,
                                                               llamacpp_server: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    files = agent_snapshot(_example("workspace.yaml", "files"), {})
    result, status, events = await _run(temporal_server, llamacpp_server, monkeypatch, files,
                                        "Write a haiku to haiku.txt", tmp_path)
    resolved = next(e for e in events if e["type"] == "model_resolved")["data"]
    assert resolved["model"]["model"] == "smollm2-135m" and resolved["model"]["tool_calls"] == "emulated"
    assert "llama.cpp server" in resolved["tool_calls"]["why"]
    writes = [c for c in _calls(status) if c["name"] == "write_file" and "invalid_args" not in c]
    assert writes, status["messages"]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.read_text() for p in written), written
    # The bundled model's turn is one call, then the answer: it cannot loop.
    assert (result.status, result.steps) == ("completed", 2) and result.output
    assert not any(e["type"] == "token" and '"tool"' in e["data"]["text"] for e in events)  # no raw JSON shown


async def test_clock_agent_calls_get_time(temporal_server: Any, llamacpp_server: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clock = agent_snapshot(_example("mcp.yaml", "clock"), {"time": _time_server_resource()})
    result, status, events = await _run(temporal_server, llamacpp_server, monkeypatch, clock, "What time is it?")
    calls = _calls(status)
    assert any(c["name"] == "get_time" for c in calls), calls
    finished = [e["data"] for e in events if e["type"] == "tool_finished" and e["data"]["name"] == "get_time"]
    assert finished, events
    assert finished[0]["is_error"] or finished[0]["result"].startswith("20"), finished  # an ISO time, or the
    # server's own error for a timezone the model made up: either way the tool really ran
    assert (result.status, result.steps) == ("completed", 2) and result.output


def _time_server_resource() -> Any:
    from stigmer.resources import McpServer

    server = _time_server()
    doc = (f"apiVersion: agentic.stigmer.ai/v1\nkind: McpServer\nmetadata: {{name: time}}\n"
           f"spec: {{stdio: {{command: {server['stdio']['command']!r}, args: {server['stdio']['args']!r}, "
           f"env: {{}}}}, enabledTools: [get_time, echo]}}\n")
    (found,) = load_documents(doc, "time.yaml")
    assert isinstance(found, McpServer)
    return found
