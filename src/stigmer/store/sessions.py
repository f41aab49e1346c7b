"""Sessions in the store: a conversation's record, its turns (executions with ``session_id`` and ``turn``).

A session's id is ``s-`` + 12 hex; its name, when it has one, is unique. Its turns are numbered from 1
in the order the API received them (``turns`` counts them); its usage is the sum of its turns' (computed
from them when read, so it cannot drift from them); its ``model`` is the one its last ``model_resolved`` named.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from ._base import StoreBase

SESSION_STATUSES = ("open", "closed")
_EXEC_COLUMNS = ("id", "agent", "message", "model", "workspace", "workflow_id", "status", "output", "error",
                 "steps", "last_seq", "created_at", "updated_at", "finished_at", "truncated", "model_source",
                 "session_id", "turn")
# A session row with its turns' usage summed (``unpriced``: some turn's cost is unknown).
_WITH_USAGE = ("SELECT s.*, COALESCE(SUM(e.input_tokens), 0) AS input_tokens, "
               "COALESCE(SUM(e.output_tokens), 0) AS output_tokens, "
               "COALESCE(SUM(e.cached_tokens), 0) AS cached_tokens, "
               "COALESCE(SUM(e.cost_usd), 0.0) AS cost_usd, COALESCE(MAX(e.usage_estimated), 0) AS usage_estimated, "
               "COALESCE(MAX(CASE WHEN e.input_tokens IS NOT NULL AND e.cost_usd IS NULL THEN 1 ELSE 0 END), 0) "
               "AS unpriced "
               "FROM sessions s LEFT JOIN executions e ON e.session_id = s.id")
_SESSION_COLUMNS = ("id", "name", "agent", "workflow_id", "workspace", "model", "model_name", "model_source",
                    "status", "created_at", "updated_at", "last_turn_at")


class SessionsMixin(StoreBase):
    """Create, find, list and delete sessions; add and discard their turns."""

    def create_session(self, session_id: str, *, name: str | None, agent: str, workflow_id: str,
                       workspace: str | None, model: Mapping[str, Any], model_name: str | None = None,
                       model_source: str | None = None) -> dict[str, Any] | None:
        """A new open session; None when ``name`` is already another session's.

        ``model`` is the model expected (the record's until a turn resolves one), ``model_name`` the name asked for
        (from ``model_source``: the request or the agent; None: the runner's own).
        """
        now = time.time()
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO sessions (id, name, agent, workflow_id, workspace, model, model_name, "
                             "model_source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (session_id, name, agent, workflow_id, workspace, json.dumps(dict(model)), model_name,
                              model_source, now, now))
        except self.integrity_errors:
            if name is None or self.get_session(name) is None:
                raise
            return None
        return self.get_session(session_id)

    def get_session(self, ref: str) -> dict[str, Any] | None:
        """A session by id, else by name; None when neither."""
        rows = (self._read(f"{_WITH_USAGE} WHERE s.id = ? GROUP BY s.id", (ref,)) or
                self._read(f"{_WITH_USAGE} WHERE s.name = ? GROUP BY s.id", (ref,)))
        return session_record(rows[0]) if rows else None

    def list_sessions(self, *, agent: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, optionally one agent's."""
        clause, args = (" WHERE s.agent = ?", (agent,)) if agent else ("", ())
        rows = self._read(f"{_WITH_USAGE}{clause} GROUP BY s.id ORDER BY s.created_at DESC LIMIT ?", (*args, limit))
        return [session_record(row) for row in rows]

    def session_names(self) -> list[str]:
        return [str(row["name"]) for row in self._read("SELECT name FROM sessions WHERE name IS NOT NULL")]

    def latest_open_session(self, agent: str) -> dict[str, Any] | None:
        """The agent's open session last talked to (or, with no turn yet, last created): what ``--continue`` takes."""
        rows = self._read(f"{_WITH_USAGE} WHERE s.agent = ? AND s.status = 'open' GROUP BY s.id "
                          "ORDER BY COALESCE(s.last_turn_at, s.created_at) DESC LIMIT 1", (agent,))
        return session_record(rows[0]) if rows else None

    def idle_sessions_before(self, cutoff: float) -> list[dict[str, Any]]:
        """Sessions last talked to (or, without turns, created) before ``cutoff`` and with no live turn: what
        retention deletes (a session's turns are not pruned one by one: the conversation holds them)."""
        rows = self._read(f"{_WITH_USAGE} WHERE COALESCE(s.last_turn_at, s.created_at) < ? AND NOT EXISTS (SELECT 1 "
                          "FROM executions l WHERE l.session_id = s.id AND l.status IN ('pending', 'running')) "
                          "GROUP BY s.id ORDER BY s.created_at", (cutoff,))
        return [session_record(row) for row in rows]

    def mark_session_closed(self, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE sessions SET status = 'closed', updated_at = ? WHERE id = ?",
                         (time.time(), session_id))

    def create_turn(self, execution_id: str, session: Mapping[str, Any], *, message: str, model: Mapping[str, Any],
                    idempotency_key: str | None = None) -> dict[str, Any] | None:
        """The next turn of ``session``: a ``pending`` execution numbered after the last one, on the session's
        workflow. None when ``idempotency_key`` already names another execution."""
        now = time.time()
        try:
            with self._tx() as conn:
                turn = int(conn.execute("SELECT turns FROM sessions WHERE id = ?", (session["id"],)).fetchone()[0]) + 1
                self._insert_execution(conn, execution_id, session["agent"], message, model, session["workspace"],
                                       session["workflow_id"], idempotency_key, now, (session["id"], turn))
                conn.execute("UPDATE sessions SET turns = ?, last_turn_at = ?, updated_at = ? WHERE id = ?",
                             (turn, now, now, session["id"]))
        except self.integrity_errors:
            if idempotency_key is None or self._read("SELECT 1 FROM executions WHERE idempotency_key = ?",
                                                     (idempotency_key,)) == []:
                raise
            return None
        return self._execution_by_id(execution_id)

    def discard_turn(self, execution_id: str) -> None:
        """Delete a turn the session refused; its number is given again when it was the last one."""
        with self._tx() as conn:
            row = conn.execute("SELECT session_id, turn FROM executions WHERE id = ?", (execution_id,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,))
            conn.execute("UPDATE sessions SET turns = turns - 1 WHERE id = ? AND turns = ?",
                         (row["session_id"], row["turn"]))

    def session_turns(self, session_id: str) -> list[dict[str, Any]]:
        """The session's turns (execution records), in order."""
        rows = self._read("SELECT * FROM executions WHERE session_id = ? ORDER BY turn, created_at", (session_id,))
        return [execution_record(row) for row in rows]

    def events_of(self, execution_id: str, types: tuple[str, ...]) -> list[dict[str, Any]]:
        """The events of one execution of the given types only, in order (a turn's tool calls without its tokens)."""
        marks = ", ".join("?" for _ in types)
        rows = self._read(f"SELECT seq, type, data, ts FROM events WHERE execution_id = ? AND type IN ({marks}) "
                          "ORDER BY seq", (execution_id, *types))
        return [{"seq": r["seq"], "type": r["type"], "data": json.loads(r["data"]), "ts": r["ts"]} for r in rows]

    def delete_session(self, session_id: str) -> int:
        """Delete a session with its turns, their events and approvals; return how many turns went with it."""
        with self._tx() as conn:
            turns = conn.execute("DELETE FROM executions WHERE session_id = ?", (session_id,)).rowcount
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return int(turns)

    @staticmethod
    def _insert_execution(conn: sqlite3.Connection, execution_id: str, agent: str, message: str,
                          model: Mapping[str, Any], workspace: str | None, workflow_id: str,
                          idempotency_key: str | None, now: float, session: tuple[str, int] | None = None) -> None:
        session_id, turn = session if session is not None else (None, None)
        conn.execute("INSERT INTO executions (id, agent, message, model, workspace, workflow_id, status, "
                     "created_at, updated_at, idempotency_key, session_id, turn) "
                     "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                     (execution_id, agent, message, json.dumps(dict(model)), workspace, workflow_id, now, now,
                      idempotency_key, session_id, turn))

    def _execution_by_id(self, execution_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return execution_record(rows[0]) if rows else None


def execution_record(row: sqlite3.Row) -> dict[str, Any]:
    """An execution as the API shows it: its columns, ``model`` parsed, and ``usage`` (None until it ended with one)."""
    record = {name: row[name] for name in _EXEC_COLUMNS}
    record["model"] = json.loads(record["model"])
    record["truncated"] = bool(record["truncated"])
    record["usage"] = None if row["input_tokens"] is None else {
        "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
        "cached_tokens": row["cached_tokens"], "cost_usd": row["cost_usd"],
        "estimated": bool(row["usage_estimated"])}
    return record


def session_record(row: sqlite3.Row) -> dict[str, Any]:
    """A session as the API shows it; ``usage.unpriced``: some turn's cost is unknown (``cost_usd`` is a floor)."""
    record = {name: row[name] for name in _SESSION_COLUMNS}
    record["turn_count"] = row["turns"]  # ``turns`` is the list of them where a session is shown with its turns
    record["model"] = json.loads(record["model"])
    record["usage"] = {"input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
                       "cached_tokens": row["cached_tokens"], "cost_usd": round(float(row["cost_usd"]), 8),
                       "estimated": bool(row["usage_estimated"]), "unpriced": bool(row["unpriced"])}
    return record
