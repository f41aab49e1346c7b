"""Blobs go with the executions and sessions that own them: retention, ``execution delete``, ``session delete``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.blobs import LocalBlobStore
from stigmer.config import Config
from tests.support.daemon_api import FakeTemporal, fake_client, invoke, make_context, scripted_config, serve_api
from tests.test_executions_lifecycle import ROWS, _left, _seed


def _blobs(home: Path, *workflow_ids: str) -> LocalBlobStore:
    """A blob in each workflow's namespace, as the runner's codec would have written for a large payload."""
    store = LocalBlobStore(home / "blobs")
    for workflow_id in workflow_ids:
        store.put_sync(workflow_id, f"a large tool output of {workflow_id} ".encode() * 500)
    return store


def _namespaces(home: Path) -> list[str]:
    folder = home / "blobs"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def test_retention_deletes_the_blob_folders_of_the_executions_it_deletes(stigmer_home: Path) -> None:
    from stigmer.daemon._retention import apply_retention

    cfg = scripted_config(stigmer_home, STIGMER_RETENTION_EXECUTIONS="2d")
    _seed(cfg.path("data") / "stigmer.db", ROWS)
    _blobs(stigmer_home, *(f"stigmer-exec-{execution_id}" for execution_id in ROWS), "_shared")
    assert len(_namespaces(stigmer_home)) == 5
    context = make_context(cfg, fake_client(FakeTemporal()))
    context.retention_interval_s = 3600.0
    with serve_api(context, publish=False) as api:
        asyncio.run(apply_retention(api.state))  # idempotent with the start's own pass
    assert _left(cfg.path("data") / "stigmer.db")[0] == ["new-done", "old-live"]
    # the ended old ones went with their blobs; the live one, the recent one and shared blobs stay
    assert _namespaces(stigmer_home) == ["_shared", "stigmer-exec-new-done", "stigmer-exec-old-live"]


def test_execution_delete_deletes_its_blobs_and_a_refused_delete_keeps_them(cfg: Config, capsys: Any) -> None:
    _seed(cfg.path("data") / "stigmer.db", ROWS)
    _blobs(cfg.home, "stigmer-exec-old-done", "stigmer-exec-old-live")
    temporal = FakeTemporal(started=[{"id": "stigmer-exec-old-live"}])
    with serve_api(make_context(cfg, fake_client(temporal))):
        code, _, err = invoke(capsys, "execution", "delete", "old-done")
        assert code == 0, err
        code, _, err = invoke(capsys, "execution", "delete", "old-live")
        assert code == 2, err
    assert _namespaces(cfg.home) == ["stigmer-exec-old-live"]


@pytest.fixture
def hello(http: httpx.Client) -> None:
    agent = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "hello"},
             "spec": {"instructions": "Answer briefly."}}
    assert http.post("/v1/apply", json={"documents": [agent]}).status_code == 200


@pytest.mark.usefixtures("hello")
def test_session_delete_deletes_the_blobs_of_its_workflow(http: httpx.Client, temporal: FakeTemporal,
                                                          stigmer_home: Path) -> None:
    session = http.post("/v1/sessions", json={"agent": "hello", "name": "chat", "model": "scripted:x.json"}).json()
    other = http.post("/v1/sessions", json={"agent": "hello", "name": "other", "model": "scripted:x.json"}).json()
    _blobs(stigmer_home, session["workflow_id"], other["workflow_id"])
    assert http.delete("/v1/sessions/chat").status_code == 200
    assert _namespaces(stigmer_home) == [other["workflow_id"]]
