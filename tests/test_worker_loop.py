"""The agent loop end to end on a real Temporal dev server, driven by the scripted chat model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from tests.support.agents import EventCollector, execution, runner_env, start, until, wait_for, worker_in_process
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow


async def test_full_loop_two_parallel_tools_a_tool_error_and_a_final_answer(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("remember the milk\n")
    script = write_script(tmp_path / "s.json", [
        {"content": "Let me look.", "tool_calls": [{"name": "list_files", "args": {}},
                                                    {"name": "read_file", "args": {"path": "missing.txt"}}]},
        {"content": "", "tool_calls": [{"name": "write_file", "args": {"path": "out/answer.txt", "content": "milk"}}]},
        {"content": "You have one note: remember the milk."},
    ])
    inp = execution(script, "What is in my workspace?", workspace=ws, tools=["workspace"])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        status = await handle.query("status")

    assert result.status == "completed"
    assert result.output == "You have one note: remember the milk."
    assert result.steps == 3
    assert (ws / "out" / "answer.txt").read_text() == "milk"
    tool_msgs = [m for m in status["messages"] if m["role"] == "tool"]
    assert [m["name"] for m in tool_msgs[:2]] == ["list_files", "read_file"]
    assert "notes.txt" in tool_msgs[0]["content"] and not tool_msgs[0]["is_error"]
    assert tool_msgs[1]["is_error"] and "missing.txt" in tool_msgs[1]["content"]
    assert status["status"] == "completed" and status["step"] == 3

    wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed event")
    events = collector.of(inp.execution_id)
    assert events[-1]["type"] == "completed"
    done = dict(events[-1]["data"])
    usage = done.pop("usage")
    assert done == {"output": result.output, "steps": 3}
    # The scripted model reports no usage: three calls, estimated and marked so, the same as the result's.
    assert usage["model_calls"] == 3 and usage["estimated"] is True and usage == result.usage
    tokens = "".join(e["data"]["text"] for e in events if e["type"] == "token" and e["data"]["step"] == 3)
    assert tokens == result.output
    finished = [e["data"] for e in events if e["type"] == "tool_finished"]
    assert sorted((d["name"], d["is_error"]) for d in finished) == [
        ("list_files", False), ("read_file", True), ("write_file", False)]
    assert [e["data"]["step"] for e in events if e["type"] == "step_started"] == [1, 2, 3]
    assert len(read_calls(script)) == 3


async def test_loop_detected_fails_with_a_clear_message(tmp_path: Path, temporal_server: Any, client: Client,
                                                         queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [{"name": "list_files", "args": {}}]}],
                          repeat_last=True)
    inp = execution(script, workspace=tmp_path, tools=["workspace"])
    async with worker_in_process(runner_env(temporal_server.address, queue), monkeypatch):
        handle = await start(client, inp, queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "'list_files' with the same arguments 3 times" in str(info.value.cause)
    assert len(read_calls(script)) == 3


async def test_max_steps_stops_the_run(tmp_path: Path, temporal_server: Any, client: Client, queue: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    steps = [{"content": "", "tool_calls": [{"name": "read_file", "args": {"path": f"f{i}"}}]} for i in range(5)]
    script = write_script(tmp_path / "s.json", steps)
    inp = execution(script, workspace=tmp_path, tools=["workspace"], max_steps=2)
    async with worker_in_process(runner_env(temporal_server.address, queue), monkeypatch):
        handle = await start(client, inp, queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "stopped after 2 steps" in str(info.value.cause)
    assert "spec.maxSteps" in str(info.value.cause)


async def test_rate_limit_is_retried_after_retry_after_then_succeeds(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "Fine now.", "fail": {"status": 429, "message": "slow down", "retry_after": 0.2, "times": 2}}])
    inp = execution(script, retry_initial=30.0)  # only the server's retry-after can make this finish quickly
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
    assert result.output == "Fine now."
    assert [c["attempt"] for c in read_calls(script)] == [0, 1, 2]
    wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed event")
    assert [e["data"]["attempt"] for e in collector.of(inp.execution_id) if e["type"] == "step_started"] == [1, 2, 3]


async def test_non_retryable_error_fails_at_once_with_the_provider_message(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "never", "fail": {"status": 401, "times": 99}}])
    inp = execution(script)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "scripted rejected the API key (401 Unauthorized)" in str(info.value.cause)
    assert len(read_calls(script)) == 1
    wait_for(lambda: any(e["type"] == "failed" for e in collector.of(inp.execution_id)), what="failed event")
    last = collector.of(inp.execution_id)[-1]
    assert last["type"] == "failed" and "401 Unauthorized" in last["data"]["error"]


async def test_cancel_signal_stops_a_slow_model_call(tmp_path: Path, temporal_server: Any, client: Client, queue: str,
                                                      collector: EventCollector,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "too late", "delay": 60}])
    inp = execution(script, model_heartbeat=2.0)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        await until(lambda: len(read_calls(script)) == 1, what="model call started")
        await handle.signal("cancel")
        result = await handle.result()
    assert result.status == "cancelled"
    wait_for(lambda: any(e["type"] == "failed" for e in collector.of(inp.execution_id)), what="failed event")
    assert collector.of(inp.execution_id)[-1]["data"]["cancelled"] is True


async def test_temporal_cancel_request_ends_the_execution_as_cancelled(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from temporalio.client import WorkflowExecutionStatus

    script = write_script(tmp_path / "s.json", [{"content": "too late", "delay": 60}])
    inp = execution(script, model_heartbeat=2.0)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        await until(lambda: len(read_calls(script)) == 1, what="model call started")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    wait_for(lambda: any(e["type"] == "failed" for e in collector.of(inp.execution_id)), what="failed event")
    assert collector.of(inp.execution_id)[-1]["data"]["cancelled"] is True


async def test_a_provider_the_runner_does_not_know_fails_at_once(tmp_path: Path, temporal_server: Any, client: Client,
                                                                 queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.providers.spec import ModelSpec

    inp = execution("unused")
    inp.model = ModelSpec(provider="nosuch", model="m")
    async with worker_in_process(runner_env(temporal_server.address, queue), monkeypatch):
        handle = await start(client, inp, queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "unknown LLM provider 'nosuch'" in str(info.value.cause)


@pytest.mark.parametrize("final_in_call", [True, False], ids=["posted-by-the-last-model-call", "started-before"])
async def test_one_completed_event_with_the_results_data_however_it_is_posted(
        final_in_call: bool, tmp_path: Path, temporal_server: Any, client: Client, queue: str,
        collector: EventCollector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Since ``final_in_call`` the model call that answers posts ``completed`` (no local activity, no marker in
    history); an execution started before posts it from the workflow. A person sees the same stream either way."""
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [{"name": "list_files", "args": {}}]},
                                                {"content": "Nothing here."}])
    inp = execution(script, workspace=ws, tools=["workspace"])
    inp.final_in_call = final_in_call
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        history = await handle.fetch_history()
    wait_for(lambda: any(e["type"] == "completed" for e in collector.of(inp.execution_id)), what="completed event")
    events = collector.of(inp.execution_id)
    kinds = [e["type"] for e in events if e["type"] != "token"]
    assert kinds == ["step_started", "message", "tool_started", "tool_finished", "step_started", "message",
                     "completed"]
    assert events[-1]["data"] == {"output": "Nothing here.", "steps": 2, "usage": result.usage}
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert len(markers) == (0 if final_in_call else 1)
