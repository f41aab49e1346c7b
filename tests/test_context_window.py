"""A conversation that outgrows the model's context window: the oldest tool outputs go first, then older turns
are summarised by the same model; each is announced by an event, and the model is never sent more than fits.

Real Temporal dev server, a runner in this process, the scripted chat model (which answers a summary request
with its script's ``summary``); ``Tunables.context_tokens`` sets a small window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from stigmer.worker import _context
from stigmer.worker.params import STATE
from stigmer.worker.tools.builtin import builtin_schemas
from tests.support.agents import (
    EventCollector,
    execution,
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

WINDOW = 3000  # tokens: (3000 - 750 reply reserve) x 3.5 = 7,875 characters for messages and tool definitions


def _tools_chars(toolsets: list[str]) -> int:
    return sum(len(t.name) + len(t.description) + len(json.dumps(t.parameters)) for t in builtin_schemas(toolsets))


def _chars(messages: list[dict[str, Any]]) -> int:
    return sum(len(m["content"]) + _context.OVERHEAD_CHARS for m in messages)


async def test_the_oldest_tool_outputs_are_dropped_first_and_the_last_ones_are_kept_whole(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(6):
        (ws / f"part{i}.txt").write_text(str(i) * 3000)
    steps = [{"content": "", "tool_calls": [{"name": "read_file", "args": {"path": f"part{i}.txt"}}]} for i in range(6)]
    script = write_script(tmp_path / "s.json", [*steps, {"content": "read them all"}], record_messages=True)
    inp = execution(script, workspace=ws, tools=["workspace"], context_tokens=WINDOW)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
    calls = [c["messages"] for c in read_calls(script)]  # what the model was sent, as it received it
    assert (result.status, result.output) == ("completed", "read them all")
    last = calls[-1]
    outputs = [m["content"] for m in last if m["role"] == "tool"]
    assert outputs[-1] == "5" * 3000  # the output the model just asked for is whole
    assert all("dropped to fit the model's context window" in text for text in outputs[:-2])
    assert all(_chars(sent) <= _context.budget_chars(WINDOW, None, _tools_chars(["workspace"])) for sent in calls)
    trimmed = [e["data"] for e in collector.of(inp.execution_id) if e["type"] == "context_trimmed"]
    assert trimmed and trimmed[-1]["dropped_total"] == len(outputs) - 2 and trimmed[-1]["window_tokens"] == WINDOW
    # Dropped outputs stay dropped: every later call's prompt starts as the one before it.
    assert [e["dropped_total"] for e in trimmed] == sorted(e["dropped_total"] for e in trimmed)


async def test_older_turns_are_summarised_when_dropping_outputs_is_not_enough(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "Noted."}], repeat_last=True, record_messages=True,
                          summary="The person told five long stories about their garden.")
    inp = session_input(script)
    inp.tunables.context_tokens = WINDOW
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, inp, queue)
        ends = []
        for i in range(6):
            execution_id, _ = await send(handle, f"Story {i}: " + "the garden grew. " * 120)  # ~2,000 characters
            ends.append(await last_event(collector, execution_id))
        state = await handle.query(STATE)
    calls = [c["messages"] for c in read_calls(script)]
    assert [e["type"] for e in ends] == ["completed"] * 6
    summarised = [e for e in collector.events if e["type"] == "context_summarised"]
    assert summarised, "no context_summarised event"
    assert summarised[0]["data"]["messages_summarised"] >= 2
    assert summarised[0]["data"]["chars_after"] < summarised[0]["data"]["chars_before"]
    last = calls[-1]
    assert last[0]["role"] == "system" and _context.SUMMARY_HEADER in last[0]["content"]
    assert "five long stories about their garden" in last[0]["content"]
    assert last[-1]["content"].startswith("Story 5: ")  # the newest turn is whole
    assert all(_chars(sent) <= _context.budget_chars(WINDOW, None, 0) for sent in calls)
    assert state["turns"] == 6


async def test_a_last_step_too_large_for_the_window_fails_naming_the_sizes_and_what_to_change(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script(tmp_path / "s.json", [{"content": "never"}])
    inp = execution(script, message="x" * 20_000, context_tokens=WINDOW)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        failed = await last_event(collector, inp.execution_id)
        with pytest.raises(Exception):  # noqa: B017 - the workflow fails; its event says why
            await handle.result()
    assert failed["type"] == "failed"
    error = failed["data"]["error"]
    assert f"context window ({WINDOW} tokens)" in error and "llm.num_ctx" in error, error


@pytest.mark.parametrize("strategy", ["fail", "drop"])
async def test_a_strategy_that_may_not_summarise_fails_naming_it_instead(
        strategy: str, tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(6):
        (ws / f"part{i}.txt").write_text(str(i) * 1500 * (i + 1))  # ever longer: 1,500 to 9,000 characters
    steps = [{"content": "", "tool_calls": [{"name": "read_file", "args": {"path": f"part{i}.txt"}}]} for i in range(6)]
    script = write_script(tmp_path / "s.json", [*steps, {"content": "read them all"}])
    # "drop" gets further than "fail" (old outputs go), then meets an output that, with the person's message,
    # does not fit: it may not summarise.
    inp = execution(script, message="y" * 1000, workspace=ws, tools=["workspace"], context_tokens=WINDOW)
    env = {**runner_env(temporal_server.address, queue, collector.env()), "STIGMER_LLM_CONTEXT_STRATEGY": strategy}
    async with worker_in_process(env, monkeypatch):
        handle = await start(client, inp, queue)
        failed = await last_event(collector, inp.execution_id)
        with pytest.raises(Exception):  # noqa: B017 - the workflow fails; its event says why
            await handle.result()
    assert failed["type"] == "failed"
    assert f"llm.context_strategy is '{strategy}'" in failed["data"]["error"], failed["data"]["error"]
    trimmed = [e for e in collector.of(inp.execution_id) if e["type"] == "context_trimmed"]
    assert bool(trimmed) == (strategy == "drop")
    assert failed["data"]["steps"] == (4 if strategy == "fail" else 5)
