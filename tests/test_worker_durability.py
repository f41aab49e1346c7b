"""Crash and resume: ``kill -9`` a ``stigmer runner`` mid tool call and mid model call; a new one finishes.

Side effects are counted in files: every tool call that had completed ran exactly once, and
the model calls that had completed are not repeated (the scripted model logs every call).
The histories these runs leave are replayed, and so are the saved ones in tests/data/histories/
(``SAVE_HISTORIES=1`` refreshes them), so a change to the workflow that breaks determinism for
executions in flight fails here.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from stigmer.worker.session import SessionWorkflow
from stigmer.worker.workflows import AgentWorkflow
from tests.support.agents import execution, runner_env, running, spawn_runner, start, wait_for
from tests.support.codec import codec_client
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow

HISTORIES = Path(__file__).parent / "data" / "histories"
FAST = {"tool_heartbeat": 2.0, "model_heartbeat": 2.0, "retry_initial": 0.2}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _kill(proc: Any) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


async def _replay(client: Client, workflow_id: str, save_as: str | None = None) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    await Replayer(workflows=[AgentWorkflow, SessionWorkflow]).replay_workflow(history)
    if save_as and os.environ.get("SAVE_HISTORIES"):
        HISTORIES.mkdir(parents=True, exist_ok=True)
        (HISTORIES / save_as).write_text(json.dumps(json.loads(history.to_json()), indent=1))


async def test_kill_during_a_tool_call(tmp_path: Path, temporal_server: Any) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "run_shell", "args": {"command": "echo a >> count_a"}}]},
        {"content": "", "tool_calls": [{"name": "run_shell", "args": {
            "command": "echo b >> count_b; [ $(wc -l < count_b) -ge 2 ] || sleep 60"}}]},
        {"content": "done after the crash"},
    ])
    queue = f"dur-{uuid.uuid4().hex[:8]}"
    env = runner_env(temporal_server.address, queue)
    client = await codec_client(temporal_server.address)
    inp = execution(script, workspace=ws, tools=["workspace", "shell"], **FAST)
    with running(spawn_runner(env, tmp_path / "runner1.log")) as first:
        handle = await start(client, inp, queue)
        wait_for(lambda: _lines(ws / "count_b") == 1, timeout=60, what="second tool call started")
        _kill(first)
    with running(spawn_runner(env, tmp_path / "runner2.log")):
        result = await handle.result()
    assert result.output == "done after the crash"
    assert _lines(ws / "count_a") == 1, "a completed tool call ran again after the crash"
    assert _lines(ws / "count_b") == 2, "the interrupted tool call was not retried"
    assert [c["step"] for c in read_calls(script)] == [0, 1, 2], "a completed model call was repeated"
    await _replay(client, handle.id, "kill_during_tool.json")


async def test_kill_during_a_model_call(tmp_path: Path, temporal_server: Any) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "run_shell", "args": {"command": "echo a >> count_a"}},
                                       {"name": "write_file", "args": {"path": "w.txt", "content": "x"}}]},
        {"content": "finished", "delay": 60, "delay_attempts": 1},
    ])
    queue = f"dur-{uuid.uuid4().hex[:8]}"
    env = runner_env(temporal_server.address, queue)
    client = await codec_client(temporal_server.address)
    inp = execution(script, workspace=ws, tools=["workspace", "shell"], **FAST)
    with running(spawn_runner(env, tmp_path / "runner1.log")) as first:
        handle = await start(client, inp, queue)
        wait_for(lambda: any(c["step"] == 1 for c in read_calls(script)), timeout=60, what="second model call")
        _kill(first)
    with running(spawn_runner(env, tmp_path / "runner2.log")):
        result = await handle.result()
    assert result.output == "finished"
    assert _lines(ws / "count_a") == 1
    calls = read_calls(script)
    assert [(c["step"], c["attempt"]) for c in calls] == [(0, 0), (1, 0), (1, 1)]
    assert calls[1]["pid"] != calls[2]["pid"], "the retried model call should run on the new worker"
    await _replay(client, handle.id, "kill_during_model.json")


async def test_a_retry_on_a_differently_configured_runner_keeps_the_pinned_model(tmp_path: Path,
                                                                               temporal_server: Any) -> None:
    """The first runner resolves the model (its own configuration) and dies mid model call; the second, configured
    with another model, finishes the execution on the pinned one."""
    from dataclasses import replace

    first = write_script(tmp_path / "first.json", [{"content": "the first runner's model", "delay": 60,
                                                    "delay_attempts": 1}])
    second = write_script(tmp_path / "second.json", [{"content": "the second runner's model"}])
    queue = f"dur-{uuid.uuid4().hex[:8]}"
    client = await codec_client(temporal_server.address)
    inp = replace(execution(first, **FAST), model=None)  # the daemon's shape: no model, the runner decides
    with running(spawn_runner(runner_env(temporal_server.address, queue, {"STIGMER_LLM_MODEL": first}),
                              tmp_path / "runner1.log")) as one:
        handle = await start(client, inp, queue)
        wait_for(lambda: len(read_calls(first)) == 1, timeout=60, what="first model call started")
        _kill(one)
    with running(spawn_runner(runner_env(temporal_server.address, queue, {"STIGMER_LLM_MODEL": second}),
                              tmp_path / "runner2.log")):
        result = await handle.result()
    assert result.output == "the first runner's model"
    assert read_calls(second) == []
    calls = read_calls(first)
    assert len(calls) == 2 and calls[0]["pid"] != calls[1]["pid"], "the model call should be retried on runner 2"
    await _replay(client, handle.id, "kill_after_model_resolved.json")


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.name)
async def test_saved_histories_replay_without_nondeterminism(path: Path) -> None:
    from temporalio.client import WorkflowHistory

    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=[AgentWorkflow, SessionWorkflow]).replay_workflow(history)
