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


def test_a_store_at_schema_two_is_migrated_keeping_its_executions(tmp_path: Path) -> None:
    from stigmer.store._schema import MIGRATIONS

    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:  # the schema as the release with event ids left it
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (2)")
        conn.execute("INSERT INTO executions (id, agent, message, model, workflow_id, status, last_seq, created_at, "
                     "updated_at) VALUES ('e1', 'a', 'm', '{\"provider\": \"x\"}', 'w', 'running', 0, 0, 0)")
    conn.close()
    migrated = Store.open(path)
    try:
        assert migrated.schema_version() == LATEST == 3
        execution = migrated.get_execution("e1")
        assert execution is not None and (execution["truncated"], execution["model_source"]) == (False, None)
    finally:
        migrated.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_truncated_and_model_resolved_events_update_the_record(store: Store) -> None:
    new_execution(store)
    spec = {"provider": "ollama", "model": "llama3.2", "base_url": None, "params": {}, "reason": "the runner's"}
    store.append_events([{"execution_id": "e1", "type": "model_resolved",
                          "data": {"model": spec, "source": "runner", "origin": "STIGMER_LLM_MODEL"}},
                         {"execution_id": "e1", "type": "truncated", "data": {"step": 1, "max_tokens": 50}}])
    execution = store.get_execution("e1")
    assert execution is not None
    assert (execution["model"], execution["model_source"], execution["truncated"]) == (spec, "runner", True)
    assert [e["type"] for e in store.events_after("e1")] == ["model_resolved", "truncated"]
    other = {"execution_id": "e1", "type": "model_resolved", "data": {"model": "not a spec", "source": "?"}}
    store.append_events([other])  # a malformed one is kept as an event but changes nothing
    assert store.get_execution("e1")["model"] == spec


def test_a_repeated_idempotency_key_creates_nothing(store: Store) -> None:
    first = store.create_execution("e1", agent="a", message="m", model={}, workspace=None, workflow_id="w1",
                                   idempotency_key="k")
    again = store.create_execution("e2", agent="a", message="m", model={}, workspace=None, workflow_id="w2",
                                   idempotency_key="k")
    assert first is not None and again is None
    assert store.find_by_idempotency_key("k")["id"] == "e1" and store.get_execution("e2") is None


def test_every_event_is_read_in_pages(store: Store) -> None:
    new_execution(store)
    store.append_events([{"execution_id": "e1", "type": "token", "data": {"n": i}} for i in range(1234)])
    assert [e["data"]["n"] for e in store.iter_events("e1", 0, page=100)] == list(range(1234))
    assert [e["seq"] for e in store.iter_events("e1", 1200, page=100)] == list(range(1201, 1235))
