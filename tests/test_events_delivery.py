"""Events survive a daemon outage: the runner's sink keeps and retries them, the daemon stores each once.

The daemon here is the real API (``create_app`` served by uvicorn on loopback), stopped and started
again on the same port while the sink (``HttpSink``, as a runner uses it) keeps publishing. What a
user would notice: a stream has every event, in order, once, even if some were posted while no
daemon listened; the runner never waited for the daemon; an event posted twice shows once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from stigmer.config import Config
from stigmer.daemon.api import create_app
from stigmer.daemon.context import DaemonContext
from stigmer.store import Store
from stigmer.store._schema import LATEST, MIGRATIONS
from stigmer.worker.events import SPOOL_DIR, HttpSink, event
from tests.support.daemon_api import FakeTemporal, fake_client, make_context, scripted_config
from tests.support.ports import free_port

EXECUTION = "e1"


@pytest.fixture
def cfg(stigmer_home: Path) -> Config:
    return scripted_config(stigmer_home)


@pytest.fixture
def ctx(cfg: Config) -> DaemonContext:
    store = Store.open(cfg.path("data") / "stigmer.db")
    store.create_execution(EXECUTION, agent="hello", message="hi", model={"provider": "scripted"}, workspace=None,
                           workflow_id=f"stigmer-exec-{EXECUTION}")
    store.close()
    return make_context(cfg, fake_client(FakeTemporal()))


@contextlib.contextmanager
def daemon(ctx: DaemonContext, port: int) -> Iterator[str]:
    """The daemon's API on ``port`` until the block ends (then nothing listens there)."""
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn sets it once the socket listens: a real readiness signal
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def stream(url: str, token: str) -> list[dict[str, Any]]:
    """The execution's events replayed through the API (what ``stigmer execution logs`` shows)."""
    response = httpx.get(f"{url}/v1/executions/{EXECUTION}/events", params={"follow": "false"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


async def until_stored(url: str, token: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Probe the API until the stream holds ``count`` events (the sink retries in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        events = await asyncio.to_thread(stream, url, token)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


def tokens(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [event(EXECUTION, "token", {"text": f"t{i}"}) for i in range(start, start + n)]


async def test_events_posted_while_the_daemon_is_down_arrive_after_it_once_and_in_order(ctx: DaemonContext) -> None:
    port = free_port()
    sink = HttpSink(f"http://127.0.0.1:{port}", ctx.token, backoff=(0.05, 0.2))
    try:
        with daemon(ctx, port):
            await sink.publish(tokens(3))
        began = time.monotonic()
        for i in range(3, 10):  # the daemon is down: every publish returns at once, nothing is lost
            await sink.publish(tokens(1, start=i))
        assert time.monotonic() - began < 1.0
        assert sink.queued == 7
        with daemon(ctx, port) as url:
            events = await until_stored(url, ctx.token, 10)
    finally:
        await sink.aclose()
    assert [e["data"]["text"] for e in events] == [f"t{i}" for i in range(10)]
    assert [e["seq"] for e in events] == list(range(1, 11))
    assert sink.queued == 0 and sink.dropped == 0


async def test_an_event_posted_twice_is_stored_once_and_the_answer_counts_it_ignored(ctx: DaemonContext) -> None:
    batch = tokens(2)
    with daemon(ctx, free_port()) as url:
        headers = {"Authorization": f"Bearer {ctx.token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            first = (await http.post("/v1/events", json={"events": batch})).json()
            again = (await http.post("/v1/events", json={"events": [*batch, *tokens(1, start=2)]})).json()
            legacy = [{k: v for k, v in e.items() if k != "id"} for e in batch]  # an older runner: no ids
            old = (await http.post("/v1/events", json={"events": legacy})).json()
        events = stream(url, ctx.token)
    assert (first, again, old) == ({"stored": 2, "verifying": 0, "ignored": 0},
                                   {"stored": 1, "verifying": 0, "ignored": 2},
                                   {"stored": 2, "verifying": 0, "ignored": 0})
    assert [e["data"]["text"] for e in events] == ["t0", "t1", "t2", "t0", "t1"]


async def test_an_event_retried_after_the_end_of_its_execution_is_ignored(ctx: DaemonContext) -> None:
    with daemon(ctx, free_port()) as url:
        headers = {"Authorization": f"Bearer {ctx.token}"}
        done = event(EXECUTION, "completed", {"output": "ok", "steps": 1})
        late = tokens(1)
        answers = [httpx.post(f"{url}/v1/events", json={"events": batch}, headers=headers).json()
                   for batch in ([done], late)]
        events = stream(url, ctx.token)
    assert answers == [{"stored": 1, "verifying": 0, "ignored": 0}, {"stored": 0, "verifying": 0, "ignored": 1}]
    assert [e["type"] for e in events] == ["completed"]


async def test_a_long_outage_keeps_the_newest_events_and_warns_once(ctx: DaemonContext,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    sink = HttpSink(f"http://127.0.0.1:{port}", ctx.token, max_queued=5, backoff=(0.05, 0.2))
    try:
        with caplog.at_level(logging.WARNING, logger="stigmer.events"):
            for i in range(8):
                await sink.publish(tokens(1, start=i))
        assert (sink.queued, sink.dropped) == (5, 3)
        assert sum("dropping the oldest" in r.getMessage() for r in caplog.records) == 1
        with daemon(ctx, port) as url:
            events = await until_stored(url, ctx.token, 5)
    finally:
        await sink.aclose()
    assert [e["data"]["text"] for e in events] == [f"t{i}" for i in range(3, 8)]


async def test_stopping_with_the_daemon_down_takes_bounded_time_and_says_what_was_lost(
        ctx: DaemonContext, caplog: pytest.LogCaptureFixture) -> None:
    sink = HttpSink(f"http://127.0.0.1:{free_port()}", ctx.token, close_timeout=0.5)
    await sink.publish(tokens(4))
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="stigmer.events"):
        await sink.aclose()
    assert time.monotonic() - began < 2.0
    assert sink.dropped == 4
    assert any("4 event(s) could not be posted" in r.getMessage() for r in caplog.records)
    assert ctx.token not in caplog.text


def test_a_store_from_before_event_ids_is_migrated_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the schema as the first release left it
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO executions (id, agent, message, model, workflow_id, status, last_seq, created_at, "
                     "updated_at) VALUES ('e1', 'a', 'm', '{}', 'w', 'running', 1, 0, 0)")
        conn.execute("INSERT INTO events VALUES ('e1', 1, 'token', '{\"text\": \"old\"}', 0)")
    conn.close()
    store = Store.open(path)
    try:
        assert store.schema_version() == LATEST
        fresh = tokens(1)
        assert [e["seq"] for e in store.append_events([*fresh, *fresh])] == [2]
        assert [e["data"]["text"] for e in store.events_after("e1")] == ["old", "t0"]
    finally:
        store.close()


async def test_what_a_stopping_runner_could_not_post_is_stored_when_the_daemon_starts(ctx: DaemonContext) -> None:
    spool = ctx.config.path("data") / SPOOL_DIR
    port = free_port()
    sink = HttpSink(f"http://127.0.0.1:{port}", ctx.token, close_timeout=0.5, spool_dir=spool)
    await sink.publish(tokens(3))
    await sink.aclose()  # the daemon was killed: it ends its orphaned runners before its API listens again
    files = list(spool.iterdir())
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert ctx.token not in files[0].read_text()
    with daemon(ctx, port) as url:
        events = stream(url, ctx.token)
    assert [e["data"]["text"] for e in events] == ["t0", "t1", "t2"]
    assert list(spool.iterdir()) == [] and sink.dropped == 0


def test_the_fault_suite_fails_a_completed_stream_that_misses_a_middle_event() -> None:
    from tests.faults import Report, checks

    def stream_of(calls: int) -> list[dict[str, Any]]:
        events = []
        for step in range(1, checks.TOOL_CALLS + 2):
            events.append({"type": "message", "data": {"step": step}})
            if step <= calls:
                events.append({"type": "tool_finished", "data": {"step": step, "call_id": f"c{step}"}})
        return [*events, {"type": "completed", "data": {}}]

    whole, partial = Report(seed=0), Report(seed=0)
    checks._middle_events("e1", stream_of(checks.TOOL_CALLS), whole)
    checks._middle_events("e1", stream_of(checks.TOOL_CALLS - 1), partial)
    assert (whole.problems, whole.partial_streams) == ([], 0)
    assert partial.partial_streams == 1 and not partial.ok and "misses middle events" in partial.problems[0]


async def test_a_runner_killed_during_an_outage_leaves_its_backlog_for_the_next_daemon(ctx: DaemonContext) -> None:
    spool = ctx.config.path("data") / SPOOL_DIR
    sink = HttpSink(f"http://127.0.0.1:{free_port()}", ctx.token, close_timeout=0.1, spool_dir=spool)
    try:
        await sink.publish(tokens(2))  # fails: the backlog is on disk from now on
        await sink.publish(tokens(2, start=2))  # joins it while the retry goes on
        # no aclose: kill -9 gives the runner no chance; the next daemon (another port) stores the spool
        with daemon(ctx, free_port()) as url:
            events = stream(url, ctx.token)
    finally:
        await sink.aclose()
    assert [e["data"]["text"] for e in events] == ["t0", "t1", "t2", "t3"]


async def test_events_the_daemon_refuses_for_good_are_dropped_not_retried(ctx: DaemonContext,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with daemon(ctx, free_port()) as url:
        sink = HttpSink(url, "not-the-token", backoff=(0.01, 0.01))
        try:
            with caplog.at_level(logging.WARNING, logger="stigmer.events"):
                await sink.publish(tokens(2))
            assert (sink.queued, sink.dropped) == (0, 2)
            assert any("refused 2 event(s) (HTTP 401)" in r.getMessage() for r in caplog.records)
        finally:
            await sink.aclose()
        assert stream(url, ctx.token) == []
