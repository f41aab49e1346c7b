"""The daemon's SQLite store: resources, executions and their events (sessions, approvals, usage: mixins).

One file at ``$STIGMER_HOME/data/stigmer.db`` in WAL mode, so readers (SSE replays, ``get``) never
wait behind the event writer. Every write runs in one ``BEGIN IMMEDIATE`` transaction: an apply of
ten documents, or a batch of events with the status change it implies, lands whole or not at all.
The store is synchronous and thread safe (one connection behind a lock); its calls take
milliseconds, so the API calls them inline.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import RuntimeFailure
from ._apply import MODEL_SOURCES, apply_middle_event, finish
from ._base import StoreBase, storable
from ._schema import LATEST, MIGRATIONS
from .approvals import ApprovalsMixin
from .console import ConsoleMixin
from .sessions import SessionsMixin, execution_record
from .tokens import TokensMixin
from .usage import UsageMixin

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})
# kind -> table
KINDS: dict[str, str] = {"Agent": "agents", "McpServer": "mcpservers"}

__all__ = ["KINDS", "MODEL_SOURCES", "STATUSES", "TERMINAL", "Store", "canonical", "terminal_status"]

# Executions a prune may delete: ended (every terminal event sets finished_at) before the cutoff ``?``, and not the
# turn of a session (a session keeps its turns until it is deleted).
_ENDED_BEFORE = "status IN ('completed', 'failed', 'cancelled') AND finished_at < ? AND session_id IS NULL"
# Events read per query when a whole stream is replayed (a stream may hold any number).
PAGE = 500


def canonical(document: Mapping[str, Any]) -> str:
    """A document as stable JSON: two equal documents give the same text (for ``unchanged``)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def terminal_status(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The execution status a terminal event implies, or None for a non-terminal event."""
    if event_type == "completed":
        return "completed"
    if event_type == "cancelled" or (event_type == "failed" and (data.get("cancelled") or
                                                                 data.get("status") == "cancelled")):
        return "cancelled"
    if event_type == "failed":
        return "failed"
    return None


class Store(SessionsMixin, ApprovalsMixin, UsageMixin, TokensMixin, ConsoleMixin, StoreBase):
    """The store. Open with :meth:`open`; close with :meth:`close`.

    Executions and their events live here; sessions, approvals and usage in their mixins (same connection).
    """

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating it and its directory if needed) and migrate the database at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeFailure(f"cannot open the store {path}: {exc}",
                                 hint="check that $STIGMER_HOME/data is writable") from None
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store._migrate()
        return store

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._read("SELECT version FROM schema_version")
        return int(rows[0]["version"]) if rows else 0

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = self.schema_version()
        if current > LATEST:
            raise RuntimeFailure(f"the store {self.path} has schema version {current}, newer than this stigmer "
                                 f"({LATEST})", hint="upgrade stigmer, or point STIGMER_HOME elsewhere")
        for version in range(current + 1, LATEST + 1):
            with self._tx() as conn:
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (version,))

    # -- resources ----------------------------------------------------------------------------

    def apply(self, documents: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """Create or update every document in one transaction; report ``created/updated/unchanged`` each."""
        results: list[dict[str, str]] = []
        now = time.time()
        with self._tx() as conn:
            for document in documents:
                kind, name = str(document["kind"]), str(document["metadata"]["name"])
                table, text = KINDS[kind], canonical(document)
                row = conn.execute(f"SELECT document FROM {table} WHERE name = ?", (name,)).fetchone()
                if row is None:
                    conn.execute(f"INSERT INTO {table} (name, document, created_at, updated_at) VALUES (?, ?, ?, ?)",
                                 (name, text, now, now))
                    outcome = "created"
                elif row["document"] == text:
                    outcome = "unchanged"
                else:
                    conn.execute(f"UPDATE {table} SET document = ?, updated_at = ? WHERE name = ?", (text, now, name))
                    outcome = "updated"
                results.append({"kind": kind, "name": name, "outcome": outcome})
        return results

    def get_resource(self, kind: str, name: str) -> dict[str, Any] | None:
        """One resource as ``{kind, name, document, created_at, updated_at}``, or None."""
        rows = self._read(f"SELECT * FROM {KINDS[kind]} WHERE name = ?", (name,))
        return _resource(kind, rows[0]) if rows else None

    def list_resources(self, kind: str) -> list[dict[str, Any]]:
        return [_resource(kind, row) for row in self._read(f"SELECT * FROM {KINDS[kind]} ORDER BY name")]

    def resource_names(self, kind: str) -> list[str]:
        return [str(row["name"]) for row in self._read(f"SELECT name FROM {KINDS[kind]} ORDER BY name")]

    def delete_resource(self, kind: str, name: str) -> bool:
        """Delete one resource; False when there was none."""
        with self._tx() as conn:
            return conn.execute(f"DELETE FROM {KINDS[kind]} WHERE name = ?", (name,)).rowcount > 0

    # -- executions ---------------------------------------------------------------------------

    def create_execution(self, execution_id: str, *, agent: str, message: str, model: Mapping[str, Any],
                         workspace: str | None, workflow_id: str,
                         idempotency_key: str | None = None) -> dict[str, Any] | None:
        """A new ``pending`` execution; None when ``idempotency_key`` already names another one."""
        now = time.time()
        try:
            with self._tx() as conn:
                self._insert_execution(conn, execution_id, agent, message, model, workspace, workflow_id,
                                       idempotency_key, now)
        except self.integrity_errors:
            if idempotency_key is None or self.find_by_idempotency_key(idempotency_key) is None:
                raise
            return None
        return self.get_execution(execution_id)

    def find_by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        """The execution a start with this ``Idempotency-Key`` created, if any."""
        rows = self._read("SELECT * FROM executions WHERE idempotency_key = ?", (key,))
        return execution_record(rows[0]) if rows else None

    def note_start_error(self, execution_id: str, error: str | None) -> None:
        """Record (or, with None, clear) why a pending execution's start could not be confirmed."""
        with self._tx() as conn:
            conn.execute("UPDATE executions SET error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
                         (storable(error), time.time(), execution_id))

    def delete_execution(self, execution_id: str, *, finished_only: bool = False) -> bool:
        """Delete an execution and its events; with ``finished_only``, only a completed/failed/cancelled one.

        Returns False when nothing was deleted (no such execution, or it is still live).
        """
        clause = " AND status IN ('completed', 'failed', 'cancelled')" if finished_only else ""
        with self._tx() as conn:
            return conn.execute(f"DELETE FROM executions WHERE id = ?{clause}", (execution_id,)).rowcount > 0

    def finished_before(self, cutoff: float, limit: int) -> list[str]:
        """Ids of (at most ``limit``) executions that ended before ``cutoff``, oldest first."""
        rows = self._read(f"SELECT id FROM executions WHERE {_ENDED_BEFORE} ORDER BY finished_at LIMIT ?",
                          (cutoff, limit))
        return [str(row["id"]) for row in rows]

    def count_finished_before(self, cutoff: float) -> int:
        """How many executions ended (completed, failed, cancelled) before ``cutoff``: what a prune would delete."""
        return int(self._read(f"SELECT COUNT(*) AS n FROM executions WHERE {_ENDED_BEFORE}", (cutoff,))[0]["n"])

    def prune(self, cutoff: float, *, batch: int = 200) -> int:
        """Delete executions (and their events) that ended before ``cutoff``; return how many.

        In batches of ``batch`` executions, one transaction each, so event writers never wait long
        behind a large prune. Live executions are never touched.
        """
        return len(self.prune_workflows(cutoff, batch=batch))

    def prune_workflows(self, cutoff: float, *, batch: int = 200) -> list[str]:
        """:meth:`prune`, returning the workflow id of each execution deleted (its blobs go next)."""
        deleted: list[str] = []
        while ids := self.finished_before(cutoff, batch):
            marks = ", ".join("?" for _ in ids)
            with self._tx() as conn:
                rows = conn.execute(f"DELETE FROM executions WHERE id IN ({marks}) AND status IN "
                                    "('completed', 'failed', 'cancelled') RETURNING workflow_id", ids).fetchall()
            deleted += [str(row[0]) for row in rows]
        return deleted

    def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return execution_record(rows[0]) if rows else None

    def list_executions(self, *, status: str | None = None, agent: str | None = None,
                        limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, optionally only one status and/or one agent's."""
        where = [(column, value) for column, value in (("status", status), ("agent", agent)) if value]
        clause = (" WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)) if where else ""
        rows = self._read(f"SELECT * FROM executions{clause} ORDER BY created_at DESC LIMIT ?",
                          (*(value for _, value in where), limit))
        return [execution_record(row) for row in rows]

    def active_executions(self) -> list[dict[str, Any]]:
        """Executions not yet completed, failed or cancelled (the ones to reconcile)."""
        rows = self._read("SELECT * FROM executions WHERE status IN ('pending', 'running') ORDER BY created_at")
        return [execution_record(row) for row in rows]

    def execution_counts(self) -> dict[str, int]:
        """How many executions are in each status (statuses with none are absent)."""
        return {str(row["status"]): int(row["n"])
                for row in self._read("SELECT status, COUNT(*) AS n FROM executions GROUP BY status")}

    def mark_running(self, execution_id: str) -> None:
        """Pending -> running (Temporal runs its workflow): a note that the start was unconfirmed is obsolete."""
        with self._tx() as conn:
            conn.execute("UPDATE executions SET status = 'running', error = NULL, updated_at = ? WHERE id = ? AND "
                         "status = 'pending'", (time.time(), execution_id))

    # -- events -------------------------------------------------------------------------------

    def append_events(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Store a batch of events, numbering them per execution, and apply the status each implies.

        Idempotent where it matters: runners deliver at least once, so an event whose ``id`` is already
        stored for its execution is dropped (events without an ``id``, from older runners, are always
        new). Once an execution is terminal every later event is dropped: a second terminal event (a
        retried activity, a reconciliation racing the runner), and a middle event a runner retried too
        late, which would otherwise land after the end of a stream that has already closed. Events of
        unknown executions are dropped. Returns the stored events, with their ``seq``.
        """
        stored: list[dict[str, Any]] = []
        with self._tx() as conn:
            executions: dict[str, dict[str, Any] | None] = {}  # each execution read once per batch
            for event in events:
                saved = self._append_one(conn, event, executions)
                if saved is not None:
                    stored.append(saved)
            now = time.time()
            for execution_id, row in executions.items():
                if row is not None and row["last_seq"] != row["stored_seq"]:
                    conn.execute("UPDATE executions SET last_seq = ?, updated_at = ? WHERE id = ?",
                                 (row["last_seq"], now, execution_id))
            if stored:
                self._stored(conn, stored)
        return stored

    @staticmethod
    def _execution_row(conn: sqlite3.Connection, execution_id: str,
                       executions: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        if execution_id not in executions:
            row = conn.execute("SELECT id, status, last_seq, session_id FROM executions WHERE id = ?",
                               (execution_id,)).fetchone()
            executions[execution_id] = None if row is None else {
                "id": row["id"], "status": row["status"], "last_seq": int(row["last_seq"]),
                "stored_seq": int(row["last_seq"]), "session_id": row["session_id"]}
        return executions[execution_id]

    def _append_one(self, conn: sqlite3.Connection, event: Mapping[str, Any],
                    executions: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        """One event: numbered after the execution's last (``last_seq`` is written once per batch, by the caller);
        an ``id`` already stored is dropped by the unique index, in the same statement that inserts."""
        execution_id, kind = str(event["execution_id"]), str(event["type"])
        row = self._execution_row(conn, execution_id, executions)
        if row is None or row["status"] in TERMINAL:
            return None
        data = dict(event.get("data") or {})
        event_id = event.get("id") or None
        new_status = terminal_status(kind, data)
        seq, now = row["last_seq"] + 1, time.time()
        ts = float(event.get("ts") or now)
        inserted = conn.execute(
            "INSERT INTO events (execution_id, seq, type, data, ts, event_id) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (execution_id, event_id) WHERE event_id IS NOT NULL DO NOTHING",
            (execution_id, seq, kind, json.dumps(data, default=str), ts, None if event_id is None else str(event_id)))
        if inserted.rowcount == 0:  # this id was stored before: a runner's retry
            return None
        row["last_seq"] = seq
        if new_status is not None:
            finish(conn, row, new_status, data, now)
            row["status"] = new_status
        else:
            if row["status"] == "pending":
                conn.execute("UPDATE executions SET status = 'running', error = NULL WHERE id = ?", (execution_id,))
                row["status"] = "running"
            apply_middle_event(conn, row, kind, data, ts)
        return {"execution_id": execution_id, "seq": seq, "type": kind, "data": data, "ts": ts}

    def events_after(self, execution_id: str, after: int = 0, limit: int = PAGE) -> list[dict[str, Any]]:
        """At most ``limit`` events after seq ``after``, in order (one page; :meth:`iter_events` reads them all)."""
        rows = self._read("SELECT * FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                          (execution_id, after, limit))
        return [{"execution_id": r["execution_id"], "seq": r["seq"], "type": r["type"], "data": json.loads(r["data"]),
                 "ts": r["ts"]} for r in rows]

    def iter_events(self, execution_id: str, after: int = 0, page: int = PAGE) -> Iterator[dict[str, Any]]:
        """Every event after seq ``after``, in order, read ``page`` at a time (never all held in memory)."""
        while True:
            events = self.events_after(execution_id, after, page)
            yield from events
            if len(events) < page:
                return
            after = events[-1]["seq"]


def _resource(kind: str, row: sqlite3.Row) -> dict[str, Any]:
    return {"kind": kind, "name": row["name"], "document": json.loads(row["document"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}
