"""The SQLite store: schema versions, transactional applies, numbered events, idempotent endings."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from stigmer.errors import RuntimeFailure
from stigmer.store import Store, open_store
from stigmer.store._schema import LATEST


def agent(name: str, instructions: str = "Be brief.") -> dict:
    return {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": instructions}}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each store test runs on both backends: the SQLite file and a fresh PostgreSQL database."""
    target = tmp_path / "data" / "stigmer.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    opened = open_store(target)
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
        assert migrated.schema_version() == LATEST
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


def test_a_store_at_schema_three_is_migrated_keeping_everything_and_gains_sessions(tmp_path: Path) -> None:
    from stigmer.store._schema import MIGRATIONS

    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as conn:  # the schema as the release before sessions left it
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1], *MIGRATIONS[2]):
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (3)")
        conn.execute("INSERT INTO executions (id, agent, message, model, workflow_id, status, last_seq, created_at, "
                     "updated_at, output, finished_at) VALUES ('e1', 'a', 'm', '{\"provider\": \"x\"}', 'w', "
                     "'completed', 1, 0, 0, 'done', 5)")
        conn.execute("INSERT INTO events (execution_id, seq, type, data, ts) VALUES ('e1', 1, 'completed', "
                     "'{\"output\": \"done\"}', 5)")
    conn.close()
    migrated = Store.open(path)
    try:
        assert migrated.schema_version() == LATEST == 6  # 4: sessions, approvals; 5: tokens; 6: console logins
        execution = migrated.get_execution("e1")
        assert execution is not None
        assert (execution["output"], execution["session_id"], execution["turn"], execution["usage"]) == (
            "done", None, None, None)
        assert [e["type"] for e in migrated.events_after("e1")] == ["completed"]
        assert migrated.list_sessions() == [] and migrated.list_approvals() == []
        assert migrated.usage()["total"]["executions"] == 0  # no usage was ever reported for it
    finally:
        migrated.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _usage(inp: int, out: int, cost: float | None = 0.0, cached: int = 0, estimated: bool = False) -> dict:
    return {"input_tokens": inp, "output_tokens": out, "cached_tokens": cached, "cost_usd": cost,
            "estimated": estimated, "duration_ms": 5}


def _session(store: Store, name: str | None = "chat") -> dict:
    created = store.create_session("s-0123456789ab", name=name, agent="hello", workflow_id="stigmer-session-s-01",
                                   workspace="/w", model={"provider": "x", "model": "y"})
    assert created is not None
    return created


def test_a_terminal_events_usage_is_stored_on_the_execution_and_summed_for_its_session(store: Store) -> None:
    session = _session(store)
    for n, usage in enumerate((_usage(100, 20, 0.5, cached=10), _usage(50, 5, 0.25, estimated=True)), start=1):
        turn = store.create_turn(f"t{n}", session, message=f"m{n}", model={"provider": "x", "model": "y"})
        assert turn is not None and turn["turn"] == n
        store.append_events([{"execution_id": f"t{n}", "type": "completed", "data": {"output": "ok", "usage": usage}}])
    assert store.get_execution("t1")["usage"] == {"input_tokens": 100, "output_tokens": 20, "cached_tokens": 10,
                                                  "cost_usd": 0.5, "estimated": False}
    got = store.get_session("chat")
    assert got is not None and got["turn_count"] == 2
    assert got["usage"] == {"input_tokens": 150, "output_tokens": 25, "cached_tokens": 10, "cost_usd": 0.75,
                            "estimated": True, "unpriced": False}
    by_session = store.usage(by="session")
    assert [(i["key"], i["name"], i["input_tokens"]) for i in by_session["items"]] == [(session["id"], "chat", 150)]


def test_an_unknown_cost_marks_the_sums_unpriced_and_bad_usage_values_are_not_stored(store: Store) -> None:
    new_execution(store, "e1")
    new_execution(store, "e2")
    store.append_events([{"execution_id": "e1", "type": "completed", "data": {"usage": _usage(10, 1, None)}},
                         {"execution_id": "e2", "type": "failed",
                          "data": {"error": "x", "usage": {"input_tokens": -4, "output_tokens": "9", "cost_usd": -1}}}])
    assert store.get_execution("e2")["usage"] == {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
                                                  "cost_usd": None, "estimated": False}
    total = store.usage()["total"]
    assert (total["executions"], total["input_tokens"], total["unpriced"]) == (2, 10, True)


def test_approval_events_record_a_pending_approval_and_its_decision(store: Store) -> None:
    new_execution(store, "e1")
    requested = {"approval_id": "e1.1.0", "kind": "tool", "tool": "write_file", "args": {"path": "a"},
                 "args_hash": "abc", "call_id": "c1", "step": 1, "reason": "write_file may change files"}
    store.append_events([{"execution_id": "e1", "type": "approval_requested", "data": requested}])
    pending = store.list_approvals(status="pending")
    assert [(a["id"], a["tool"], a["args"], a["args_hash"], a["status"]) for a in pending] == [
        ("e1.1.0", "write_file", {"path": "a"}, "abc", "pending")]
    store.append_events([{"execution_id": "e1", "type": "approval_decided",
                          "data": {"approval_id": "e1.1.0", "decision": "rejected", "reason": "no", "by": "ann"}}])
    decided = store.get_approval("e1.1.0")
    assert decided is not None
    assert (decided["status"], decided["reason"], decided["decided_by"]) == ("rejected", "no", "ann")
    assert decided["decided_at"] is not None
    # a second decision changes nothing: the first one stands
    store.append_events([{"execution_id": "e1", "type": "approval_decided",
                          "data": {"approval_id": "e1.1.0", "decision": "approved"}}])
    assert store.get_approval("e1.1.0")["status"] == "rejected"


def test_an_event_cannot_make_an_approval_for_another_execution(store: Store) -> None:
    new_execution(store, "e1")
    new_execution(store, "e2")
    store.append_events([{"execution_id": "e1", "type": "approval_requested",
                          "data": {"approval_id": "e2.1.0", "tool": "x", "args": {}, "args_hash": "h"}}])
    assert store.list_approvals() == []


def test_an_execution_ending_cancels_its_undecided_approvals(store: Store) -> None:
    new_execution(store, "e1")
    store.append_events([{"execution_id": "e1", "type": "approval_requested",
                          "data": {"approval_id": "e1.1.0", "tool": "x", "args": {}, "args_hash": "h"}},
                         {"execution_id": "e1", "type": "failed", "data": {"error": "cancelled", "cancelled": True}}])
    assert store.get_approval("e1.1.0")["status"] == "cancelled"


def test_prune_keeps_a_sessions_turns_and_deleting_the_session_removes_them(store: Store) -> None:
    session = _session(store)
    store.create_turn("t1", session, message="m", model={})
    new_execution(store, "e1")
    store.append_events([{"execution_id": x, "type": "completed", "data": {"output": "ok"}} for x in ("t1", "e1")])
    assert store.prune(cutoff=float("inf")) == 1
    assert store.get_execution("e1") is None and store.get_execution("t1") is not None
    assert store.delete_session(session["id"]) == 1
    assert store.get_execution("t1") is None and store.get_session("chat") is None


def test_a_session_name_is_unique(store: Store) -> None:
    _session(store)
    assert store.create_session("s-ba9876543210", name="chat", agent="hello", workflow_id="w", workspace=None,
                                model={}) is None


def test_retention_finds_only_sessions_idle_before_the_cutoff_without_a_live_turn(store: Store) -> None:
    session = _session(store)
    assert [s["id"] for s in store.idle_sessions_before(time.time() + 1)] == [session["id"]]
    store.create_turn("t1", session, message="m", model={})
    assert store.idle_sessions_before(time.time() + 1) == []  # its turn is still live
    store.append_events([{"execution_id": "t1", "type": "completed", "data": {"output": "ok"}}])
    assert [s["id"] for s in store.idle_sessions_before(time.time() + 1)] == [session["id"]]
    assert store.idle_sessions_before(time.time() - 60) == []  # talked to just now
