"""The SQLite store: schema versions, transactional applies, numbered events, idempotent endings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stigmer.errors import RuntimeFailure
from stigmer.store import Store
from stigmer.store._schema import LATEST


def agent(name: str, instructions: str = "Be brief.") -> dict:
    return {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": instructions}}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "data" / "stigmer.db")
    yield opened
    opened.close()


def new_execution(store: Store, execution_id: str = "e1") -> None:
    store.create_execution(execution_id, agent="hello", message="hi", model={"provider": "x", "model": "y"},
                           workspace=None, workflow_id=f"stigmer-exec-{execution_id}")


def test_a_new_store_is_at_the_latest_schema_in_wal_mode_and_reopens_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "data" / "stigmer.db"
    first = Store.open(path)
    first.apply([agent("hello")])
    first.close()
    again = Store.open(path)
    assert again.schema_version() == LATEST
    assert again.resource_names("Agent") == ["hello"]
    again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_stigmer_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "stigmer.db"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (LATEST + 1,))
    with pytest.raises(RuntimeFailure, match="newer than this stigmer") as info:
        Store.open(path)
    assert "upgrade stigmer" in str(info.value)


def test_apply_reports_created_then_unchanged_then_updated(store: Store) -> None:
    assert store.apply([agent("hello")]) == [{"kind": "Agent", "name": "hello", "outcome": "created"}]
    assert store.apply([agent("hello")])[0]["outcome"] == "unchanged"
    assert store.apply([agent("hello", "Be verbose.")])[0]["outcome"] == "updated"
    doc = store.get_resource("Agent", "hello")
    assert doc is not None and doc["document"]["spec"]["instructions"] == "Be verbose."


def test_an_apply_that_fails_midway_writes_nothing(store: Store) -> None:
    broken = {"kind": "Agent"}  # no metadata: fails after the first document was written in the transaction
    with pytest.raises(KeyError):
        store.apply([agent("first"), broken])
    assert store.resource_names("Agent") == []


def test_events_are_numbered_per_execution_and_drive_the_status(store: Store) -> None:
    new_execution(store, "e1")
    new_execution(store, "e2")
    stored = store.append_events([
        {"execution_id": "e1", "type": "step_started", "data": {"step": 1}},
        {"execution_id": "e2", "type": "token", "data": {"text": "x"}},
        {"execution_id": "e1", "type": "token", "data": {"text": "Hel"}},
    ])
    assert [(e["execution_id"], e["seq"]) for e in stored] == [("e1", 1), ("e2", 1), ("e1", 2)]
    assert store.get_execution("e1")["status"] == "running"
    store.append_events([{"execution_id": "e1", "type": "completed", "data": {"output": "Hello", "steps": 1}}])
    done = store.get_execution("e1")
    assert (done["status"], done["output"], done["steps"]) == ("completed", "Hello", 1)
    assert [e["seq"] for e in store.events_after("e1", 1)] == [2, 3]
    assert [e["id"] for e in store.list_executions(status="running")] == ["e2"]
    assert [e["id"] for e in store.list_executions(agent="hello", status="completed")] == ["e1"]


def test_a_second_terminal_event_is_dropped_so_every_stream_ends_once(store: Store) -> None:
    new_execution(store)
    store.append_events([{"execution_id": "e1", "type": "completed", "data": {"output": "ok"}}])
    again = store.append_events([{"execution_id": "e1", "type": "failed", "data": {"error": "late"}}])
    assert again == []
    execution = store.get_execution("e1")
    assert (execution["status"], execution["error"]) == ("completed", None)


def test_a_cancelled_failure_ends_the_execution_as_cancelled(store: Store) -> None:
    new_execution(store)
    store.append_events([{"execution_id": "e1", "type": "failed", "data": {"error": "cancelled", "cancelled": True}}])
    assert store.get_execution("e1")["status"] == "cancelled"
    assert store.active_executions() == []


def test_events_of_unknown_executions_are_ignored(store: Store) -> None:
    assert store.append_events([{"execution_id": "nope", "type": "token", "data": {}}]) == []


def test_deleting_an_execution_removes_its_events(store: Store) -> None:
    new_execution(store)
    store.append_events([{"execution_id": "e1", "type": "token", "data": {"text": "a"}}])
    store.delete_execution("e1")
    assert store.get_execution("e1") is None
    assert store.events_after("e1") == []
