"""Executions in flight survive an upgrade: every saved history in tests/data/histories/ replays on today's code.

The saved histories were recorded by earlier versions of the workflows (their names say which: ``pre-refs-``
before conversations went by reference and payloads left history, ``refs-`` after, ``final-`` since a plain run's
last model call posts its ``completed`` event); the tests here also record
today's plain run (tool calls and an approval) and session (two turns), replay them, and with
``SAVE_HISTORIES=1`` save them under today's tag. A history whose payloads went to the blob store is saved with
its blobs (``NAME.blobs/``), which the replayer's codec reads as a runner's would.
A workflow change that breaks determinism for executions already running fails here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from stigmer.blobs.codec import BlobCodec, data_converter
from stigmer.blobs.store import LocalBlobStore
from stigmer.worker.main import _workflow_runner
from stigmer.worker.session import SessionWorkflow
from stigmer.worker.workflows import AgentWorkflow
from tests.support.agents import (
    EventCollector,
    agent,
    decide,
    event_of,
    execution,
    last_event,
    runner_env,
    send,
    session_input,
    start,
    start_session,
    worker_in_process,
)
from tests.support.scripted_provider import write_script

pytestmark = pytest.mark.slow

HISTORIES = Path(__file__).parent / "data" / "histories"
TAG = "final"  # the tag today's recordings are saved under (SAVE_HISTORIES=1)
SAVED = sorted(HISTORIES.glob("*.json"))


def _replayer(blobs: Path | None = None) -> Replayer:
    """A replayer with the runners' own workflow sandbox (``worker.main._workflow_runner``) and, for a history whose
    payloads went to the blob store, the codec over its saved blobs."""
    workflows = [AgentWorkflow, SessionWorkflow]
    if blobs is None:
        return Replayer(workflows=workflows, workflow_runner=_workflow_runner())
    converter = data_converter(None, BlobCodec(LocalBlobStore(blobs), 4096))
    return Replayer(workflows=workflows, data_converter=converter, workflow_runner=_workflow_runner())


@pytest.mark.parametrize("path", SAVED, ids=[p.stem for p in SAVED])
async def test_a_saved_history_replays_on_todays_code(path: Path) -> None:
    blobs = path.with_suffix(".blobs")
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await _replayer(blobs if blobs.is_dir() else None).replay_workflow(history)


def test_the_saved_histories_cover_plain_runs_and_sessions_of_each_version() -> None:
    names = {p.stem for p in SAVED}
    assert {"pre-refs-plain-run", "pre-refs-session", "refs-plain-run", "refs-session", "final-plain-run"} <= names
    for name in ("refs-plain-run", "final-plain-run"):  # their model calls' inputs and outputs are references
        assert (HISTORIES / f"{name}.blobs").is_dir(), name


async def _keep(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    blobs = Path(os.environ["STIGMER_HOME"]) / "blobs"
    await _replayer(blobs).replay_workflow(history)
    if os.environ.get("SAVE_HISTORIES"):
        (HISTORIES / f"{TAG}-{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
        saved = HISTORIES / f"{TAG}-{name}.blobs"
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(blobs / workflow_id, saved / workflow_id)


async def test_todays_plain_run_with_tools_and_an_approval_replays(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("alpha " * 2000)
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "read_file", "args": {"path": "a.txt"}}]},
        {"content": "", "tool_calls": [{"name": "write_file", "args": {"path": "b.txt", "content": "beta"}}]},
        {"content": "Both done."},
    ])
    inp = execution(script, workspace=ws, tools=["workspace"])
    inp.agent = agent(["workspace"], approvals={"mode": "ask"})
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start(client, inp, queue)
        asked = await event_of(collector, inp.execution_id, "approval_requested")
        await decide(handle, asked["data"])
        assert (await handle.result()).status == "completed"
        await _keep(client, handle.id, "plain-run")
    assert (ws / "b.txt").read_text() == "beta"


async def test_todays_session_of_two_turns_replays(
        tmp_path: Path, temporal_server: Any, client: Client, queue: str, collector: EventCollector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("gamma " * 2000)
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "read_file", "args": {"path": "a.txt"}}]},
        {"content": "Read it."},
        {"content": "Still here."},
    ])
    inp = session_input(script, workspace=ws, tools=["workspace"])
    async with worker_in_process(runner_env(temporal_server.address, queue, collector.env()), monkeypatch):
        handle = await start_session(client, inp, queue)
        first, _ = await send(handle, "read a.txt")
        assert (await last_event(collector, first))["type"] == "completed"
        second, _ = await send(handle, "and now?")
        assert (await last_event(collector, second))["data"]["output"] == "Still here."
        await handle.signal("close")
        await handle.result()
        await _keep(client, handle.id, "session")
