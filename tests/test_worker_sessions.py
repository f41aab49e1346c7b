"""Sessions end to end on a real Temporal dev server, driven by the scripted chat model.

The scripted model picks its reply by the number of assistant messages in the conversation it is sent, so
the reply a turn gets proves which earlier turns its model call saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from stigmer.worker.params import CANCEL_TURN, CLOSE, MAX_QUEUED, STATE, TURN
from tests.support.agents import (
    EventCollector,
    last_event,
    runner_env,
    send,
    session_input,
    start_session,
    until,
    worker_in_process,
)
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow


def _refusal(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str:
    return str(getattr(exc.value.cause, "message", exc.value.cause))


async def test_turn_two_sees_turn_one_and_the_usage_adds_up(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": "Nice to meet you, Ada.", "usage": {"input_tokens": 40, "output_tokens": 6}},
        {"content": "Your name is Ada.", "usage": {"input_tokens": 60, "output_tokens": 5, "cached_tokens": 30}}])
    inp = session_input(script)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, inp, queue)
        first, answer = await send(handle, "I am Ada.")
        assert answer == {"execution_id": first, "queued": 0}
        done1 = await last_event(collector, first)
        second, _ = await send(handle, "What is my name?")
        done2 = await last_event(collector, second)
        state = await handle.query(STATE)
        turn = await handle.query(TURN, second)

    assert (done1["type"], done1["data"]["output"]) == ("completed", "Nice to meet you, Ada.")
    assert (done2["type"], done2["data"]["output"]) == ("completed", "Your name is Ada.")
    assert [c["step"] for c in read_calls(script)] == [0, 1]  # turn 2's call was sent turn 1's answer
    assert (done1["data"]["session_id"], done1["data"]["turn"], done2["data"]["turn"]) == (inp.session_id, 1, 2)
    u1, u2 = done1["data"]["usage"], done2["data"]["usage"]
    assert (u1["input_tokens"], u1["output_tokens"], u1["estimated"]) == (40, 6, False)
    assert (u2["input_tokens"], u2["output_tokens"], u2["cached_tokens"]) == (60, 5, 30)
    total = done2["data"]["session_usage"]
    assert (total["input_tokens"], total["output_tokens"], total["cached_tokens"], total["model_calls"]) == (
        100, 11, 30, 2)
    assert state["status"] == "idle" and state["turns"] == 2 and state["usage"]["input_tokens"] == 100
    assert state["model"]["model"] == script and state["messages"] == 5  # system + 2 x (person, answer)
    assert turn["status"] == "completed" and turn["output"] == "Your name is Ada."
    assert not any(e["type"] == "model_resolved" for e in collector.events)  # the pinned model stays


async def test_turns_sent_while_one_runs_queue_in_order_and_the_ninth_waiting_is_refused(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[dict[str, Any]] = [{"content": "Answer 0.", "delay": 3}]
    steps += [{"content": f"Answer {n}."} for n in range(1, MAX_QUEUED + 1)]
    script = write_script(tmp_path / "s.json", steps)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script), queue)
        running, _ = await send(handle, "message 0")
        await until(lambda: read_calls(script), what="the first turn's model call")
        sent = [await send(handle, f"message {n}") for n in range(1, MAX_QUEUED + 1)]
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await send(handle, "one too many")
        with pytest.raises(WorkflowUpdateFailedError) as empty:
            await send(handle, "   ")
        ends = [await last_event(collector, eid) for eid in [running] + [eid for eid, _ in sent]]

    assert [answer["queued"] for _, answer in sent] == list(range(1, MAX_QUEUED + 1))
    assert _refusal(refused) == (f"{MAX_QUEUED} turns are already waiting in this session: send this one when one "
                                 "has run")
    assert _refusal(empty) == "the message is empty: say something"
    assert [e["data"]["output"] for e in ends] == [f"Answer {n}." for n in range(MAX_QUEUED + 1)]
    assert [e["data"]["turn"] for e in ends] == list(range(1, MAX_QUEUED + 2))


async def test_cancel_turn_ends_that_turn_and_the_session_goes_on(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Too slow.", "delay": 60}])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script), queue)
        slow, _ = await send(handle, "take your time")
        await until(lambda: read_calls(script), what="the slow model call")
        await handle.signal(CANCEL_TURN, slow)
        cancelled = await last_event(collector, slow)
        # The cancelled call never answered, so the next call is the script's step 0 again: now without the delay.
        write_script(tmp_path / "s.json", [{"content": "Here now."}])
        after, _ = await send(handle, "are you there?")
        done = await last_event(collector, after)
        turn = await handle.query(TURN, slow)

    assert cancelled["type"] == "failed" and cancelled["data"]["cancelled"] is True
    assert (done["type"], done["data"]["output"], done["data"]["turn"]) == ("completed", "Here now.", 2)
    assert turn["status"] == "cancelled"


async def test_close_cancels_the_running_turn_drops_the_queued_one_and_refuses_more(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Never.", "delay": 60}])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script), queue)
        running, _ = await send(handle, "first")
        waiting, _ = await send(handle, "second")
        await until(lambda: read_calls(script), what="the first model call")
        await handle.signal(CLOSE)
        result = await handle.result()
        ends = [await last_event(collector, running), await last_event(collector, waiting)]
        with pytest.raises(Exception, match=r"(?i)complet|closed|not found"):
            await send(handle, "third")

    assert result.turns == 1
    assert [(e["type"], e["data"]["cancelled"]) for e in ends] == [("failed", True), ("failed", True)]
    assert len(read_calls(script)) == 1  # the queued turn never called the model


async def test_continue_as_new_keeps_the_conversation_the_usage_and_the_count(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [
        {"content": f"Reply {n}.", "usage": {"input_tokens": 10 * (n + 1), "output_tokens": 2}} for n in range(3)])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, session_input(script, can_after_turns=2), queue)
        first_run = (await handle.describe()).run_id
        ends = []
        for n in range(3):
            eid, _ = await send(handle, f"message {n}")
            ends.append(await last_event(collector, eid))
        state = await handle.query(STATE)
        run_now = (await handle.describe()).run_id

    assert run_now != first_run  # it continued as new after turn 2
    assert [e["data"]["output"] for e in ends] == ["Reply 0.", "Reply 1.", "Reply 2."]
    assert [c["step"] for c in read_calls(script)] == [0, 1, 2]  # turn 3 (new run) saw both earlier answers
    assert state["turns"] == 3 and state["messages"] == 7
    assert (state["usage"]["input_tokens"], state["usage"]["output_tokens"]) == (60, 6)
    assert ends[2]["data"]["session_usage"]["input_tokens"] == 60
    assert state["model"]["model"] == script


async def test_a_turn_that_names_a_model_changes_the_pinned_one_and_says_so(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_script(tmp_path / "first.json", [{"content": "From the first model."}])
    other = write_script(tmp_path / "other.json", [{"content": "unused"}, {"content": "From the other model."},
                                                   {"content": "Still the other model."}])
    inp = session_input(first)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, inp, queue)
        one, _ = await send(handle, "hello")
        await last_event(collector, one)
        two, _ = await send(handle, "switch", model=f"scripted:{other}")
        done2 = await last_event(collector, two)
        three, _ = await send(handle, "and now?")
        done3 = await last_event(collector, three)
        state = await handle.query(STATE)

    resolved = [e for e in collector.events if e["type"] == "model_resolved"]
    assert [e["execution_id"] for e in resolved] == [two]
    assert resolved[0]["data"]["changed_from"] == inp.model.id and resolved[0]["data"]["model"]["model"] == other
    assert (done2["data"]["output"], done3["data"]["output"]) == ("From the other model.", "Still the other model.")
    assert state["model"]["model"] == other
