"""Starting executions exactly once, deleting and pruning them, and the daemon's retention.

The real API on loopback over a real SQLite store, a stand-in Temporal client where Temporal's
answers must be scripted (a start that times out after it happened, a Temporal that cannot be
asked), and the real Temporal dev server + a real runner for the retried start. The CLI is the
real ``stigmer`` (``main()`` in process). What a user would notice: a retried start never runs an
agent twice and never loses the run that did start; ``execution delete``/``prune`` remove what
ended (never a live run) with its events; the daemon forgets old runs by itself.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.config import Config
from stigmer.store import Store
from tests.support.daemon_api import (
    ApiServer,
    FakeTemporal,
    WorkerThread,
    fake_client,
    invoke,
    make_context,
    real_client,
    scripted_config,
    serve_api,
)
from tests.support.scripted_provider import PLUGIN, write_script
from tests.support.temporal import TemporalServer

V1 = "agentic.stigmer.ai/v1"
AGENT = {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "hello"}, "spec": {"instructions": "Be brief."}}
START = {"agent": "hello", "message": "hi", "model": "scripted:x.json"}
DAY = 86400.0


@pytest.fixture
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=10) as client:
        client.post("/v1/apply", json={"documents": [AGENT]}).raise_for_status()
        yield client


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


# -- starting once ------------------------------------------------------------------------------------------------


def test_a_repeated_start_with_the_same_idempotency_key_is_the_same_execution(http: httpx.Client,
                                                                              temporal: FakeTemporal) -> None:
    same = key()
    first = http.post("/v1/executions", json=START, headers=same)
    again = http.post("/v1/executions", json=START, headers=same)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(temporal.started) == 1
    other = http.post("/v1/executions", json={**START, "message": "something else"}, headers=same)
    assert other.status_code == 409 and "another agent or message" in other.json()["detail"]
    assert http.post("/v1/executions", json=START, headers=key()).json()["id"] != first.json()["id"]
    assert len(temporal.started) == 2 and len(http.get("/v1/executions").json()["items"]) == 2


def test_a_start_that_times_out_after_the_workflow_started_keeps_its_execution(http: httpx.Client,
                                                                               temporal: FakeTemporal) -> None:
    temporal.fail_after_start = TimeoutError()
    response = http.post("/v1/executions", json=START)
    assert response.status_code == 201, response.text  # Temporal has the workflow: the execution runs
    execution_id = response.json()["id"]
    posted = http.post("/v1/events", json={"events": [{"execution_id": execution_id, "type": "completed",
                                                       "data": {"output": "ran", "steps": 1}}]}).json()
    assert posted["stored"] == 1  # its events are not dropped as an unknown execution's
    assert http.get(f"/v1/executions/{execution_id}").json()["output"] == "ran"


def test_a_start_temporal_cannot_confirm_stays_pending_and_a_retry_finishes_it(http: httpx.Client,
                                                                               temporal: FakeTemporal) -> None:
    same = key()
    temporal.fail_after_start, temporal.unreachable = TimeoutError(), RuntimeError("Temporal unreachable")
    response = http.post("/v1/executions", json=START, headers=same)
    assert response.status_code == 503 and "could not confirm the start" in response.json()["detail"]
    execution_id = response.json()["execution_id"]
    kept = http.get(f"/v1/executions/{execution_id}").json()
    assert kept["status"] == "pending" and "could not confirm" in kept["error"]
    temporal.fail_after_start = temporal.unreachable = None  # Temporal answers again
    retried = http.post("/v1/executions", json=START, headers=same)
    assert retried.status_code == 200 and retried.json()["id"] == execution_id
    assert retried.json()["error"] is None
    assert [s["id"] for s in temporal.started] == [f"stigmer-exec-{execution_id}"]  # started once, never twice


def test_a_start_temporal_surely_did_not_get_leaves_nothing(http: httpx.Client, temporal: FakeTemporal) -> None:
    temporal.fail = RuntimeError("connection refused")
    response = http.post("/v1/executions", json=START, headers=key())
    assert response.status_code == 503 and "connection refused" in response.json()["detail"]
    assert http.get("/v1/executions").json()["items"] == []


def test_stigmer_run_retries_a_start_whose_answer_was_lost_without_running_twice(
        http: httpx.Client, temporal: FakeTemporal, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.cli import _client

    monkeypatch.setattr(_client, "DEFAULT_TIMEOUT_S", 1.0)
    temporal.start_delay = 1.3  # a busy Temporal: the first POST's answer comes after the client gave up
    code, out, err = invoke(capsys, "run", "hello", "hi", "--model", "scripted:x.json", "--detach")
    assert code == 0, err
    items = http.get("/v1/executions").json()["items"]
    assert [item["id"] for item in items] == [out.strip()]
    assert len(temporal.started) == 1


# -- delete, prune, retention -------------------------------------------------------------------------------------


def _seed(store_path: Path, rows: dict[str, tuple[str, float]]) -> None:
    """Executions ``id -> (status, age in seconds)``, each with two events; ended ones ended ``age`` ago."""
    store = Store.open(store_path)
    try:
        for execution_id, (status, _age) in rows.items():
            store.create_execution(execution_id, agent="hello", message="m", model={"provider": "x"}, workspace=None,
                                   workflow_id=f"stigmer-exec-{execution_id}")
            store.append_events([{"execution_id": execution_id, "type": "token", "data": {"text": "a"}}])
            if status != "running":
                kind, data = ("completed", {"output": "ok"}) if status == "completed" else ("failed", {"error": "x"})
                store.append_events([{"execution_id": execution_id, "type": kind, "data": data}])
    finally:
        store.close()
    with sqlite3.connect(store_path) as conn:
        for execution_id, (_, age) in rows.items():
            conn.execute("UPDATE executions SET created_at = ?, finished_at = CASE WHEN finished_at IS NULL THEN NULL "
                         "ELSE ? END WHERE id = ?", (time.time() - age - 5, time.time() - age, execution_id))
    conn.close()


def _left(store_path: Path) -> tuple[list[str], int, str]:
    """(execution ids, orphaned events, integrity check) of the store as it is on disk."""
    with sqlite3.connect(store_path) as conn:
        ids = sorted(row[0] for row in conn.execute("SELECT id FROM executions"))
        orphans = conn.execute("SELECT COUNT(*) FROM events WHERE execution_id NOT IN "
                               "(SELECT id FROM executions)").fetchone()[0]
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    return ids, orphans, check


ROWS = {"old-done": ("completed", 10 * DAY), "old-failed": ("failed", 3 * DAY), "old-live": ("running", 40 * DAY),
        "new-done": ("completed", 60.0)}


def test_delete_removes_a_finished_execution_with_its_events_and_refuses_a_live_one(
        cfg: Config, capsys: Any) -> None:
    _seed(cfg.path("data") / "stigmer.db", ROWS)
    temporal = FakeTemporal(started=[{"id": "stigmer-exec-old-live"}])  # it still runs there
    with serve_api(make_context(cfg, fake_client(temporal))):
        code, out, err = invoke(capsys, "execution", "delete", "old-done")
        assert code == 0 and "deleted execution old-done (completed)" in out, err
        code, _, err = invoke(capsys, "execution", "delete", "old-live")
        assert code == 2 and "old-live is running: cancel it first" in err and "stigmer execution cancel" in err
        code, _, err = invoke(capsys, "execution", "delete", "old-done")
        assert code == 2 and "no execution 'old-done'" in err
    ids, orphans, check = _left(cfg.path("data") / "stigmer.db")
    assert ids == ["new-done", "old-failed", "old-live"] and orphans == 0 and check == "ok"


def test_prune_deletes_what_ended_before_the_duration_and_keeps_live_runs(cfg: Config, capsys: Any) -> None:
    store_path = cfg.path("data") / "stigmer.db"
    _seed(store_path, ROWS)
    with serve_api(make_context(cfg, fake_client(FakeTemporal()))):
        code, out, err = invoke(capsys, "execution", "prune", "--older-than", "2d", "--dry-run")
        assert code == 0 and "would delete 2 execution(s) that ended more than 2d ago" in out, err
        assert len(_left(store_path)[0]) == 4
        code, out, err = invoke(capsys, "execution", "prune", "--older-than", "2d", "--json")
        assert code == 0, err
        assert json.loads(out) == {"deleted": 2, "matched": 2, "older_than": "2d", "dry_run": False}
        code, _, err = invoke(capsys, "execution", "prune", "--older-than", "soon")
        assert code == 2 and "--older-than" in err and "30d" in err and "Traceback" not in err
    assert _left(store_path) == (["new-done", "old-live"], 0, "ok")


def test_the_prune_route_names_a_bad_duration(http: httpx.Client) -> None:
    response = http.post("/v1/executions/prune", json={"older_than": "-3d"})
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == "body.older_than"


def test_the_daemon_applies_retention_at_start_and_logs_what_it_removed(stigmer_home: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    cfg = scripted_config(stigmer_home, STIGMER_RETENTION_EXECUTIONS="2d")
    store_path = cfg.path("data") / "stigmer.db"
    _seed(store_path, ROWS)
    with caplog.at_level(logging.INFO, logger="stigmer.daemon.retention"), \
            serve_api(make_context(cfg, fake_client(FakeTemporal())), publish=False):
        deadline = time.monotonic() + 10
        while len(_left(store_path)[0]) != 2:
            assert time.monotonic() < deadline, _left(store_path)
            time.sleep(0.05)
    assert _left(store_path) == (["new-done", "old-live"], 0, "ok")
    assert "retention: deleted 2 execution(s) that ended more than 2d ago" in caplog.text


def test_a_retention_of_zero_keeps_everything(stigmer_home: Path) -> None:
    import asyncio

    from stigmer.daemon._retention import apply_retention

    cfg = scripted_config(stigmer_home, STIGMER_RETENTION_EXECUTIONS="0")
    _seed(cfg.path("data") / "stigmer.db", ROWS)
    with serve_api(make_context(cfg, fake_client(FakeTemporal())), publish=False) as api:
        assert asyncio.run(apply_retention(api.state)) == 0
    assert len(_left(cfg.path("data") / "stigmer.db")[0]) == 4


# -- logs -----------------------------------------------------------------------------------------------------------


def test_logs_ends_with_the_executions_real_duration(cfg: Config, capsys: Any) -> None:
    store_path = cfg.path("data") / "stigmer.db"
    store = Store.open(store_path)
    store.create_execution("e1", agent="hello", message="m", model={"provider": "x"}, workspace=None,
                           workflow_id="stigmer-exec-e1")
    store.append_events([{"execution_id": "e1", "type": "token", "data": {"text": "Hi."}, "ts": time.time() - 40},
                         {"execution_id": "e1", "type": "completed", "data": {"output": "Hi.", "steps": 2}}])
    store.close()
    with sqlite3.connect(store_path) as conn:  # it ran for 42.5 s, a day ago
        conn.execute("UPDATE executions SET created_at = ?, finished_at = ?", (time.time() - DAY - 42.5,
                                                                               time.time() - DAY))
    conn.close()
    with serve_api(make_context(cfg, fake_client(FakeTemporal()))):
        code, out, err = invoke(capsys, "execution", "logs", "e1")
    assert code == 0 and out.strip() == "Hi.", err
    assert "✓ completed in 2 steps, 42.5s" in err


# -- a retried start on the real Temporal ---------------------------------------------------------------------------


class _StartAnswerLost:
    """The real Temporal client, except that the first start's answer is lost and Temporal then cannot be asked."""

    def __init__(self, real: Any) -> None:
        self.real, self.lose_next, self.describe_fails = real, True, False

    async def start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        handle = await self.real.start_workflow(*args, **kwargs)
        if self.lose_next:
            self.lose_next, self.describe_fails = False, True
            raise TimeoutError()
        return handle

    def get_workflow_handle(self, workflow_id: str) -> Any:
        handle = self.real.get_workflow_handle(workflow_id)
        if self.describe_fails:
            self.describe_fails = False

            async def unreachable() -> Any:
                raise RuntimeError("Temporal unreachable")

            handle.describe = unreachable
        return handle


@pytest.mark.slow
def test_a_retried_start_on_real_temporal_runs_the_agent_once(temporal_server: TemporalServer, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    cfg = scripted_config(tmp_path / "home", temporal_server.address,
                          STIGMER_RUNNER_TASK_QUEUE=f"test-{uuid.uuid4().hex[:8]}")
    real = real_client(cfg)
    flaky: list[_StartAnswerLost] = []

    async def client() -> Any:
        if not flaky:
            flaky.append(_StartAnswerLost(await real()))
        return flaky[0]

    script = write_script(tmp_path / "s.json", [{"content": "Once."}])
    doc = {**AGENT, "spec": {"instructions": "x", "model": f"scripted:{script}"}}
    same = key()
    with serve_api(make_context(cfg, client)) as api, \
            httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as http:
        monkeypatch.setenv("STIGMER_SERVER_URL", api.url)
        monkeypatch.setenv("STIGMER_SERVER_TOKEN", api.runner_token)
        http.post("/v1/apply", json={"documents": [doc]}).raise_for_status()
        lost = http.post("/v1/executions", json={"agent": "hello", "message": "hi"}, headers=same)
        assert lost.status_code == 503, lost.text
        retried = http.post("/v1/executions", json={"agent": "hello", "message": "hi"}, headers=same)
        assert retried.status_code == 200 and retried.json()["id"] == lost.json()["execution_id"]
        execution_id = retried.json()["id"]
        with WorkerThread(cfg), http.stream("GET", f"/v1/executions/{execution_id}/events") as response:
            events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
        assert events[-1]["type"] == "completed" and events[-1]["data"]["output"] == "Once."

        async def runs() -> int:
            found = flaky[0].real.list_workflows(f"WorkflowId = 'stigmer-exec-{execution_id}'")
            return len([w async for w in found])

        import asyncio

        assert asyncio.run(runs()) == 1
