"""What an event changes besides its own row: the execution's record, its session, its approvals.

Called inside :meth:`Store.append_events`'s transaction, once per stored event (a duplicate or a late
event is dropped before it gets here), so each change is applied once:

- ``truncated``: the execution's answer was cut; ``model_resolved``: the model actually used (and, for
  a session's turn, the session's pinned model from then on);
- ``approval_requested``: a pending approval; ``approval_decided``: its decision (the first one to land
  wins: the API records a decision the moment the workflow accepts it, the event confirms it later);
- a terminal event: status, answer or error, steps, usage (``data.usage``; a session's totals are
  the sums of its turns'), and the approvals still pending end ``cancelled`` (nothing can decide them any more).

Event data comes from runners: every value is checked for its type before it is stored, and an event
that does not fit changes nothing (it is still kept as an event).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from typing import Any

from ._base import storable

# Where a ``model_resolved`` event says the model came from.
MODEL_SOURCES = frozenset({"run", "agent", "runner"})
APPROVAL_STATUSES = ("pending", "approved", "rejected", "timed_out", "cancelled")
_DECISIONS = frozenset(APPROVAL_STATUSES) - {"pending"}
# Longest approval id, tool name or reason kept (a runner's data is not trusted to be small).
_MAX_ID, _MAX_TEXT = 200, 4000


def apply_middle_event(conn: sqlite3.Connection, execution: Mapping[str, Any], kind: str,
                       data: Mapping[str, Any], ts: float) -> None:
    """What a non-terminal event changes in the execution's record, its session, its approvals."""
    if kind == "truncated":
        conn.execute("UPDATE executions SET truncated = 1 WHERE id = ?", (execution["id"],))
    elif kind == "model_resolved" and isinstance(data.get("model"), Mapping):
        _model_resolved(conn, execution, data)
    elif kind == "approval_requested":
        _approval_requested(conn, execution, data, ts)
    elif kind == "approval_decided":
        _approval_decided(conn, execution["id"], data, ts)


def _model_resolved(conn: sqlite3.Connection, execution: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    source = data.get("source") if data.get("source") in MODEL_SOURCES else None
    model = storable(json.dumps(dict(data["model"]), default=str))
    conn.execute("UPDATE executions SET model = ?, model_source = ? WHERE id = ?", (model, source, execution["id"]))
    if execution["session_id"]:
        conn.execute("UPDATE sessions SET model = ?, model_source = COALESCE(?, model_source) WHERE id = ?",
                     (model, source, execution["session_id"]))


def _approval_requested(conn: sqlite3.Connection, execution: Mapping[str, Any], data: Mapping[str, Any],
                        ts: float) -> None:
    """A pending approval. Its id must be the execution's (``<execution id>.<step>.<index>``): an event cannot
    make (or take the id of) another execution's approval."""
    approval_id, args_hash = data.get("approval_id"), data.get("args_hash")
    if not (isinstance(approval_id, str) and approval_id.startswith(f"{execution['id']}.")
            and len(approval_id) <= _MAX_ID and isinstance(args_hash, str) and args_hash):
        return
    step = data.get("step")
    conn.execute("INSERT OR IGNORE INTO approvals (id, execution_id, session_id, kind, tool, args, args_hash, call_id, "
                 "step, question, status, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                 (approval_id, execution["id"], execution["session_id"], _text(data.get("kind"), 40) or "tool",
                  _text(data.get("tool"), _MAX_ID), storable(json.dumps(data.get("args"), default=str)),
                  _text(args_hash, 200), _text(data.get("call_id"), _MAX_ID),
                  step if isinstance(step, int) and not isinstance(step, bool) else None,
                  _text(data.get("reason"), _MAX_TEXT), ts))


def _approval_decided(conn: sqlite3.Connection, execution_id: str, data: Mapping[str, Any], ts: float) -> None:
    decision = data.get("decision")
    if decision not in _DECISIONS or not isinstance(data.get("approval_id"), str):
        return
    conn.execute("UPDATE approvals SET status = ?, reason = ?, always = ?, decided_by = ?, decided_at = ? "
                 "WHERE id = ? AND execution_id = ? AND status = 'pending'",
                 (decision, _text(data.get("reason"), _MAX_TEXT), int(data.get("always") is True),
                  _text(data.get("by"), _MAX_ID), ts, data["approval_id"], execution_id))


def finish(conn: sqlite3.Connection, execution: Mapping[str, Any], status: str, data: Mapping[str, Any],
           now: float) -> None:
    """A terminal event: the record's end, its usage, its undecided approvals."""
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        error = json.dumps(error, default=str)
    output = data.get("output")
    if output is not None and not isinstance(output, str):
        output = json.dumps(output, default=str)
    steps = data.get("steps")
    conn.execute("UPDATE executions SET status = ?, output = ?, error = ?, steps = ?, finished_at = ?, updated_at = ? "
                 "WHERE id = ?", (status, storable(output), storable(error), steps if _count(steps) is not None
                                  else None, now, now, execution["id"]))
    usage = parse_usage(data.get("usage"))
    if usage is not None:
        _add_usage(conn, execution, usage, now)
    conn.execute("UPDATE approvals SET status = 'cancelled', reason = ?, decided_at = ? WHERE execution_id = ? "
                 "AND status = 'pending'", (f"the execution ended ({status}) before a decision", now,
                                             execution["id"]))


def parse_usage(value: Any) -> dict[str, Any] | None:
    """A terminal event's ``data.usage`` as stored: three counts, a cost (None: unknown) and ``estimated``.

    None when there is no usage object at all; a count that is not a non-negative integer counts 0, a cost that
    is not a non-negative finite number is unknown.
    """
    if not isinstance(value, Mapping):
        return None
    cost = value.get("cost_usd")
    known = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    if known is not None and not (math.isfinite(known) and known >= 0):
        known = None
    return {"input_tokens": _count(value.get("input_tokens")) or 0,
            "output_tokens": _count(value.get("output_tokens")) or 0,
            "cached_tokens": _count(value.get("cached_tokens")) or 0,
            "cost_usd": known, "estimated": value.get("estimated") is True}


def _add_usage(conn: sqlite3.Connection, execution: Mapping[str, Any], usage: dict[str, Any], now: float) -> None:
    counts = (usage["input_tokens"], usage["output_tokens"], usage["cached_tokens"])
    conn.execute("UPDATE executions SET input_tokens = ?, output_tokens = ?, cached_tokens = ?, cost_usd = ?, "
                 "usage_estimated = ? WHERE id = ?", (*counts, usage["cost_usd"], int(usage["estimated"]),
                                                      execution["id"]))
    if execution["session_id"]:
        conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, execution["session_id"]))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else None


def _text(value: Any, limit: int) -> str | None:
    return storable(value[:limit]) if isinstance(value, str) else None
