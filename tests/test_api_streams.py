"""Event streams of any length, resumable, and safe from slow readers.

The real API on loopback over a real SQLite store (a stand-in Temporal client: streams do not need
Temporal). What a user would notice: ``logs -f`` of a long execution shows every event and ends;
a client that reconnects with ``Last-Event-ID`` continues exactly where it stopped; a reader that
stops reading does not make the daemon hold every event for it, and when it reads again it still
gets every event once, in order, told in a comment that it fell behind.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.config import Config
from stigmer.store import open_store
from tests.support.backends import both_backends  # noqa: F401  (each test on SQLite and PostgreSQL)
from tests.support.daemon_api import ApiServer, FakeTemporal, fake_client, make_context, scripted_config, serve_api

EXECUTION = "long1"
MANY = 10_050  # more than the 10,000 the replay used to stop at


@pytest.fixture
def cfg(stigmer_home: Path) -> Config:
    return scripted_config(stigmer_home, STIGMER_LIMIT_SUBSCRIBER_QUEUE="16")


def _seed(cfg: Config, database_url: str | None, middle: int, *, end: bool = True) -> None:
    """An execution with ``middle`` token events (and a ``completed`` one), written straight to the store."""
    store = open_store(database_url or cfg.path("data") / "stigmer.db")
    try:
        store.create_execution(EXECUTION, agent="a", message="m", model={"provider": "scripted"}, workspace=None,
                               workflow_id=f"stigmer-exec-{EXECUTION}")
        for start in range(0, middle, 1000):
            store.append_events([{"execution_id": EXECUTION, "type": "token", "data": {"text": f"t{i}"}}
                                 for i in range(start, min(middle, start + 1000))])
        if end:
            store.append_events([{"execution_id": EXECUTION, "type": "completed", "data": {"output": "ok"}}])
    finally:
        store.close()


@pytest.fixture
def api(cfg: Config, database_url: str | None) -> Iterator[ApiServer]:
    with serve_api(make_context(cfg, fake_client(FakeTemporal()), database_url=database_url), publish=False) as served:
        yield served


def _read(response: httpx.Response) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """(events, comment lines, SSE ids) of a whole stream; a stream that goes idle instead of ending fails."""
    events, comments, ids = [], [], []
    for line in response.iter_lines():
        if line.startswith("data:"):
            events.append(json.loads(line[5:]))
        elif line.startswith("id:"):
            ids.append(int(line[3:]))
        elif line.startswith(":"):
            assert line != ": idle", f"the stream went idle after {len(events)} events instead of ending"
            comments.append(line)
    return events, comments, ids


def test_a_stream_longer_than_ten_thousand_events_is_sent_whole_and_ends(cfg: Config, database_url: str | None) -> None:
    _seed(cfg, database_url, MANY)
    with serve_api(make_context(cfg, fake_client(FakeTemporal()), database_url=database_url), publish=False) as api, \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as http, \
            http.stream("GET", f"/v1/executions/{EXECUTION}/events") as response:
        events, _, ids = _read(response)
    assert len(events) == MANY + 1
    assert [e["seq"] for e in events] == list(range(1, MANY + 2)) == ids
    assert events[-1]["type"] == "completed"


def test_a_reconnect_with_last_event_id_resumes_right_after_it(cfg: Config, database_url: str | None) -> None:
    _seed(cfg, database_url, 30)
    with serve_api(make_context(cfg, fake_client(FakeTemporal()), database_url=database_url), publish=False) as api, \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as http:
        url = f"/v1/executions/{EXECUTION}/events"
        with http.stream("GET", url, headers={"Last-Event-ID": "17"}) as response:
            events, _, _ = _read(response)
        assert [e["seq"] for e in events] == list(range(18, 32))
        # an EventSource reconnects with its original URL (?after=) and the Last-Event-ID it saw: the header wins
        with http.stream("GET", url, params={"after": 3}, headers={"Last-Event-ID": "29"}) as response:
            assert [e["seq"] for e in _read(response)[0]] == [30, 31]
        with http.stream("GET", url, params={"after": 29}) as response:
            assert [e["seq"] for e in _read(response)[0]] == [30, 31]
        bad = http.get(url, headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422 and "header.last-event-id" in bad.json()["detail"]


def test_a_reader_that_stops_reading_falls_behind_without_growing_memory_and_loses_nothing(
        cfg: Config, database_url: str | None) -> None:
    _seed(cfg, database_url, 1, end=False)
    posts, per_post, text = 30, 100, "x" * 4000  # ~12 MB of events: more than the sockets buffer
    # a small receive window (still above loopback's 64 KiB segment, below which TCP stalls outright)
    tiny_buffer = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)])
    with serve_api(make_context(cfg, fake_client(FakeTemporal()), database_url=database_url), publish=False) as api, \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=60, transport=tiny_buffer) as reader, \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as writer, \
            reader.stream("GET", f"/v1/executions/{EXECUTION}/events") as response:
        lines = response.iter_lines()
        assert json.loads(next(line for line in lines if line.startswith("data:"))[5:])["seq"] == 1  # live now
        (subscriber,) = api.state.hub.subscribers(EXECUTION)
        deepest = 0
        for n in range(posts):  # the reader reads nothing meanwhile
            batch = [{"execution_id": EXECUTION, "type": "token", "data": {"text": text, "n": n * per_post + i}}
                     for i in range(per_post)]
            assert writer.post("/v1/events", json={"events": batch}).json()["stored"] == per_post
            deepest = max(deepest, subscriber.queue.qsize())
        writer.post("/v1/events", json={"events": [{"execution_id": EXECUTION, "type": "completed",
                                                    "data": {"output": "done"}}]}).raise_for_status()
        assert subscriber.lags >= 1 and deepest <= 16  # bounded by limits.subscriber_queue, not by the events
        began = time.monotonic()
        events, comments = [], []
        for line in lines:
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            elif line.startswith(": fell behind"):
                comments.append(line)
        assert time.monotonic() - began < 60
    total = posts * per_post + 2
    assert [e["seq"] for e in events] == list(range(2, total + 1))  # every event once, in order
    assert events[-1]["type"] == "completed"
    assert comments and comments[0].startswith(": fell behind at event ") and "resuming from the store" in comments[0]
