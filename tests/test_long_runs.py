"""Agents that run for hours: a thousand steps of 64 KB tool outputs, on a real Temporal dev server.

The scripted model asks for one ``read_file`` per step (each file 64 KB, all different) for 1,000 steps, then
answers. Conversations go by reference and tool outputs are blobs, so each step adds the same few KB to
history; the execution continues as new every ``can_after_steps`` model calls, carrying its state; the oldest
tool outputs leave the model's context window as it fills (``context_trimmed`` events). Checked: the run
completes with every step, each run's history stays under 5 MB, no event in any run is over 16 KB, and the
same holds with the runner killed (-9) at seeded random steps and started again.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory

from tests.support.agents import (
    EventCollector,
    execution,
    runner_env,
    runs_of,
    spawn_runner,
    start,
    until,
    worker_in_process,
)
from tests.support.scripted_provider import read_calls, write_script

pytestmark = pytest.mark.slow

STEPS = 1000
OUTPUT_CHARS = 64 * 1024 - 64  # just under limits.tool_output_chars: every output is kept whole
HISTORY_LIMIT = 5_000_000
EVENT_LIMIT = 16_000


def _workspace(root: Path) -> Path:
    ws = root / "ws"
    ws.mkdir()
    filler = "x" * (OUTPUT_CHARS - 16)
    for i in range(STEPS):
        (ws / f"f{i:04d}.txt").write_text(f"{i:015d}\n{filler}")
    return ws


def _script(root: Path) -> str:
    steps: list[dict[str, Any]] = [{"content": "", "tool_calls": [{"name": "read_file",
                                                                    "args": {"path": f"f{i:04d}.txt"}}]}
                                   for i in range(STEPS)]
    return write_script(root / "s.json", [*steps, {"content": f"read {STEPS} files"}], cache=True)


def _check_histories(runs: list[WorkflowHistory]) -> None:
    for history in runs:
        size = sum(e.ByteSize() for e in history.events)
        biggest = max(e.ByteSize() for e in history.events)
        assert size < HISTORY_LIMIT, f"a run's history is {size} bytes"
        assert biggest < EVENT_LIMIT, f"an event of {biggest} bytes"
    assert len(runs) >= 4  # continued as new at least every 250 model calls


async def test_a_thousand_steps_of_64_kb_outputs_complete_with_small_histories(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws, script = _workspace(tmp_path), _script(tmp_path)
    inp = execution(script, workspace=ws, tools=["workspace"], max_steps=STEPS + 1)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        result = await handle.result()
        runs = await runs_of(client, handle.id)
    assert (result.status, result.output, result.steps) == ("completed", f"read {STEPS} files", STEPS + 1)
    assert len(read_calls(script)) == STEPS + 1  # no model call was made twice
    _check_histories(runs)
    events = collector.of(inp.execution_id)
    finished = [e for e in events if e["type"] == "tool_finished"]
    assert len(finished) == STEPS and not any(e["data"]["is_error"] for e in finished)
    trimmed = [e for e in events if e["type"] == "context_trimmed"]
    assert trimmed and trimmed[-1]["data"]["dropped_total"] > STEPS - 10  # old outputs left the window
    assert [e["type"] for e in events].count("completed") == 1 and events[-1]["type"] == "completed"


async def test_a_thousand_steps_survive_runner_kills_at_seeded_random_steps(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector) -> None:
    ws, script = _workspace(tmp_path), _script(tmp_path)
    inp = execution(script, workspace=ws, tools=["workspace"], max_steps=STEPS + 1, tool_heartbeat=2.0,
                    model_heartbeat=2.0, retry_initial=0.2)
    env = {**runner_env(temporal_server.address, queue, collector.env()), "STIGMER_HOME": str(tmp_path / "home")}
    kill_at = sorted(random.Random(11).sample(range(20, STEPS - 20), 3))
    handle = await start(client, inp, queue)
    for n, step in enumerate([*kill_at, None]):
        runner = spawn_runner(env, tmp_path / f"runner{n}.log")
        try:
            if step is None:
                result = await handle.result()
                break

            def reached(step: int = step) -> bool:
                return any(e["type"] == "step_started" and e["data"]["step"] >= step
                           for e in collector.of(inp.execution_id))

            await until(reached, 300, f"step {step}")
        finally:
            if runner.poll() is None:
                os.killpg(runner.pid, signal.SIGKILL)
                runner.wait(timeout=10)
    assert (result.status, result.steps) == ("completed", STEPS + 1)
    _check_histories(await runs_of(client, handle.id))
    steps_called = {c["step"] for c in read_calls(script)}
    assert steps_called == set(range(STEPS + 1))  # every model call made; a killed one made again at most


async def test_a_session_of_500_turns_continues_as_new_and_its_last_turn_sees_the_earlier_ones(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.worker.params import STATE
    from tests.support.agents import last_event, send, session_input, start_session

    turns = 500
    # The scripted model answers by the number of its own answers it is sent: turn k's answer proves it saw k - 1.
    script = write_script(tmp_path / "s.json", [{"content": f"answer {k}"} for k in range(1, turns + 1)], cache=True)
    inp = session_input(script)
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, inp, queue)
        outputs = []
        for k in range(1, turns + 1):
            execution_id, _ = await send(handle, f"turn {k}")
            outputs.append((await last_event(collector, execution_id))["data"]["output"])
        state = await handle.query(STATE)
        runs = await runs_of(client, handle.id)
    assert outputs == [f"answer {k}" for k in range(1, turns + 1)]
    assert [c["step"] for c in read_calls(script)] == list(range(turns))
    assert len(runs) >= 3  # continued as new at least twice (every 100 turns by default)
    assert (state["turns"], state["messages"]) == (turns, 1 + 2 * turns)
    for history in runs:
        assert max(e.ByteSize() for e in history.events) < EVENT_LIMIT
