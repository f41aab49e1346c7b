"""The store's connection: one SQLite connection behind a lock, one write transaction at a time.

Every part of :class:`~stigmer.store.Store` (executions and events, sessions, approvals, usage) is a
mixin over this base, so they share the connection, its lock and the transaction helper.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class StoreBase:
    """The connection, its lock, and the two ways to use it: :meth:`_tx` (write) and :meth:`_read`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())


def storable(text: str | None) -> str | None:
    """``text`` as SQLite can store it: lone surrogates (valid JSON, invalid UTF-8) become "?"."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")
