"""Approvals and budgets end to end on a real Temporal dev server, driven by the scripted chat model.

A call that needs a person waits in the workflow (no activity) for the ``decide_approval`` Update; the
tool runs only after an approval, once; a rejected or timed-out call never runs and the model is told why.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from stigmer.providers.spec import ModelSpec
from stigmer.worker._approval import args_hash
from stigmer.worker.params import STATE, STATUS, ExecutionInput
from tests.support.agents import (
    REPO,
    EventCollector,
    agent,
    decide,
    event_of,
    last_event,
    runner_env,
    send,
    session_input,
    start,
    start_session,
    worker_in_process,
)
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow

WRITE = {"name": "write_file", "args": {"path": "note.txt", "content": "hello"}}


def run_input(script: str, ws: Path, tools: list[str] | None = None, mcp: list[dict[str, Any]] | None = None,
              max_tokens_total: int | None = None, **spec: Any) -> ExecutionInput:
    """A plain run under the default approval policy unless ``spec`` says otherwise."""
    snapshot = agent(tools if tools is not None else ["workspace"], mcp, **{"approvals": {"mode": "default"}, **spec})
    return ExecutionInput(execution_id=uuid.uuid4().hex[:12], agent_name="tester", agent=snapshot, message="go",
                          workspace=str(ws), model=ModelSpec(provider="scripted", model=script, reason="test"),
                          max_tokens_total=max_tokens_total, by_ref=True, final_in_call=True)


async def replay(handle: Any) -> None:
    from temporalio.worker import Replayer

    from stigmer.worker.session import SessionWorkflow
    from stigmer.worker.workflows import AgentWorkflow

    await Replayer(workflows=[AgentWorkflow, SessionWorkflow]).replay_workflow(await handle.fetch_history())


def _refusal(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    return str(getattr(exc.value.cause, "message", exc.value.cause))


def _tool_messages(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in status["messages"] if m["role"] == "tool"]


async def test_an_approved_call_runs_once_after_the_decision(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Writing.", "tool_calls": [WRITE]}, {"content": "Done."}])
    inp = run_input(script, tmp_path)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        asked = (await event_of(collector, inp.execution_id, "approval_requested"))["data"]
        waiting = await handle.query(STATUS)
        assert not (tmp_path / "note.txt").exists()  # nothing ran while it waited
        answer = await decide(handle, asked, approve=True)
        result = await handle.result()
        decided = (await event_of(collector, inp.execution_id, "approval_decided"))["data"]
        done = await last_event(collector, inp.execution_id)

    assert asked == {"approval_id": f"{inp.execution_id}.1.0", "kind": "tool", "tool": "write_file",
                     "args": WRITE["args"], "args_hash": args_hash("write_file", WRITE["args"]), "call_id": "call_0_0",
                     "step": 1, "reason": "write_file is a tool that can change things (the default policy asks; "
                                          "see spec.approvals)"}
    assert [p["approval_id"] for p in waiting["pending_approvals"]] == [asked["approval_id"]]
    assert answer == {"approval_id": asked["approval_id"], "decision": "approved"}
    assert decided == {"approval_id": asked["approval_id"], "decision": "approved", "reason": "", "always": False,
                       "by": "tester"}
    assert (result.output, (tmp_path / "note.txt").read_text()) == ("Done.", "hello")
    assert [e["type"] for e in collector.of(inp.execution_id)].count("tool_started") == 1
    assert done["type"] == "completed"


async def test_a_rejected_call_never_runs_and_the_model_sees_the_reason(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Writing.", "tool_calls": [WRITE]},
                                                {"content": "I did not write it."}])
    inp = run_input(script, tmp_path)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        asked = (await event_of(collector, inp.execution_id, "approval_requested"))["data"]
        await decide(handle, asked, approve=False, reason="not in my home folder")
        result = await handle.result()
        status = await handle.query(STATUS)
        decided = (await event_of(collector, inp.execution_id, "approval_decided"))["data"]

    assert result.output == "I did not write it."
    assert not (tmp_path / "note.txt").exists()
    assert "tool_started" not in [e["type"] for e in collector.of(inp.execution_id)]
    tool = _tool_messages(status)[0]
    assert tool["is_error"] and tool["content"] == "the person rejected this call: not in my home folder"
    assert (decided["decision"], decided["reason"]) == ("rejected", "not in my home folder")


async def test_a_decision_for_other_arguments_a_second_one_and_one_after_the_end_are_refused(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two calls that ask: while the second waits, the turn runs, so a second decision on the first is refused
    # for being second (not for a turn that ended).
    later = {"name": "write_file", "args": {"path": "later.txt", "content": "later"}}
    script = write_script(tmp_path / "s.json", [{"content": "Writing.", "tool_calls": [WRITE, later]},
                                                {"content": "Done."}])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script, workspace=tmp_path, tools=["workspace"],
                                                           approvals={"mode": "default"}), queue)
        turn, _ = await send(handle, "write it")
        await event_of(collector, turn, "approval_requested", 2)
        both = {e["data"]["args"]["path"]: e["data"] for e in collector.of(turn) if e["type"] == "approval_requested"}
        asked, asked_later = both["note.txt"], both["later.txt"]
        other = args_hash("write_file", {"path": "note.txt", "content": "something else"})
        with pytest.raises(WorkflowUpdateFailedError) as wrong_hash:
            await decide(handle, asked, approve=True, args_hash=other)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await decide(handle, {**asked, "approval_id": f"{turn}.9.9"}, approve=True)
        assert not (tmp_path / "note.txt").exists()
        await decide(handle, asked, approve=True)
        with pytest.raises(WorkflowUpdateFailedError) as second:
            await decide(handle, asked, approve=False)
        await decide(handle, asked_later, approve=False, reason="one is enough")
        await last_event(collector, turn)
        with pytest.raises(WorkflowUpdateFailedError) as ended:
            await decide(handle, asked, approve=False)
        await replay(handle)  # refused Updates and all: the session's history replays

    assert _refusal(wrong_hash) == ("these arguments are not the ones awaiting approval (args_hash does not match the "
                                    "pending call's; look at the approval again and decide on what it shows)")
    assert _refusal(unknown) == f"no approval '{turn}.9.9' is waiting in execution {turn}"
    assert _refusal(second) == f"approval {asked['approval_id']} was already decided (approved)"
    assert _refusal(ended) == (f"approval {asked['approval_id']} belongs to execution {turn}, which has ended "
                               "(completed)")
    assert [e["type"] for e in collector.of(turn)].count("tool_started") == 1
    decisions = [e["data"]["decision"] for e in collector.of(turn) if e["type"] == "approval_decided"]
    assert sorted(decisions) == ["approved", "rejected"] and not (tmp_path / "later.txt").exists()


async def test_past_approval_timeout_the_call_is_rejected_with_that_reason(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Writing.", "tool_calls": [WRITE]},
                                                {"content": "Nobody answered."}])
    inp = run_input(script, tmp_path, approvalTimeout="1s")
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        status = await handle.query(STATUS)
        decided = (await event_of(collector, inp.execution_id, "approval_decided"))["data"]

    assert result.output == "Nobody answered." and not (tmp_path / "note.txt").exists()
    assert (decided["decision"], decided["reason"]) == ("timed_out", "no decision within 1s (approvalTimeout)")
    assert _tool_messages(status)[0]["content"] == "this call was not run: no decision within 1s (approvalTimeout)"


async def test_always_allow_lets_the_tool_run_unasked_for_the_rest_of_the_session(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    again = {"name": "write_file", "args": {"path": "second.txt", "content": "again"}}
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [WRITE]}, {"content": "One."},
                                                {"content": "", "tool_calls": [again]}, {"content": "Two."}])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script, workspace=tmp_path, tools=["workspace"],
                                                           approvals={"mode": "default"}), queue)
        one, _ = await send(handle, "write one")
        asked = (await event_of(collector, one, "approval_requested"))["data"]
        await decide(handle, asked, approve=True, always=True)
        await last_event(collector, one)
        two, _ = await send(handle, "write another")
        done = await last_event(collector, two)

    assert done["data"]["output"] == "Two." and (tmp_path / "second.txt").read_text() == "again"
    assert "approval_requested" not in [e["type"] for e in collector.of(two)]


async def test_mcp_tools_annotated_read_only_run_unasked_and_the_others_ask(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = {"name": "time", "stdio": {"command": sys.executable,
                                        "args": [str(REPO / "examples" / "mcp" / "time_server.py")], "env": {}}}
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "get_time", "args": {}}, {"name": "echo", "args": {"text": "hi"}}]},
        {"content": "Done."}])
    inp = run_input(script, tmp_path, tools=[], mcp=[server])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        asked = (await event_of(collector, inp.execution_id, "approval_requested"))["data"]
        await event_of(collector, inp.execution_id, "tool_finished")  # get_time ran while echo waited
        await decide(handle, asked, approve=True)
        result = await handle.result()

    assert (asked["tool"], asked["reason"]) == ("echo", "echo is an MCP tool not annotated readOnlyHint (the default "
                                                        "policy asks; see spec.approvals)")
    assert result.output == "Done."
    assert [e["type"] for e in collector.of(inp.execution_id)].count("approval_requested") == 1


async def test_require_and_auto_globs_win_over_the_mode(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [WRITE, {"name": "list_files", "args": {}}]}, {"content": "Done."}])
    inp = run_input(script, tmp_path, approvals={"mode": "always", "require": ["list_*"], "auto": ["write_*"]})
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        asked = (await event_of(collector, inp.execution_id, "approval_requested"))["data"]
        await decide(handle, asked, approve=True)
        await handle.result()

    assert (asked["tool"], asked["reason"]) == ("list_files", "list_files matches spec.approvals.require 'list_*'")
    assert (tmp_path / "note.txt").read_text() == "hello"  # write_* is auto: it ran unasked


async def test_a_token_budget_stops_the_run_with_a_failed_event_naming_it(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [WRITE], "usage": {"input_tokens": 700, "output_tokens": 400}},
        {"content": "Done."}])
    inp = run_input(script, tmp_path, approvals={"mode": "never"}, budget={"maxTokens": 1000})
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        failed = await last_event(collector, inp.execution_id)

    assert failed["type"] == "failed"
    assert failed["data"]["error"] == ("budget exceeded: 1100 tokens used, the limit is 1000 (spec.budget.maxTokens "
                                       "1000); raise the budget or make the task smaller")
    assert failed["data"]["budget"] == {"limit": "maxTokens", "value": 1000, "used": 1100}
    assert failed["data"]["usage"]["input_tokens"] == 700
    assert not (tmp_path / "note.txt").exists() and len(read_calls(script)) == 1


async def test_max_tokens_total_wins_over_the_agent_budget(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [WRITE], "usage": {"input_tokens": 70, "output_tokens": 40}},
        {"content": "Done."}])
    inp = run_input(script, tmp_path, approvals={"mode": "never"}, budget={"maxTokens": 1000}, max_tokens_total=100)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        with pytest.raises(WorkflowFailureError):
            await (await start(client, inp, queue)).result()
        failed = await last_event(collector, inp.execution_id)

    assert "(--max-tokens-total 100)" in failed["data"]["error"]
    assert failed["data"]["budget"] == {"limit": "maxTokens", "value": 100, "used": 110}


async def test_on_exceeded_ask_requests_a_budget_approval_and_goes_on_when_approved(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [WRITE], "usage": {"input_tokens": 70, "output_tokens": 40}},
        {"content": "Done.", "usage": {"input_tokens": 20, "output_tokens": 5}}])
    inp = run_input(script, tmp_path, approvals={"mode": "never"}, budget={"maxTokens": 100, "onExceeded": "ask"})
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        asked = (await event_of(collector, inp.execution_id, "approval_requested"))["data"]
        assert not (tmp_path / "note.txt").exists()
        await decide(handle, asked, approve=True)
        result = await handle.result()

    budget = {"limit": "maxTokens", "value": 100, "used": 110}
    assert (asked["kind"], asked["tool"], asked["args"]) == ("budget", None, budget)
    assert asked["args_hash"] == args_hash(None, budget)
    assert result.output == "Done." and (tmp_path / "note.txt").read_text() == "hello"
    assert (result.usage["input_tokens"], result.usage["output_tokens"], result.usage["model_calls"]) == (90, 45, 2)
    assert result.usage["estimated"] is False


async def test_on_exceeded_ask_rejected_fails_like_a_budget(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [WRITE], "usage": {"input_tokens": 70, "output_tokens": 40}},
        {"content": "Done."}])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script, workspace=tmp_path, tools=["workspace"],
                                                           budget={"maxTokens": 100, "onExceeded": "ask"}), queue)
        turn, _ = await send(handle, "go")
        asked = (await event_of(collector, turn, "approval_requested"))["data"]
        await decide(handle, asked, approve=False, reason="too expensive")
        failed = await last_event(collector, turn)
        state = await handle.query(STATE)

    assert failed["type"] == "failed" and failed["data"]["budget"]["used"] == 110
    assert not (tmp_path / "note.txt").exists()
    assert state["status"] == "idle" and state["usage"]["input_tokens"] == 70  # the session stays, usage counted


async def test_a_decision_survives_a_killed_runner_and_the_approved_call_runs_once(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str) -> None:
    """The runner dies while the call waits for its approval; the decision goes to a new runner, the tool runs
    once, and the history (approval wait and Update included) replays."""
    import os
    import signal

    from tests.support.agents import running, spawn_runner

    count = {"name": "run_shell", "args": {"command": "echo a >> count_a"}}
    script = write_script(tmp_path / "s.json", [{"content": "", "tool_calls": [count]}, {"content": "Counted."}])
    inp = run_input(script, tmp_path, tools=["shell"])
    env = runner_env(temporal_server.address, queue)
    with running(spawn_runner(env, tmp_path / "runner1.log")) as first:
        handle = await start(client, inp, queue)

        asked: dict[str, Any] = {}
        deadline = asyncio.get_running_loop().time() + 60
        while not asked:  # the workflow's own answer (a query), polled until the call waits
            assert asyncio.get_running_loop().time() < deadline, "no approval requested"
            waiting = (await handle.query(STATUS))["pending_approvals"]
            asked = waiting[0] if waiting else {}
            await asyncio.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    with running(spawn_runner(env, tmp_path / "runner2.log")):
        await decide(handle, asked, approve=True)
        result = await handle.result()
    assert result.output == "Counted."
    assert (tmp_path / "count_a").read_text() == "a\n"
    await replay(handle)
