"""Approvals in the store: a person's question about one tool call (or about going past a budget).

A row is made by the ``approval_requested`` event and settled by ``approval_decided`` (see ``_apply``),
or at once by the API when the workflow accepted a decision (:meth:`ApprovalsMixin.decide_approval`):
whichever lands first wins, the other changes nothing. The workflow is the judge of a decision (its
Update validator); the store only records what it accepted.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from ._apply import APPROVAL_STATUSES
from ._base import StoreBase, storable

__all__ = ["APPROVAL_STATUSES", "ApprovalsMixin", "approval_record"]

_COLUMNS = ("id", "execution_id", "session_id", "kind", "tool", "args_hash", "call_id", "step", "question", "status",
            "reason", "decided_by", "requested_at", "decided_at")


class ApprovalsMixin(StoreBase):
    """List, get and record the decision of approvals."""

    def list_approvals(self, *, status: str | None = None, execution: str | None = None,
                       session: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, filtered by status, execution and/or session."""
        where = [(column, value) for column, value in (("status", status), ("execution_id", execution),
                                                       ("session_id", session)) if value]
        clause = (" WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)) if where else ""
        rows = self._read(f"SELECT * FROM approvals{clause} ORDER BY requested_at DESC, id DESC LIMIT ?",
                          (*(value for _, value in where), limit))
        return [approval_record(row) for row in rows]

    def get_approval(self, approval_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return approval_record(rows[0]) if rows else None

    def decide_approval(self, approval_id: str, *, status: str, reason: str | None, always: bool, by: str,
                        at: float | None = None) -> dict[str, Any] | None:
        """Record a decision the workflow accepted; return the approval.

        It overwrites whatever the store held: the workflow accepts a decision only for a call still waiting, so a
        different status here came from an event that raced it or was forged, and this one is the confirmed record.
        """
        assert status in APPROVAL_STATUSES and status != "pending", status
        with self._tx() as conn:
            conn.execute("UPDATE approvals SET status = ?, reason = ?, always = ?, decided_by = ?, decided_at = ? "
                         "WHERE id = ?",
                         (status, storable(reason), int(always), storable(by), at or time.time(), approval_id))
        return self.get_approval(approval_id)


def approval_record(row: sqlite3.Row) -> dict[str, Any]:
    record = {name: row[name] for name in _COLUMNS}
    record["args"] = json.loads(row["args"])
    record["always"] = bool(row["always"])
    return record
